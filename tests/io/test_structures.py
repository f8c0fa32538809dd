"""Structure readers: every format, folders and archives, and one-line reasons for bad files."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import zipfile

import numpy as np
import pytest
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Lattice, Structure

from hamdb.io.structure_samples import prototype_structures
from hamdb.io.structures import (
    ReadFailure,
    format_of,
    parse_bytes,
    read_path,
    read_structures,
    validate_structure,
)


@pytest.fixture(scope="module")
def bi2se3() -> Structure:
    return prototype_structures()["Bi2Se3"]


def as_format(structure: Structure, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(structure.as_dict())
    if fmt == "extxyz":
        from ase.io import write
        from pymatgen.io.ase import AseAtomsAdaptor

        buffer = io.StringIO()
        write(buffer, AseAtomsAdaptor.get_atoms(structure), format="extxyz")
        return buffer.getvalue()
    return structure.to(fmt=fmt)


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("x.cif", "cif"),
        ("POSCAR", "poscar"),
        ("CONTCAR", "poscar"),
        ("a.vasp", "poscar"),
        ("s.json", "json"),
        ("s.extxyz", "extxyz"),
        ("s.xyz", "extxyz"),
    ],
)
def test_each_format_reads_back_the_same_crystal(tmp_path, bi2se3, name, fmt):
    path = tmp_path / name
    path.write_text(as_format(bi2se3, fmt))
    (item,) = list(read_structures([path]))
    structure, source, source_id = item
    assert source == str(path.resolve()) and source_id == name
    assert StructureMatcher(ltol=0.01, stol=0.01, angle_tol=0.1).fit(structure, bi2se3)
    assert validate_structure(structure) is None


def test_json_lines_folder_zip_tar_and_gzip(tmp_path, bi2se3):
    protos = prototype_structures()
    lines = "\n".join(json.dumps(protos[k].as_dict()) for k in ("NaCl", "Si", "GaAs"))
    folder = tmp_path / "data"
    (folder / "sub").mkdir(parents=True)
    (folder / "set.jsonl").write_text(lines + "\n")
    (folder / "sub" / "b.cif").write_text(bi2se3.to(fmt="cif"))
    (folder / "notes.txt").write_text("ignored: not a structure file")
    (folder / "c.cif.gz").write_bytes(gzip.compress(protos["Si"].to(fmt="cif").encode()))

    zipped = tmp_path / "gnome.zip"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("by_id/0001.CIF", bi2se3.to(fmt="cif"))
        archive.writestr("by_id/0002.CIF", protos["NaCl"].to(fmt="cif"))
        archive.writestr("by_id/README", "skip me")
    tarred = tmp_path / "set.tar.gz"
    with tarfile.open(tarred, "w:gz") as archive:
        data = protos["W"].to(fmt="poscar").encode()
        info = tarfile.TarInfo("set/POSCAR_W")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))

    items = list(read_structures([folder, zipped, tarred]))
    assert not [i for i in items if isinstance(i, ReadFailure)]
    ids = [(source.rsplit("/", 1)[-1], source_id) for _, source, source_id in items]
    assert ids == [
        ("c.cif.gz", "c.cif.gz"),
        ("set.jsonl", "set.jsonl#1"),
        ("set.jsonl", "set.jsonl#2"),
        ("set.jsonl", "set.jsonl#3"),
        ("b.cif", "b.cif"),
        ("gnome.zip", "by_id/0001.CIF"),
        ("gnome.zip", "by_id/0002.CIF"),
        ("set.tar.gz", "set/POSCAR_W"),
    ]
    assert [s.composition.reduced_formula for s, _, _ in items] == [
        "Si",
        "NaCl",
        "Si",
        "GaAs",
        "Bi2Se3",
        "Bi2Se3",
        "NaCl",
        "W",
    ]


def test_multi_frame_files_number_their_structures(tmp_path):
    protos = prototype_structures()
    path = tmp_path / "two.json"
    path.write_text(json.dumps([protos["Si"].as_dict(), protos["Ge"].as_dict()]))
    assert [sid for _, _, sid in read_structures([path])] == ["two.json#1", "two.json#2"]


def bad_cases(tmp_path) -> dict[str, tuple[bytes, str]]:
    good = Structure(Lattice.cubic(4.0), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    cif = good.to(fmt="cif")
    return {
        "garbage.cif": (b"data_x\nloop_\n_atom_site_label\nfoo bar\n", "unparseable CIF"),
        "binary.cif": (bytes(range(256)) * 4, "unparseable CIF"),
        "unknown.cif": (cif.replace("Cl", "Xx").encode(), "unknown element Xx"),
        "POSCAR_unknown": (
            good.to(fmt="poscar").replace("Na Cl", "Na Qq").encode(),
            "unknown element Qq",
        ),
        "overlap.cif": (
            Structure(Lattice.cubic(4.0), ["Na", "Cl"], [[0, 0, 0], [0.05, 0, 0]])
            .to(fmt="cif")
            .encode(),
            "overlapping atoms",
        ),
        "flat.vasp": (b"flat\n1.0\n4 0 0\n0 4 0\n0 0 0\nNa\n1\ndirect\n0 0 0\n", "degenerate cell"),
        "broken.json": (b"{not json", "invalid JSON"),
        "other.json": (b'{"a": 1}', "not a pymatgen Structure dict"),
        "mol.xyz": (b"1\n\nH 0 0 0\n", "no periodic 3D cell"),
        "empty.cif": (b"", "unparseable CIF"),
    }


def test_bad_files_give_one_line_reasons_naming_the_file(tmp_path):
    cases = bad_cases(tmp_path)
    for name, (data, _) in cases.items():
        (tmp_path / name).write_bytes(data)
    results = {}
    for item in read_structures([tmp_path]):
        if isinstance(item, ReadFailure):
            results[item.source_id] = str(item)
        else:
            structure, _, source_id = item
            reason = validate_structure(structure)
            assert reason is not None, source_id
            results[source_id] = f"{tmp_path / source_id}: {reason}"
    assert sorted(results) == sorted(cases)
    for name, (_, expected) in cases.items():
        message = results[name]
        assert expected in message, message
        assert str(tmp_path / name) in message and "\n" not in message


def test_corrupt_archives_and_missing_paths_are_failures(tmp_path):
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 not really")
    (tmp_path / "bad.tar.gz").write_bytes(b"\x1f\x8b garbage")
    items = list(
        read_structures([tmp_path / "bad.zip", tmp_path / "bad.tar.gz", tmp_path / "nope.cif"])
    )
    assert all(isinstance(i, ReadFailure) for i in items) and len(items) == 3
    assert "zip" in items[0].reason and "tar" in items[1].reason
    assert "no such file" in items[2].reason


def test_partial_occupancy_is_refused():
    disordered = Structure(
        Lattice.cubic(4.0), [{"Na": 0.5, "K": 0.5}, "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    )
    assert "disordered" in validate_structure(disordered)


def test_format_of_names():
    assert format_of("GNoME/by_id/ab12.CIF") == "cif"
    assert format_of("CONTCAR_relaxed") == "poscar"
    assert format_of("x.cif.gz") == "cif.gz"
    assert format_of("x.tgz") == "tar" and format_of("x.tar.gz") == "tar"
    assert format_of("README.md") is None
    (failure,) = parse_bytes(b"", "README.md", "/x")
    assert failure.reason.startswith("not a structure")


def test_overlap_check_sees_periodic_images():
    # One atom in a 0.4 Å-long cell overlaps its own image.
    thin = Structure(Lattice.orthorhombic(0.4, 5, 5), ["Na"], [[0, 0, 0]])
    assert "overlapping" in validate_structure(thin) or "degenerate" in validate_structure(thin)
    ok = Structure(Lattice.cubic(3.0), ["Na"], [[0, 0, 0]])
    assert validate_structure(ok) is None
    assert np.isclose(ok.volume, 27.0)


def test_read_path_reads_one_file_or_folder(tmp_path, bi2se3):
    (tmp_path / "a.cif").write_text(bi2se3.to(fmt="cif"))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "POSCAR").write_text(bi2se3.to(fmt="poscar"))
    names = [item[2] for item in read_path(tmp_path)]
    assert names == ["a.cif", "POSCAR"]
    (item,) = list(read_path(tmp_path / "a.cif"))
    assert item[0].composition.reduced_formula == "Bi2Se3"
