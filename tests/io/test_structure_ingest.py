"""Structure ingest on SQLite and PostgreSQL: identity, material groups, idempotence, bad
files, --strict, and a kill -9 in the middle."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hamdb.cli.main import cli
from hamdb.db.engine import make_engine
from hamdb.db.models import StructureRow, StructureSourceRow
from hamdb.errors import InputError
from hamdb.io.structure_ingest import find_or_add_structure, ingest
from hamdb.io.structure_samples import copy_of, prototype_structures, random_crystal, strained
from hamdb.io.structures import ReadFailure


def counts(session: Session) -> tuple[int, int]:
    return (
        session.scalar(select(func.count()).select_from(StructureRow)),
        session.scalar(select(func.count()).select_from(StructureSourceRow)),
    )


def test_copies_are_the_same_structure_and_strain_is_the_same_material(session):
    rng = np.random.default_rng(3)
    protos = prototype_structures()
    bi2se3, nacl = protos["Bi2Se3"], protos["NaCl"]
    low = random_crystal(rng, 7, ["Bi", "Te", "Se"])
    items = [(bi2se3, "s", "bi2se3"), (nacl, "s", "nacl"), (low, "s", "low")]
    for k in range(4):  # rotated, translated, permuted, sometimes supercells
        items += [
            (copy_of(bi2se3, rng), "s", f"bi2se3-copy{k}"),
            (copy_of(low, rng), "s", f"low-copy{k}"),
        ]
    items.append((bi2se3 * (1, 1, 2), "s", "bi2se3-supercell"))
    items += [
        (strained(bi2se3, 0.08), "s", "bi2se3+8%"),
        (strained(low, -0.08), "s", "low-8%"),
        (copy_of(strained(low, -0.08), rng), "s", "low-8%-copy"),
    ]

    report = ingest(session, items, batch_size=4)
    assert (report.inserted, report.duplicates, report.failed) == (5, 10, 0)
    assert report.new_materials == 3

    rows = {r.id: r for r in session.scalars(select(StructureRow))}
    where = {s.source_id: rows[s.structure_id] for s in session.scalars(select(StructureSourceRow))}
    assert len(where) == len(items)
    for k in range(4):
        assert where[f"bi2se3-copy{k}"].id == where["bi2se3"].id
        assert where[f"low-copy{k}"].id == where["low"].id
    assert where["bi2se3-supercell"].id == where["bi2se3"].id
    assert where["low-8%-copy"].id == where["low-8%"].id
    for base, variant in (("bi2se3", "bi2se3+8%"), ("low", "low-8%")):
        assert where[variant].id != where[base].id
        assert where[variant].material_id == where[base].material_id == where[base].id
    assert where["nacl"].material_id == where["nacl"].id != where["bi2se3"].material_id
    b = where["bi2se3"]
    assert (b.reduced_formula, b.spacegroup_number, b.n_sites) == ("Bi2Se3", 166, 5)
    assert b.elements == ["Bi", "Se"] and b.elements_key == "-Bi-Se-"


def test_reingest_adds_nothing_and_says_so(session):
    protos = prototype_structures()
    items = [(s, "protos", name) for name, s in protos.items()]
    first = ingest(session, items, batch_size=7)
    assert first.inserted + first.duplicates == len(items) and first.failed == 0
    before = counts(session)
    again = ingest(session, items)
    assert counts(session) == before
    assert (again.inserted, again.duplicates, again.already_ingested) == (0, 0, len(items))
    assert again.nothing_new and "nothing new" in again.summary()
    # The same crystals under new names are recognised, only their sources are added.
    renamed = ingest(session, [(s, "elsewhere", n) for s, _, n in items])
    assert renamed.inserted == 0 and renamed.duplicates == len(items)
    assert counts(session) == (before[0], before[1] + len(items))


def test_no_dedup_inserts_every_new_source(session):
    nacl = prototype_structures()["NaCl"]
    rng = np.random.default_rng(0)
    report = ingest(session, [(nacl, "a", "1"), (copy_of(nacl, rng), "a", "2")], dedup=False)
    assert report.inserted == 2 and report.new_materials == 2
    assert ingest(session, [(nacl, "a", "1")], dedup=False).already_ingested == 1


def test_bad_items_are_reported_and_the_rest_go_in(session):
    from pymatgen.core import Lattice, Structure

    good = prototype_structures()["Si"]
    overlap = Structure(Lattice.cubic(4.0), ["Na", "Cl"], [[0, 0, 0], [0.01, 0, 0]])
    items = [
        (good, "f", "good"),
        ReadFailure("f", "broken.cif", "unparseable CIF (x)"),
        (overlap, "f", "overlap"),
    ]
    report = ingest(session, items)
    assert report.inserted == 1 and report.failed == 2
    assert [f.source_id for f in report.failures] == ["broken.cif", "overlap"]
    assert counts(session) == (1, 1)
    with pytest.raises(InputError, match="overlapping"):
        ingest(
            session, [(prototype_structures()["Ge"], "g", "1"), (overlap, "g", "2")], strict=True
        )
    assert counts(session) == (1, 1)


def test_find_or_add_structure(session):
    rng = np.random.default_rng(1)
    gaas = prototype_structures()["GaAs"]
    sid, new = find_or_add_structure(session, gaas, "dft", "run-1")
    assert new
    again, new = find_or_add_structure(session, copy_of(gaas, rng), "dft", "run-2")
    assert (again, new) == (sid, False)
    assert find_or_add_structure(session, gaas, "dft", "run-1") == (sid, False)
    session.commit()
    assert counts(session) == (1, 2)


def test_a_big_block_of_strained_variants_stays_fast(session):
    """125 strains of one crystal (5 % steps along each lattice vector) fall in one block;
    the pre-filters must spare most of the ~n²/2 fits a plain scan would need."""
    rng = np.random.default_rng(5)
    base = random_crystal(rng, 8, ["Bi", "Se"])
    steps = (-0.10, -0.05, 0.0, 0.05, 0.10)
    items = []
    for ea in steps:
        for eb in steps:
            for ec in steps:
                variant = base.copy()
                variant.apply_strain([ea, eb, ec])
                items.append((variant, "strain", f"{ea},{eb},{ec}"))
    report = ingest(session, items)
    assert report.inserted == len(items) and report.failed == 0
    assert report.new_materials < len(items) // 4
    assert report.fits < 3 * len(items), report.fits


def write_files(folder, n: int) -> None:
    rng = np.random.default_rng(11)
    folder.mkdir()
    protos = list(prototype_structures().values())
    for k in range(n):
        structure = (
            random_crystal(rng, int(rng.integers(2, 8)), ["Na", "Cl", "Se"])
            if k % 3
            else copy_of(protos[k % len(protos)], rng)
        )
        (folder / f"s{k:04d}.json").write_text(json.dumps(structure.as_dict()))


def test_cli_ingest_json_strict_and_exit_codes(project, tmp_path):
    folder = tmp_path / "in"
    write_files(folder, 12)
    (folder / "bad.cif").write_text("data_x\nloop_\n_atom_site_label\nfoo\n")
    runner = CliRunner()
    base = ["--project", str(project.root), "ingest", "structures"]

    result = runner.invoke(cli, [*base, "--strict", str(folder)])
    assert result.exit_code == 1 and "bad.cif" in result.output
    with Session(make_engine(project.database_url)) as session:
        assert counts(session) == (0, 0)

    result = runner.invoke(cli, [*base, "--json", str(folder)])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["failed"] == 1 and report["failures"][0]["source_id"] == "bad.cif"
    assert report["inserted"] + report["duplicates"] == 12

    (folder / "bad.cif").unlink()
    result = runner.invoke(cli, [*base, str(folder)])
    assert result.exit_code == 0 and "nothing new" in result.output


def test_kill_minus_9_mid_ingest_then_rerun_completes(project, tmp_path):
    folder = tmp_path / "many"
    write_files(folder, 90)
    command = [
        sys.executable,
        "-m",
        "hamdb.cli.main",
        "--project",
        str(project.root),
        "ingest",
        "structures",
        "--batch-size",
        "3",
        str(folder),
    ]
    engine = make_engine(project.database_url)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with Session(engine) as session:
                if counts(session)[1] >= 6:
                    break
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    with Session(engine) as session:
        rows, sources = counts(session)
        assert 0 < sources < 90, "killed too late to test anything"
        # Whole batches only: every row has its source, every source its row.
        orphans = session.scalar(
            select(func.count()).select_from(StructureRow).where(~StructureRow.sources.any())
        )
        assert orphans == 0 and rows <= sources
    rerun = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert rerun.returncode == 0, rerun.stderr
    assert "already ingested" in rerun.stdout
    with Session(engine) as session:
        assert counts(session)[1] == 90
        duplicates = session.execute(
            select(StructureSourceRow.source_id)
            .group_by(StructureSourceRow.source_id)
            .having(func.count() > 1)
        ).all()
        assert duplicates == []
    clean = CliRunner().invoke(
        cli, ["--project", str(project.root), "ingest", "structures", "--json", str(folder)]
    )
    assert json.loads(clean.stdout)["already_ingested"] == 90


def test_workers_give_the_same_result_as_one_process(session, tmp_path):
    from hamdb.io.structures import iter_raw_files

    folder = tmp_path / "in"
    write_files(folder, 24)
    report = ingest(session, iter_raw_files([folder]), workers=2, batch_size=5)
    rows, sources = counts(session)
    assert report.seen == 24 and sources == 24 and report.failed == 0
    assert rows == report.inserted and report.inserted + report.duplicates == 24
    again = ingest(session, iter_raw_files([folder]), workers=2)
    assert again.already_ingested == 24 and counts(session) == (rows, sources)


def test_a_grown_json_lines_file_adds_only_its_new_lines(session, tmp_path):
    from hamdb.io.structures import iter_raw_files

    protos = prototype_structures()
    path = tmp_path / "set.jsonl"
    path.write_text("".join(json.dumps(protos[k].as_dict()) + "\n" for k in ("Si", "GaAs")))
    assert ingest(session, iter_raw_files([path])).inserted == 2
    with path.open("a") as handle:
        handle.write(json.dumps(protos["InSb"].as_dict()) + "\n")
    report = ingest(session, iter_raw_files([path]))
    assert (report.inserted, report.already_ingested) == (1, 2)


def test_demo_files_go_in_with_one_copy_and_two_strained_variants(session, tmp_path):
    from hamdb.io.structure_samples import prototype_structures, write_demo_files
    from hamdb.io.structures import iter_raw_files

    paths = write_demo_files(tmp_path / "demo")
    report = ingest(session, iter_raw_files(paths))
    n = len(prototype_structures())
    assert report.failed == 0 and report.seen == n + 3
    assert report.duplicates == 1 and report.inserted == n + 2
    assert report.new_materials == n


def test_rows_read_back_as_written_and_are_found_by_element(session):
    """The bulk writes store what Structure.as_dict() gives (JSON text made in the workers),
    and the rows answer the element filter."""
    from pymatgen.core import Structure
    from pymatgen.io.vasp import Poscar

    protos = prototype_structures()
    bi2se3 = protos["Bi2Se3"]
    pinned = Poscar.from_str(
        Poscar(bi2se3.copy(), selective_dynamics=[[True, False, True]] * len(bi2se3)).get_str()
    ).structure
    pinned = strained(pinned, 0.05)  # another structure, with site properties
    items = [(protos[name], "p", name) for name in ("Bi2Se3", "GaAs", "NaCl")]
    items.append((pinned, "p", "pinned"))
    report = ingest(session, items)
    assert report.inserted == 4 and report.failed == 0
    rows = {
        source.source_id: session.get(StructureRow, source.structure_id)
        for source in session.scalars(select(StructureSourceRow))
    }
    for structure, _, name in items:
        stored = Structure.from_dict(rows[name].structure_json)
        assert stored == structure
        assert stored.site_properties.keys() == structure.site_properties.keys()
    assert rows["pinned"].material_id == rows["Bi2Se3"].id
    with_bi = set(session.scalars(select(StructureRow.id).where(StructureRow.has_element("Bi"))))
    assert with_bi == {rows["Bi2Se3"].id, rows["pinned"].id}


def test_workers_take_structures_in_memory_too(session):
    rng = np.random.default_rng(8)
    protos = list(prototype_structures().values())[:12]
    items = []
    for k in range(30):
        base = protos[k % len(protos)]
        structure = copy_of(base, rng) if k >= len(protos) else base
        items.append((structure, "mem", str(k)))
    items.append((strained(protos[0], 0.08), "mem", "strained"))
    one = ingest(session, items, workers=2, batch_size=7)
    assert one.failed == 0 and one.inserted == len(protos) + 1
    assert one.duplicates == 30 - len(protos) and one.new_materials == len(protos)
