"""Where the shipped model is found: an installed wheel's package folder, else the source
checkout's models/; and pyproject's mapping puts every file of models/<name>/ in the wheel."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

import pytest

from hamdb.errors import ModelError
from hamdb.ml import shipped
from hamdb.ml.inference import SHIPPED_MODEL, SHIPPED_MODELS_DIR, Predictor

REPO = Path(__file__).resolve().parents[2]


def _model(folder: Path, name: str = "hamdb-small") -> Path:
    (folder / name).mkdir(parents=True)
    (folder / name / "model.pt").write_bytes(b"weights")
    return folder


def _package(root: Path) -> Path:
    package = root / "hamdb"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    return package


def test_an_installed_wheel_has_them_in_the_package(tmp_path: Path) -> None:
    package = _package(tmp_path / "site-packages")
    installed = _model(package / "shipped_models")
    assert shipped.shipped_models_dir(package) == installed


def test_a_source_checkout_has_them_beside_the_package(tmp_path: Path) -> None:
    package = _package(tmp_path / "repo")
    source = _model(tmp_path / "repo" / "models")
    assert shipped.shipped_models_dir(package) == source
    (package / "shipped_models").mkdir()  # an empty leftover folder does not hide them
    assert shipped.shipped_models_dir(package) == source
    installed = _model(package / "shipped_models")  # a real install wins
    assert shipped.shipped_models_dir(package) == installed


def test_without_any_the_error_names_the_installed_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = _package(tmp_path / "empty")
    folder = shipped.shipped_models_dir(package)
    assert folder == package / "shipped_models"
    monkeypatch.setattr("hamdb.ml.inference.SHIPPED_MODELS_DIR", folder)
    with pytest.raises(ModelError, match=r"shipped_models/hamdb-small: no shipped model"):
        Predictor.shipped()


def test_this_checkout_finds_its_models_folder() -> None:
    if not (REPO / "models" / SHIPPED_MODEL / "model.pt").is_file():
        pytest.skip("no shipped model in this checkout")
    installed, source = shipped.shipped_models_dirs()
    assert SHIPPED_MODELS_DIR in (installed, source)
    assert (SHIPPED_MODELS_DIR / SHIPPED_MODEL / "model.pt").is_file()


def test_pyproject_puts_every_shipped_file_in_the_wheel() -> None:
    """The mapping the wheel is built from, checked without building one: models/ becomes
    hamdb/shipped_models/ (what hamdb.ml.shipped looks for) and its package data patterns
    match every file of every shipped model."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    package = f"hamdb.{shipped.PACKAGE_FOLDER}"
    assert config["package-dir"][package] == shipped.SOURCE_FOLDER
    assert package in config["packages"]
    patterns = config["package-data"][package]
    files = [p.relative_to(REPO / "models").as_posix()
             for p in (REPO / "models").rglob("*") if p.is_file()]  # fmt: skip
    assert files, "models/ is empty"
    missing = [f for f in files if not any(fnmatch.fnmatch(f, pat) for pat in patterns)]
    assert missing == []


def test_a_prediction_carries_the_insulator_gap_error_as_its_uncertainty() -> None:
    """Without an ensemble: the held-out gap error on insulators (overlap-filtered), not
    gap_mae_ev, which the shipped model's metals bring down to ~10 meV."""
    pytest.importorskip("gpaw")
    from pymatgen.core import Lattice, Structure

    from hamdb.ml.inference import UNCERTAINTY_METRICS

    if not (SHIPPED_MODELS_DIR / SHIPPED_MODEL / "model.pt").is_file():
        pytest.skip("no shipped model in this installation")
    predictor = Predictor.shipped()
    metrics = predictor.metrics
    assert UNCERTAINTY_METRICS[0] in metrics
    assert metrics["insulator_gap_mae_filtered_ev"] > metrics["gap_mae_ev"]
    structure = Structure(Lattice.cubic(6.46), ["Pb", "Te"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    (ham,) = predictor.predict([structure])
    assert ham.uncertainty_ev == metrics["insulator_gap_mae_filtered_ev"]
