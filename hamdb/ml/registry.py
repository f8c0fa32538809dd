"""The model registry (DESIGN.md §4): named models, integer versions, movable aliases.

A version's weights file lives in the project's store folder under `models/<name>/`
(outside the hash-named Hamiltonian folders, so `store gc` never sees it); the row keeps its
path relative to the store, its sha256, the model config, the training-data selection and
the metrics of `hamdb evaluate`. Specs accepted everywhere: "NAME@VERSION", "NAME@ALIAS",
"NAME" (its newest version) or a bare alias such as "production" (unique across models).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hamdb.db.models import ModelAliasRow, ModelRow, ModelVersionRow
from hamdb.errors import ModelError
from hamdb.ml.bundle import ModelBundle, file_sha256

MODELS_DIR = "models"


def weights_path(store_root: Path, uri: str) -> Path:
    """Absolute path of a version's weights file (uri relative to the store, or absolute)."""
    path = Path(uri)
    return path if path.is_absolute() else Path(store_root) / path


def register_version(
    session: Session,
    store_root: Path,
    name: str,
    bundle: ModelBundle,
    *,
    training_data: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    description: str | None = None,
) -> ModelVersionRow:
    """Save `bundle` as the next version of model `name` (file first, then the row).

    The caller commits the session; if it rolls back, the file is an orphan that a later
    version of the same number overwrites (its name carries the hash, so never a wrong one).
    """
    model = session.scalar(select(ModelRow).where(ModelRow.name == name))
    if model is None:
        model = ModelRow(name=name, description=description)
        session.add(model)
        session.flush()
    version = (
        session.scalar(
            select(func.max(ModelVersionRow.version)).where(ModelVersionRow.model_id == model.id)
        )
        or 0
    ) + 1
    folder = Path(store_root) / MODELS_DIR / name
    tmp = folder / f"v{version}.pt.partial"
    sha = bundle.save(tmp)
    final = folder / f"v{version}-{sha[:12]}.pt"
    tmp.replace(final)
    row = ModelVersionRow(
        model_id=model.id,
        version=version,
        weights_uri=str(final.relative_to(store_root)),
        weights_sha256=sha,
        config={name: net.cfg.as_dict() for name, net in bundle.nets.items()}
        | {"basis": bundle.basis.as_dict(), "meta": bundle.meta},
        training_data=training_data,
        metrics=metrics,
    )
    session.add(row)
    session.flush()
    return row


def import_bundle_file(
    session: Session, store_root: Path, name: str, path: Path, **kwargs: Any
) -> ModelVersionRow:
    """Register a weights file made elsewhere (e.g. the model shipped in models/)."""
    bundle = ModelBundle.load(path)
    return register_version(session, store_root, name, bundle, **kwargs)


def resolve_version(session: Session, spec: str) -> ModelVersionRow:
    """The version a spec names; ModelError (one line, what exists) if none does."""
    name, _, tag = spec.partition("@")
    model = session.scalar(select(ModelRow).where(ModelRow.name == name))
    if model is None and not tag:
        alias_rows = session.scalars(select(ModelAliasRow).where(ModelAliasRow.alias == name)).all()
        if len(alias_rows) == 1:
            return alias_rows[0].version
        if len(alias_rows) > 1:
            raise ModelError(f"alias {name!r} is set on several models; use NAME@{name}")
        known = ", ".join(session.scalars(select(ModelRow.name).order_by(ModelRow.name))) or "none"
        raise ModelError(f"no model or alias named {name!r} in the registry (models: {known})")
    if model is None:
        raise ModelError(f"no model named {name!r} in the registry")
    if not tag:
        row = session.scalar(
            select(ModelVersionRow)
            .where(ModelVersionRow.model_id == model.id)
            .order_by(ModelVersionRow.version.desc())
        )
        if row is None:
            raise ModelError(f"model {name!r} has no versions")
        return row
    if tag.isdigit():
        row = session.scalar(
            select(ModelVersionRow).where(
                ModelVersionRow.model_id == model.id, ModelVersionRow.version == int(tag)
            )
        )
        if row is None:
            raise ModelError(f"model {name!r} has no version {tag}")
        return row
    alias = session.scalar(
        select(ModelAliasRow).where(ModelAliasRow.model_id == model.id, ModelAliasRow.alias == tag)
    )
    if alias is None:
        raise ModelError(f"model {name!r} has no version or alias {tag!r}")
    return alias.version


def set_alias(session: Session, name: str, version: int, alias: str) -> ModelAliasRow:
    """Point `alias` of model `name` at `version` (moving it if it exists)."""
    if alias.isdigit() or "@" in alias or not alias:
        raise ModelError(f"alias {alias!r} must be a word, not a number or NAME@VERSION")
    row = resolve_version(session, f"{name}@{version}")
    existing = session.scalar(
        select(ModelAliasRow).where(
            ModelAliasRow.model_id == row.model_id, ModelAliasRow.alias == alias
        )
    )
    if existing is None:
        existing = ModelAliasRow(model_id=row.model_id, alias=alias, version_id=row.id)
        session.add(existing)
    else:
        existing.version_id = row.id
    session.flush()
    return existing


def version_summary(session: Session, row: ModelVersionRow, full: bool = False) -> dict[str, Any]:
    """What `hamdb models list|show` prints for a version."""
    aliases = session.scalars(
        select(ModelAliasRow.alias).where(ModelAliasRow.version_id == row.id)
    ).all()
    out: dict[str, Any] = {
        "id": row.id,
        "name": row.model.name,
        "version": row.version,
        "aliases": sorted(aliases),
        "parts": sorted(k for k in row.config if k in ("nonsoc", "soc", "overlap")),
        "basis": row.config.get("basis", {}).get("name"),
        "elements": sorted(row.config.get("basis", {}).get("shells", {})),
        "weights_uri": row.weights_uri,
        "weights_sha256": row.weights_sha256,
        "created_at": row.created_at.isoformat() if row.created_at else None,
        "metrics": row.metrics or {},
    }
    if full:
        out["config"] = row.config
        out["training_data"] = row.training_data
    return out


def list_versions(session: Session) -> list[ModelVersionRow]:
    return list(
        session.scalars(
            select(ModelVersionRow).join(ModelRow).order_by(ModelRow.name, ModelVersionRow.version)
        )
    )


def verify_weights(store_root: Path, row: ModelVersionRow) -> Path:
    """The weights file of a version, checked against its sha256 (ModelError otherwise)."""
    path = weights_path(store_root, row.weights_uri)
    if not path.is_file():
        raise ModelError(f"{path}: weights of {row.model.name}@{row.version} are missing")
    if file_sha256(path) != row.weights_sha256:
        raise ModelError(
            f"{path}: weights of {row.model.name}@{row.version} do not match their sha256"
        )
    return path
