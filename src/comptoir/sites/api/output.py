"""Rows as the API writes them: JSON (an array of objects), CSV, JSON lines.

One spelling of every value in every format: dates `2024-05-01`, datetimes `2024-05-01T10:30:00`
(with microseconds only when there are some, as Python's isoformat), NaN as null. Pages are
written from Python values; whole exports are written by Polars a chunk at a time, with temporal
columns turned into the same text first, so memory stays flat however large the table.

CSV cells that a spreadsheet would run as a formula (`=HYPERLINK(…)`, `+`, `-`, `@`, tab, carriage
return first) get a leading `'`, as OWASP advises against CSV injection.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterator
from typing import Any

import orjson
import polars as pl

CHUNK_ROWS = 10_000
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def jsonable(value: Any) -> Any:
    """A value of a row as JSON shows it."""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def row_object(row: dict[str, Any]) -> dict[str, Any]:
    """A row (from `DataFrame.rows(named=True)`) with every value as JSON shows it."""
    return {k: jsonable(v) for k, v in row.items()}


def dumps(obj: Any) -> bytes:
    """Compact JSON, UTF-8 (non-ASCII kept as is), with a final newline; dates and datetimes as
    `isoformat` spells them, NaN and infinities as null (orjson: a row in 0.5 µs where the json
    module took 9, docs/decisions.md)."""
    try:
        return orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:
        # What orjson does not write (an integer past 64 bits, nesting past 254 levels).
        return (
            json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False) + "\n"
        ).encode()


def texts(frame: pl.DataFrame, *, csv: bool) -> pl.DataFrame:
    """Temporal columns as their text, NaN as null; for CSV, formula-looking text defused."""
    exprs = []
    for name, dtype in frame.schema.items():
        col = pl.col(name)
        if dtype == pl.Datetime:
            whole = col.dt.strftime("%Y-%m-%dT%H:%M:%S")
            exprs.append(
                pl.when(col.dt.microsecond() == 0)
                .then(whole)
                .otherwise(col.dt.strftime("%Y-%m-%dT%H:%M:%S%.6f"))
                .alias(name)
            )
        elif dtype == pl.Date:
            exprs.append(col.dt.strftime("%Y-%m-%d").alias(name))
        elif dtype.is_float():
            exprs.append(col.fill_nan(None))
        elif csv and dtype == pl.String:
            risky = col.str.contains(r"^[=+\-@\t\r]")
            exprs.append(pl.when(risky).then(pl.lit("'") + col).otherwise(col).alias(name))
    return frame.with_columns(exprs) if exprs else frame


def csv_value(value: Any) -> str:
    """One CSV cell from a Python value (pages), spelled as the exports spell it."""
    value = jsonable(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def _defused_names(frame: pl.DataFrame) -> pl.DataFrame:
    """Column names a spreadsheet would run as formulas, with a leading `'` (as cells)."""
    risky = {c: "'" + c for c in frame.columns if c.startswith(FORMULA_START)}
    return frame.rename(risky) if risky else frame


def csv_chunks(frame: pl.DataFrame) -> Iterator[bytes]:
    """The frame as CSV, header first, a chunk of rows at a time."""
    if frame.height == 0:
        yield _defused_names(texts(frame, csv=True)).write_csv(include_header=True).encode()
        return
    for start in range(0, frame.height, CHUNK_ROWS):
        chunk = texts(frame.slice(start, CHUNK_ROWS), csv=True)
        if start == 0:
            chunk = _defused_names(chunk)
        yield chunk.write_csv(include_header=start == 0).encode()


def ndjson_chunks(frame: pl.DataFrame) -> Iterator[bytes]:
    """The frame as JSON lines, a chunk of rows at a time."""
    for start in range(0, frame.height, CHUNK_ROWS):
        yield texts(frame.slice(start, CHUNK_ROWS), csv=False).write_ndjson().encode()


def json_chunks(frame: pl.DataFrame) -> Iterator[bytes]:
    """The frame as one JSON array of objects, a chunk of rows at a time."""
    if frame.height == 0:
        yield b"[]\n"
        return
    yield b"["
    for start in range(0, frame.height, CHUNK_ROWS):
        text = texts(frame.slice(start, CHUNK_ROWS), csv=False).write_json()
        inner = text.strip()[1:-1]
        yield (b"," if start else b"") + inner.encode()
    yield b"]\n"
