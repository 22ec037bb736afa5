"""Rows as the API writes them: JSON (an array of objects), CSV, JSON lines.

One spelling of every value in every format: dates `2024-05-01`, datetimes `2024-05-01T10:30:00`
(with microseconds only when there are some, as Python's isoformat), NaN as null. Pages are
written from Python values; whole exports are written by Polars a chunk at a time, with temporal
columns spelled the same way, so memory stays flat however large the table.

CSV cells that a spreadsheet would run as a formula (`=HYPERLINK(…)`, `+`, `-`, `@`, tab, carriage
return first) get a leading `'`, as OWASP advises against CSV injection.
"""

from __future__ import annotations

import datetime as dt
import io
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
    if isinstance(value, dt.datetime | dt.date | dt.time):
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
        # What orjson does not write: an integer past 64 bits, a lone surrogate, a type it does
        # not know (a Parquet file's decimals, durations, bytes), nesting past 254 levels. The
        # json module writes those, escaped to ASCII (a lone surrogate is no UTF-8), with what
        # it has no spelling for as text.
        return (
            json.dumps(_plain(obj), separators=(",", ":"), allow_nan=False, default=str) + "\n"
        ).encode()


def _plain(value: Any) -> Any:
    """`value` with dates as text and non-finite floats as null, however deep (for json)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return jsonable(value) if isinstance(value, dt.date | dt.time | float) else value


def texts(frame: pl.DataFrame, *, csv: bool) -> pl.DataFrame:
    """Temporal columns as their text, NaN as null; for CSV, formula-looking text defused."""
    exprs = []
    for name, dtype in frame.schema.items():
        col = pl.col(name)
        if dtype == pl.Datetime:
            exprs.append(_datetime_text(col).alias(name))
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


def exported(frame: pl.DataFrame, *, csv: bool) -> pl.DataFrame:
    """A chunk of an export ready for Polars' writer: the cells `texts` changes, changed, and the
    work skipped where this chunk needs none. NaN is looked for in float columns first; for CSV,
    dates are left to the writer (its `%Y-%m-%d` is strftime's, to the byte), and a string column
    is searched for formulas only when one of its cells sorts before `A`, as every formula start
    (`= + - @`, tab, CR) does: names and words never do."""
    schema = frame.schema
    floats = [n for n, t in schema.items() if t.is_float()]
    strings = [n for n, t in schema.items() if t == pl.String] if csv else []
    checks = [pl.col(n).is_nan().any() for n in floats]
    checks += [(pl.col(n) < "A").any() for n in strings]
    flagged = (
        dict(zip(floats + strings, frame.select(checks).row(0), strict=True)) if checks else {}
    )
    exprs = []
    for name, dtype in schema.items():
        col = pl.col(name)
        if dtype == pl.Datetime:
            exprs.append(_datetime_text(col).alias(name))
        elif dtype == pl.Date and not csv:
            exprs.append(col.dt.strftime("%Y-%m-%d"))
        elif not flagged.get(name):
            continue
        elif dtype.is_float():
            exprs.append(col.fill_nan(None))
        else:
            risky = col.str.contains(r"^[=+\-@\t\r]")
            exprs.append(pl.when(risky).then(pl.lit("'") + col).otherwise(col).alias(name))
    return frame.with_columns(exprs) if exprs else frame


def _datetime_text(col: pl.Expr) -> pl.Expr:
    """A datetime column as text: microseconds only when there are some (Python's isoformat)."""
    whole = col.dt.strftime("%Y-%m-%dT%H:%M:%S")
    return (
        pl.when(col.dt.microsecond() == 0)
        .then(whole)
        .otherwise(col.dt.strftime("%Y-%m-%dT%H:%M:%S%.6f"))
    )


def csv_chunks(frame: pl.DataFrame) -> Iterator[bytes]:
    """The frame as CSV, header first, a chunk of rows at a time."""
    if frame.height == 0:
        yield _csv(_defused_names(exported(frame, csv=True)), header=True)
        return
    for start in range(0, frame.height, CHUNK_ROWS):
        chunk = exported(frame.slice(start, CHUNK_ROWS), csv=True)
        if start == 0:
            chunk = _defused_names(chunk)
        yield _csv(chunk, header=start == 0)


def _csv(chunk: pl.DataFrame, *, header: bool) -> bytes:
    # Written as bytes: `write_csv()` makes a str, and `.encode()` copies it again (a third of
    # the export's time).
    out = io.BytesIO()
    chunk.write_csv(out, include_header=header, date_format="%Y-%m-%d")
    return out.getvalue()


def ndjson_chunks(frame: pl.DataFrame) -> Iterator[bytes]:
    """The frame as JSON lines, a chunk of rows at a time."""
    for start in range(0, frame.height, CHUNK_ROWS):
        out = io.BytesIO()
        exported(frame.slice(start, CHUNK_ROWS), csv=False).write_ndjson(out)
        yield out.getvalue()


def json_chunks(frame: pl.DataFrame) -> Iterator[bytes]:
    """The frame as one JSON array of objects, a chunk of rows at a time."""
    if frame.height == 0:
        yield b"[]\n"
        return
    yield b"["
    for start in range(0, frame.height, CHUNK_ROWS):
        out = io.BytesIO()
        exported(frame.slice(start, CHUNK_ROWS), csv=False).write_json(out)
        inner = out.getvalue().strip()[1:-1]
        yield (b"," if start else b"") + inner
    yield b"]\n"
