"""Rendering of tabular results as text, JSON or CSV, and atomic file output.

Every command with tabular output offers ``--format text|json|csv``; they all go
through here so the three forms stay consistent.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from registry.errors import UsageError

FORMATS = ("text", "json", "csv")


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """A plain aligned text table; ``columns`` defaults to the first row's keys."""
    if not rows:
        return ""
    cols = list(columns or rows[0].keys())
    cells = [[_cell(row.get(col)) for col in cols] for row in rows]
    widths = [max(len(col), *(len(r[i]) for r in cells)) for i, col in enumerate(cols)]
    lines = ["  ".join(col.ljust(w) for col, w in zip(cols, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join(lines)


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=False, default=str)


def to_csv(rows: Iterable[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """CSV with nested values flattened to ``a.b`` columns."""
    flat = [flatten(row) for row in rows]
    if not flat:
        return ""
    cols = list(columns) if columns else _union_keys(flat)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in flat:
        writer.writerow({k: _cell(v) for k, v in row.items()})
    return buf.getvalue()


def flatten(row: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _union_keys(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return " ".join(_cell(v) for v in value)
    return str(value)


def check_writable(path: str | os.PathLike[str], flag: str = "--output") -> None:
    """Refuse a target that cannot be written, before any work whose result would be lost.

    ``path`` comes from the user (``flag`` names where), so the failure is a
    :class:`UsageError` naming the flag, not an ``OSError``.
    """
    target = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(target))
    if os.path.isdir(target):
        raise UsageError(f"{flag} {target}: expected a file path, found a directory")
    if not os.path.isdir(directory):
        raise UsageError(
            f"{flag} {target}: expected a file in an existing directory, but {directory} does not exist"
        )


def write_atomic(path: str | os.PathLike[str], content: str | bytes, *, flag: str = "--output") -> None:
    """Write ``content`` so that readers see the old file or the new one, never half."""
    check_writable(path, flag)
    target = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(target))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".modelreg-", dir=directory)
    except OSError as error:
        raise UsageError(f"{flag} {target}: cannot write in {directory}: {error.strerror or error}") from None
    try:
        if isinstance(content, bytes):
            with os.fdopen(fd, "wb") as binary:
                binary.write(content)
        else:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(content)
        os.replace(tmp, target)
    except BaseException as error:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(error, OSError):
            raise UsageError(f"{flag} {target}: cannot write it: {error.strerror or error}") from None
        raise
