"""The tables of an api site: CSV/TSV (and Parquet, JSON lines) files read into Polars DataFrames.

Reading (`load_table`):
- the encoding is UTF-8 (a byte-order mark is dropped), else Latin-1 (cp1252 is a superset many
  spreadsheets write; Latin-1 maps every byte, so nothing is lost);
- the delimiter is `,`, `;`, tab or `|`, sniffed from the first 64 KiB (a `.tsv` is tab);
- column types are inferred by Polars (integer, float, boolean, date, datetime, string); a column
  whose every cell is empty is a string column; `--type col=TYPE` overrides;
- an empty cell is null, whatever the column's type;
- rows with too many or too few fields are reported as `file:line: problem` and left out
  (`strict` refuses the file instead).

A table's key is its `id` column when it is unique, else the column named by `--id`, else the row
number, as a `rowid` column (1 for the first row). Rows keep the file's order.

Writing (`write_data`, for `--write`): the rows back into the file's own format — its delimiter,
encoding, byte-order mark and line ending, its columns in their order, without a `rowid` it did not
have; dates and datetimes spelled as the API spells them, an empty cell for null.
"""

from __future__ import annotations

import bisect
import codecs
import csv
import dataclasses
import functools
import io
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from comptoir.errors import ConfigError
from comptoir.sites.api import cache
from comptoir.sites.api.files import SUFFIXES, TYPE_NAMES
from comptoir.sites.api.output import dumps, texts
from comptoir.sites.api.rowstore import RowStore

ROWID = "rowid"
# The types a column can be given (`--type col=TYPE`), and what they are in Polars.
TYPES: dict[str, Any] = {
    "integer": pl.Int64,
    "float": pl.Float64,
    "boolean": pl.Boolean,
    "date": pl.Date,
    "datetime": pl.Datetime("us"),
    "string": pl.String,
}
assert tuple(TYPES) == TYPE_NAMES
MAX_PROBLEMS = 20
# What each integer type holds.
INTEGER_RANGES: dict[Any, tuple[int, int]] = {
    pl.Int8: (-(2**7), 2**7 - 1),
    pl.Int16: (-(2**15), 2**15 - 1),
    pl.Int32: (-(2**31), 2**31 - 1),
    pl.Int64: (-(2**63), 2**63 - 1),
    pl.UInt8: (0, 2**8 - 1),
    pl.UInt16: (0, 2**16 - 1),
    pl.UInt32: (0, 2**32 - 1),
    pl.UInt64: (0, 2**64 - 1),
}


def integer_range(dtype: pl.DataType) -> tuple[int, int]:
    """The smallest and largest value an integer column holds (Int64's for a type not listed)."""
    return INTEGER_RANGES.get(dtype.base_type(), INTEGER_RANGES[pl.Int64])


@dataclass(frozen=True)
class Problem:
    """A row left out of a table (or, with `strict`, the reason a file is refused)."""

    path: Path
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass(frozen=True)
class Source:
    """How a table's file is written, so that writing it back changes nothing else."""

    kind: str = "csv"  # csv, tsv, parquet, jsonl
    separator: str = ","
    encoding: str = "utf-8"  # or latin-1
    bom: bool = False
    newline: str = "\n"
    # The key is the row number, a column the file does not have.
    rowid: bool = False


@dataclass
class Table:
    """One table: its rows, its key, where it comes from.

    A table is a snapshot: a write makes a new Table (changes.py), and a request holding this one
    keeps reading the rows as they were.
    """

    name: str
    path: Path
    frame: pl.DataFrame
    key: str
    # The file's size and modification time when it was read (a change means: read it again).
    signature: tuple[int, int] = (0, 0)
    problems: list[Problem] = field(default_factory=list)
    skipped: int = 0
    source: Source = Source()
    # The largest integer key this table and those it was made from had (None: not looked up
    # yet, or not an integer key): a posted row gets the next one (changes.py).
    top_key: int | None = None
    # Rows added at the end since the frame was last gathered into few chunks (changes.py gathers
    # them now and then, the file's rewrite all of them).
    tail: int = 0
    # Key → row index when the key column is not sorted (built at the first lookup). Tables made
    # by appending a row share it with the table before them: an index at or past `frame.height`
    # is a row that table does not have.
    _index: dict[Any, int] | None = None
    # The frame's column types (Polars makes the schema anew at each `frame.schema`); a change
    # of rows keeps them, so the tables made from this one share it.
    _schema: dict[str, pl.DataType] | None = None
    # (first key, rows) when the keys are the integers first, first + 1, … in order (an id
    # column 1…N, a rowid): a row's index is then its key minus the first. Found at the first
    # lookup, for this table's frame only (`init=False`: a table made from this one finds its
    # own).
    _span: tuple[int, int] | None = field(default=None, init=False, repr=False, compare=False)
    _spanned: bool = field(default=False, init=False, repr=False, compare=False)
    # The rows written as JSON (rowstore.py), for this table's frame only: a table made from this
    # one by a write has none, and writes its rows one at a time.
    store: RowStore | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def columns(self) -> list[str]:
        """Column names, in the file's order."""
        return self.frame.columns

    def dtype(self, column: str) -> pl.DataType:
        """The Polars type of a column."""
        if self._schema is None:
            self._schema = dict(self.frame.schema)
        return self._schema[column]

    def json_row(self, at: int) -> bytes:
        """Row `at` as the API writes it: `dumps(row_object(row))`, without `row_object` (orjson
        spells dates and non-finite floats as it does); read from the rows file when there is
        one (rowstore.py)."""
        if self.store is not None and (line := self.store.row(at)) is not None:
            return line
        frame = self.frame
        return dumps(dict(zip(frame.columns, frame.row(at), strict=True)))

    def span(self) -> tuple[int, int] | None:
        """(first, rows) when the keys are first, first + 1, … in order (found once)."""
        if not self._spanned:
            self._span = key_span(self.frame[self.key])
            self._spanned = True
        return self._span

    def position(self, key: Any) -> int | None:
        """The row index of the row whose key is `key`, or None."""
        span = self.span()
        if span is not None and type(key) is int:
            first, rows = span
            at = key - first
            return at if 0 <= at < rows else None
        series = self.frame[self.key]
        if self._index is None and series.dtype.is_integer() and series.is_sorted():
            # Sorted integer keys (1, 2, 3…, the usual id column and rowid): a binary search,
            # probing values one at a time (10 µs on a million rows; `search_sorted`: 200 µs).
            at = bisect.bisect_left(series, key)
            if at < len(series) and series[at] == key:
                return at
            return None
        if self._index is None:
            self._index = {k: i for i, k in enumerate(series.to_list())}
        found = self._index.get(key)
        return found if found is not None and found < self.frame.height else None


def key_span(series: pl.Series) -> tuple[int, int] | None:
    """(first, rows) when the key column holds first, first + 1, … first + rows - 1 in order.

    Keys are unique (checked when read, kept by every change): sorted with the last one
    rows - 1 past the first, they can only be those integers."""
    rows = len(series)
    if not rows or not series.dtype.is_integer() or series.null_count() or not series.is_sorted():
        return None
    first, last = series[0], series[rows - 1]
    return (first, rows) if last - first == rows - 1 else None


def signature(path: Path) -> tuple[int, int]:
    """What tells a file changed: its size and modification time (ns)."""
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


def load_table(
    name: str,
    path: Path,
    *,
    key: str | None = None,
    types: Mapping[str, str] | None = None,
    strict: bool = False,
    cached: bool = True,
    keep_later: bool = False,
) -> Table:
    """Read one data file into a Table (ConfigError for what makes it unusable): from the cache
    (cache.py) when it has this file as it is, else parsed, and then kept there — after the
    table is returned with `keep_later` (a file read again while serving: its rows are not held
    back while the cache is written, 0.7 s for a million rows)."""
    if cached:
        entry = cache.lookup(path, key=key, types=types, strict=strict)
        table = _from_cache(name, path, entry) if entry is not None else None
        if table is not None:
            return table
    stamp = cache.stamp(path)  # before reading: a change made meanwhile is seen as one
    table = _parse(name, path, (stamp[0], stamp[1]), key=key, types=types, strict=strict)
    if cached:
        store = functools.partial(cache.store, table, stamp, key=key, types=types, strict=strict)
        if keep_later:
            threading.Thread(target=store, name="comptoir-cache", daemon=True).start()
        else:
            store()
    return table


def _from_cache(name: str, path: Path, entry: cache.Entry) -> Table | None:
    """The table an entry holds, or None when it cannot be read (then the file is parsed)."""
    meta = entry.meta
    try:
        frame = pl.read_parquet(io.BytesIO(entry.read_rows()))
        if frame.columns != list(entry.columns):
            return None
        source = Source(**meta["source"])
        problems = [Problem(path, line, message) for line, message in meta["problems"]]
        key = meta["key"]
        size, mtime = meta["stamp"][:2]
        frame = sorted_key(frame, key)
        table = Table(name, path, frame, key, (size, mtime), problems, meta["skipped"], source)
        if frame.height == meta["rows_count"]:
            table.store = entry.row_store()
        table._span, table._spanned = entry.span, True
        return table
    except (pl.exceptions.PolarsError, OSError, KeyError, TypeError, ValueError):
        return None
    except BaseException as exc:
        # Polars' Rust panics (a damaged file) come as pyo3's PanicException, a BaseException.
        if type(exc).__name__ != "PanicException":
            raise
        return None


def schema_table(name: str, path: Path, entry: cache.Entry) -> Table:
    """A table with a cached entry's columns and key and no rows: what checking routes against
    it needs, made without reading a row (the process the workers are forked from may not run
    a Polars query: docs/decisions.md)."""
    frame = pl.DataFrame(schema={c: TYPES[t] for c, t in entry.columns.items()})
    return Table(name, path, frame, entry.meta["key"])


def schema_exact(entry: cache.Entry) -> bool:
    """Whether `schema_table` makes the entry's columns with their very types (a Parquet file's
    UInt8 column is an `integer` too, but checks against its range differ)."""
    dtypes = entry.meta["dtypes"]
    return all(dtypes.get(c) == str(TYPES[t]) for c, t in entry.columns.items())


def _parse(
    name: str,
    path: Path,
    sig: tuple[int, int],
    *,
    key: str | None,
    types: Mapping[str, str] | None,
    strict: bool,
) -> Table:
    kind = SUFFIXES.get(path.suffix.lower(), "csv")
    problems: list[Problem] = []
    skipped = 0
    source = Source(kind=kind)
    try:
        if kind == "parquet":
            frame = pl.read_parquet(path)
        elif kind == "jsonl":
            frame = pl.read_ndjson(path)
        else:
            frame, problems, skipped, source = _read_csv(path, tab=kind == "tsv", strict=strict)
    except ConfigError:
        raise
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read: {_first_line(exc)}") from None
    frame = _typed(frame, types or {}, path)
    generated = ROWID not in frame.columns
    frame, key_column = _keyed(frame, key, path)
    if key_column == ROWID and generated:
        source = dataclasses.replace(source, rowid=True)
    frame = sorted_key(frame, key_column)
    return Table(name, path, frame, key_column, sig, problems, skipped, source)


# Rows converted to text and written at a time.
WRITE_CHUNK = 5_000


def write_data(
    frame: pl.DataFrame,
    source: Source,
    path: Path,
    pause: Callable[[float], None] = lambda seconds: None,
) -> None:
    """Write a table's rows to `path` in its file's format, and flush them to the disk.

    A CSV is written a chunk of rows at a time, `pause` given how long each took: a large
    table's rewrite then leaves the processor to the requests between its chunks (Polars would
    take every core for the whole file)."""
    if source.rowid and ROWID in frame.columns:
        frame = frame.drop(ROWID)
    if source.kind == "parquet":
        frame.write_parquet(path)
    elif source.kind == "jsonl":
        texts(frame, csv=False).write_ndjson(path)
    else:
        with open(path, "wb") as out:
            for start in range(0, max(frame.height, 1), WRITE_CHUNK):
                began = time.perf_counter()
                text = texts(frame.slice(start, WRITE_CHUNK), csv=False).write_csv(
                    separator=source.separator,
                    line_terminator=source.newline,
                    include_header=start == 0,
                    include_bom=source.bom and start == 0,
                )
                out.write(text.encode(source.encoding))
                # Flushed a chunk at a time: one flush of the whole file at the end keeps the
                # disk busy long enough to hold a write's flush of its journal line back.
                out.flush()
                os.fdatasync(out.fileno())
                pause(time.perf_counter() - began)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def gathered(frame: pl.DataFrame, pause: Callable[[float], None]) -> pl.DataFrame:
    """The same rows with each column in one chunk (what many changes split), a column at a
    time, `pause` given how long each took."""
    columns = []
    for name in frame.columns:
        began = time.perf_counter()
        columns.append(frame[name].rechunk())
        pause(time.perf_counter() - began)
    return pl.DataFrame(columns)


def sorted_key(frame: pl.DataFrame, key: str) -> pl.DataFrame:
    """The frame with its key column marked sorted when it is (in ascending order): lookups by key
    are then a binary search, and Polars does not check the order again at each one."""
    series = frame[key]
    if series.dtype.is_integer() and not series.flags["SORTED_ASC"] and series.is_sorted():
        frame = frame.clone()  # the same columns; the mark is on this frame's copy of the list
        frame.replace_column(frame.get_column_index(key), series.set_sorted())
    return frame


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _read_csv(
    path: Path, *, tab: bool, strict: bool
) -> tuple[pl.DataFrame, list[Problem], int, Source]:
    raw = path.read_bytes()
    bom = raw.startswith(codecs.BOM_UTF8)
    if bom:
        raw = raw[len(codecs.BOM_UTF8) :]
    encoding = "utf-8"
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        # Not UTF-8: Latin-1 (every byte is a character), handed to Polars as UTF-8.
        raw = raw.decode("latin-1").encode("utf-8")
        encoding = "latin-1"
    if not raw.strip():
        raise ConfigError(f"{path}: empty file (a CSV needs at least a header line)")
    separator = "\t" if tab else _sniff(raw[: 64 * 1024])
    end = raw.find(b"\n")
    newline = "\r\n" if end > 0 and raw[end - 1 : end] == b"\r" else "\n"
    source = Source("tsv" if tab else "csv", separator, encoding, bom, newline)
    bad, expected = _ragged_rows(raw, separator)
    problems = [
        Problem(path, line, f"{found} fields, expected {expected}")
        for line, found, _ in bad
        if found  # a blank line is no row: left out without a word
    ]
    if problems and strict:
        shown = "; ".join(str(p) for p in problems[:3])
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise ConfigError(f"{shown}{more}")
    if bad:
        # The rows left out must not count in the columns' types (a row `bad,row` would make
        # the `id` column text): read as text, leave them out, and infer from the rest.
        text = pl.read_csv(
            io.BytesIO(raw),
            separator=separator,
            infer_schema=False,
            truncate_ragged_lines=True,
            raise_if_empty=False,
        )
        text = (
            text.with_row_index("__row")
            .filter(~pl.col("__row").is_in([row for _, _, row in bad]))
            .drop("__row")
        )
        raw = text.write_csv().encode()
        separator = ","
    frame = pl.read_csv(
        io.BytesIO(raw),
        separator=separator,
        try_parse_dates=True,
        infer_schema_length=10_000,
        truncate_ragged_lines=True,
        raise_if_empty=False,
    )
    return frame, problems[:MAX_PROBLEMS], len(problems), source


def _sniff(head: bytes) -> str:
    """The delimiter of a CSV, from its first bytes: the one that splits the header and the
    next lines into the same number of fields."""
    text = head.decode("utf-8", "replace")
    try:
        return csv.Sniffer().sniff(text, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _ragged_rows(raw: bytes, separator: str) -> tuple[list[tuple[int, int, int]], int]:
    """Rows to leave out: (line, fields, row index) — fields is 0 for a blank line, which Polars
    reads as a row of nulls and nobody meant as one — and the header's number of fields."""
    if b'"' not in raw:
        # No quoting: one line is one row, and fields are counted by Polars, at C speed.
        lines = pl.read_csv(
            io.BytesIO(raw),
            has_header=False,
            separator="\x1f" if separator != "\x1f" else "\x1e",
            quote_char=None,
            new_columns=["line"],
            schema_overrides={"line": pl.String},
            raise_if_empty=False,
        )["line"]
        counts = (lines.str.count_matches(separator, literal=True) + 1).fill_null(0)
        expected = int(counts[0]) if len(counts) else 0
        wrong = (counts != expected).arg_true().to_list()
        return [(i + 1, int(counts[i]), i - 1) for i in wrong if i > 0], expected
    # Quoted fields may hold separators and line breaks: the csv module knows.
    reader = csv.reader(io.StringIO(raw.decode("utf-8")), delimiter=separator)
    out = []
    expected = 0
    for i, fields in enumerate(reader):
        if i == 0:
            expected = len(fields)
        elif len(fields) != expected:
            out.append((reader.line_num, len(fields), i - 1))
    return out, expected


def _typed(frame: pl.DataFrame, types: Mapping[str, str], path: Path) -> pl.DataFrame:
    """Columns of no type (all empty) as strings; `types` applied."""
    casts = {c: pl.String for c, t in frame.schema.items() if t == pl.Null}
    for column, kind in types.items():
        if column not in frame.columns:
            raise ConfigError(f"{path}: --type {column}={kind}: no column {column!r}")
        casts[column] = TYPES[kind]
    if not casts:
        return frame
    try:
        return frame.with_columns(
            pl.col(c).cast(t, strict=True)
            if frame.schema[c] != pl.String or t == pl.String
            # Text to a date or number: parsed, not reinterpreted.
            else _parse_text(c, t)
            for c, t in casts.items()
        )
    except pl.exceptions.PolarsError as exc:
        raise ConfigError(f"{path}: cannot convert: {_first_line(exc)}") from None


def _parse_text(column: str, target: Any) -> pl.Expr:
    col = pl.col(column)
    if target == pl.Date:
        return col.str.to_date(strict=True)
    if target == pl.Datetime("us"):
        return col.str.to_datetime(time_unit="us", strict=True)
    if target == pl.Boolean:
        lowered = col.str.to_lowercase()
        return (
            pl.when(lowered.is_in(["true", "1", "yes"]))
            .then(True)
            .when(lowered.is_in(["false", "0", "no"]))
            .then(False)
            .otherwise(None)
            .alias(column)
        )
    return col.cast(target, strict=True)


def _keyed(frame: pl.DataFrame, key: str | None, path: Path) -> tuple[pl.DataFrame, str]:
    """The frame and its key column: `key`, else `id` if unique, else a new `rowid`."""
    if key is not None:
        if key not in frame.columns:
            raise ConfigError(f"{path}: --id {key}: no column {key!r}")
        if frame[key].null_count() or frame[key].n_unique() != frame.height:
            raise ConfigError(f"{path}: --id {key}: values are not unique (or some are empty)")
        return frame, key
    if (
        "id" in frame.columns
        and not frame["id"].null_count()
        and frame["id"].n_unique() == frame.height
    ):
        return frame, "id"
    if ROWID in frame.columns:
        raise ConfigError(f"{path}: no unique id column, and a {ROWID!r} column is taken: use --id")
    rowid = pl.int_range(1, frame.height + 1, dtype=pl.Int64, eager=True).alias(ROWID)
    return frame.insert_column(0, rowid), ROWID
