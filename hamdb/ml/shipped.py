"""Where the models shipped with hamdb are, in an installed wheel and in a source checkout.

The repository keeps them in its top-level `models/<name>/` (model.pt, card.json, the model
card). pyproject.toml maps that folder into the package as `hamdb/shipped_models/`, so a wheel
or a non-editable `pip install .` carries them; an editable install or a run from the
repository reads `models/` beside the `hamdb/` package instead.
"""

from __future__ import annotations

from pathlib import Path

#: The package folder a wheel installs `models/` as (pyproject's package-dir mapping).
PACKAGE_FOLDER = "shipped_models"
#: The repository's own folder of shipped models, beside the `hamdb/` package.
SOURCE_FOLDER = "models"


def shipped_models_dirs(package_dir: Path | None = None) -> tuple[Path, Path]:
    """(installed location, source-checkout location) of the shipped models, in that order.

    package_dir: the `hamdb` package folder (default: this installation's).
    """
    package = (package_dir or Path(__file__).resolve().parents[1]).resolve()
    return package / PACKAGE_FOLDER, package.parent / SOURCE_FOLDER


def shipped_models_dir(package_dir: Path | None = None) -> Path:
    """The folder holding `<name>/model.pt` of the shipped models: the installed package's,
    else the source checkout's; the installed one (which may not exist) when neither does, so
    an error names where a wheel would have put them."""
    installed, source = shipped_models_dirs(package_dir)
    for folder in (installed, source):
        if folder.is_dir() and any(folder.glob("*/model.pt")):
            return folder
    return installed
