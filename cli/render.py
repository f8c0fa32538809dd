"""Printing rows for people and programs: aligned text tables, CSV and JSON (no SQL here)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

FORMATS = ("table", "csv", "json")


def plain(value: Any) -> Any:
    """A JSON-ready version of one database value (timestamps as ISO 8601, bytes as hex)."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    return value


def cell(value: Any) -> str:
    """Text of one value in a table or CSV: NULL as empty, JSON values as compact JSON."""
    value = plain(value)
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def render(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str) -> str:
    """The rows in `fmt` (one of FORMATS), ending with a newline unless empty."""
    if fmt == "json":
        records = [{c: plain(v) for c, v in zip(columns, row, strict=True)} for row in rows]
        return json.dumps(records, indent=2, default=str) + "\n"
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([cell(v) for v in row] for row in rows)
        return buffer.getvalue()
    if fmt != "table":
        raise ValueError(f"unknown format {fmt!r}")
    return text_table(columns, [[cell(v) for v in row] for row in rows])


def text_table(columns: Sequence[str], rows: Sequence[Sequence[str]], max_width: int = 60) -> str:
    """Columns aligned with two spaces, a dashed rule under the header, long cells cut with …."""
    rows = [[c if len(c) <= max_width else c[: max_width - 1] + "…" for c in row] for row in rows]
    widths = [max([len(c), *(len(row[i]) for row in rows)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    return "\n".join(lines) + "\n"
