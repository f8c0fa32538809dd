"""`hamdb models list` and `import`: the insulator gap error is shown, gap_mae_ev (mostly
metals) is not; the shipped model is imported by name."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from hamdb.cli.main import cli
from hamdb.cli.models_list import insulator_gap
from hamdb.db.models import ModelRow, ModelVersionRow

EVALUATED = {
    "h_mae_ev": 0.004, "soc_k_mae_ev": 5e-5, "gap_mae_ev": 0.011, "gap_mae_filtered_ev": 0.034,
    "insulator_gap_mae_ev": 0.234, "insulator_gap_mae_filtered_ev": 0.296, "n_structures": 3,
    "per_structure": [
        {"structure_id": 1, "gap_mae_ev": 0.0},
        {"structure_id": 2, "gap_mae_ev": 0.0},
        {"structure_id": 3, "insulator_gap_mae_filtered_ev": 0.296, "insulator_gap_mae_ev": 0.234},
    ],
}  # fmt: skip
METALS_ONLY = {"h_mae_ev": 0.005, "gap_mae_ev": 0.001, "n_structures": 4}
EXACT_ONLY = {"h_mae_ev": 0.005, "insulator_gap_mae_ev": 0.5, "n_structures": 2}


def _register(session: Any, metrics: list[dict[str, Any] | None]) -> None:
    model = ModelRow(name="m")
    session.add(model)
    session.flush()
    for version, values in enumerate(metrics, 1):
        session.add(
            ModelVersionRow(
                model_id=model.id, version=version, weights_uri="w", weights_sha256="0" * 64,
                config={"soc": {}}, metrics=values,
            )
        )  # fmt: skip
    session.commit()


def _list(project: Any, *args: str) -> Any:
    result = CliRunner().invoke(cli, ["--project", str(project.root), "models", "list", *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_list_shows_the_insulator_gap_error_or_why_there_is_none(project, session) -> None:
    _register(session, [EVALUATED, METALS_ONLY, None, EXACT_ONLY])
    lines = _list(project).splitlines()
    assert len(lines) == 4 and not any("gap_mae_ev" in line for line in lines)
    assert lines[0].startswith("m@1") and "h_mae_ev=4meV soc_k_mae_ev=0.05meV" in lines[0]
    assert "insulator_gap_mae=296meV (overlap-filtered, 1 of 3 test structures)" in lines[0]
    assert "insulator_gap_mae=none (no insulator among its 4 test structures)" in lines[1]
    assert "insulator_gap_mae=none (not evaluated: hamdb evaluate NAME@VERSION)" in lines[2]
    exact = "insulator_gap_mae=500meV (exact eigenvalues, insulators of 2 test structures)"
    assert exact in lines[3]


def test_list_json_carries_the_insulator_gap(project, session) -> None:
    _register(session, [EVALUATED, METALS_ONLY])
    rows = json.loads(_list(project, "--json"))
    assert rows[0]["insulator_gap"] == {
        "key": "insulator_gap_mae_filtered_ev", "value_ev": 0.296, "n_insulators": 1,
        "n_structures": 3, "note": "overlap-filtered",
    }  # fmt: skip
    assert "per_structure" not in rows[0]["metrics"]
    assert rows[1]["insulator_gap"]["value_ev"] is None


def test_insulator_gap_ignores_a_non_numeric_value() -> None:
    assert insulator_gap({"insulator_gap_mae_ev": None, "n_structures": 1})["value_ev"] is None


def test_import_by_name_registers_the_shipped_model(project) -> None:
    """`hamdb models import hamdb-small` works where no models/ folder is at hand (a wheel)."""
    from hamdb.ml.inference import SHIPPED_MODEL, SHIPPED_MODELS_DIR

    if not (SHIPPED_MODELS_DIR / SHIPPED_MODEL / "model.pt").is_file():
        pytest.skip("no shipped model in this installation")
    run = CliRunner().invoke
    base = ["--project", str(project.root), "models", "import"]
    result = run(cli, [*base, SHIPPED_MODEL, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["name"] == SHIPPED_MODEL
    rows = json.loads(_list(project, "--json"))
    assert rows[0]["insulator_gap"]["key"] == "insulator_gap_mae_filtered_ev"
    bad = run(cli, [*base, "no-such-model"])
    assert bad.exit_code != 0 and f"shipped: {SHIPPED_MODEL}" in bad.output
