"""Changes to a table's rows: a row put (inserted, or replacing the row of its key) or a row
deleted, each making a new Table; the old one stays as it was for the requests still reading it.

A change costs about the same on a table of a million rows as on ten: the new frame is slices of
the old one around the row (Polars shares their memory) and the row itself, not a copy. Slices add
chunks to the frame, which the next rewrite of the file gathers again (live.py: `rechunked`).

Changes are *states*, not differences: `put` carries the whole row, `delete` the key. Applying a
journal's changes again to rows that already have some of them gives the same rows (replaying a
journal after a crash between the file's rewrite and the journal's rotation is safe).

Values come as JSON gives them (`column_value`): checked against the column's type and converted,
each mistake a message for that field.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import polars as pl

from comptoir.sites.api.output import dumps, row_object
from comptoir.sites.api.query import type_name
from comptoir.sites.api.rowstore import json_etag
from comptoir.sites.api.tables import ROWID, Table, gathered, integer_range, sorted_key

# Rows added one by one are gathered into one chunk every so many.
GATHER_EVERY = 32

EXAMPLES = {
    "integer": "42",
    "float": "4.2",
    "boolean": "true or false",
    "date": '"2024-05-01"',
    "datetime": '"2024-05-01T10:30:00"',
    "string": '"text"',
}


def column_value(table: Table, column: str, value: Any) -> Any:
    """A JSON value as a value of `column` (ValueError saying what the column takes)."""
    if value is None:
        return None
    dtype = table.dtype(column)
    kind = type_name(dtype)
    wrong = _Wrong(value, kind)
    if kind == "integer":
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # 42.0 is the integer 42 in JSON (and for JSON Schema)
        if not isinstance(value, int) or isinstance(value, bool):
            raise wrong
        low, high = integer_range(dtype)
        if not low <= value <= high:
            raise ValueError(f"{value} is out of this column's range ({low} to {high})")
        return value
    if kind == "float":
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise wrong
        number = float(value)
        if not math.isfinite(number):
            raise wrong
        return number
    if kind == "boolean":
        if not isinstance(value, bool):
            raise wrong
        return value
    if not isinstance(value, str):
        if kind == "string" and dtype != pl.String:
            raise ValueError(f"a column of type {dtype} cannot be written")
        raise wrong
    if kind == "date":
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise wrong from None
    if kind == "datetime":
        try:
            moment = dt.datetime.fromisoformat(value)
        except ValueError:
            raise wrong from None
        if moment.tzinfo is not None:
            raise ValueError(f"{_shown(value)}: this column's times have no time zone")
        return moment
    if dtype != pl.String:
        raise ValueError(f"a column of type {dtype} cannot be written")
    if "\x00" in value:
        raise ValueError("a NUL character cannot be stored in a CSV file")
    if table.source.encoding != "utf-8":
        try:
            value.encode(table.source.encoding)
        except UnicodeEncodeError as exc:
            char = value[exc.start]
            raise ValueError(
                f"{char!r} cannot be written in this file's encoding ({table.source.encoding})"
            ) from None
    return value


class _Wrong(ValueError):
    """A value not of its column's type (the message made only when it is shown)."""

    def __init__(self, value: Any, kind: str) -> None:
        super().__init__()
        self.value = value
        self.kind = kind

    def __str__(self) -> str:
        kind = self.kind
        return f"{_shown(self.value)} is not {_article(kind)} {kind} (e.g. {EXAMPLES[kind]})"


def _shown(value: Any) -> str:
    text = dumps(value).decode().strip()
    return text if len(text) <= 40 else text[:37] + "..."


def _article(kind: str) -> str:
    return "an" if kind[0] in "aeiou" else "a"


def row_etag(row: Mapping[str, Any]) -> str:
    """A row's entity tag: a hash of its values (the same row, the same tag, in every worker)."""
    return json_etag(dumps(row_object(dict(row))))


def next_key(table: Table) -> int:
    """The key an integer-keyed table gives a row posted without one: one more than the largest
    ever seen by this table, so a deleted row's key is not given again while the server runs."""
    return (_top(table) or 0) + 1


def free_key(table: Table) -> int:
    """The smallest positive integer no row has as its key (there is one among 1 … rows + 1):
    what a posted row gets once the largest key there is was given."""
    keys = table.frame[table.key]
    candidates = pl.int_range(1, table.frame.height + 2, eager=True).cast(keys.dtype)
    return int(candidates.filter(~candidates.is_in(keys.drop_nulls()))[0])


def _top(table: Table) -> int | None:
    """The largest integer key this table has seen (None for other keys)."""
    if table.top_key is not None:
        return table.top_key
    keys = table.frame[table.key]
    if not keys.dtype.is_integer() or keys.is_empty():
        return None
    return int(keys[-1] if keys.flags["SORTED_ASC"] else keys.max())  # type: ignore[arg-type]


def row_at(table: Table, key: Any) -> dict[str, Any] | None:
    """The row whose key is `key` (column → Python value), or None."""
    at = table.position(key)
    return None if at is None else table.frame.row(at, named=True)


def put(table: Table, row: Mapping[str, Any]) -> Table:
    """A new table where `row` replaces the row of its key, or is added at the end."""
    frame = table.frame
    one = pl.DataFrame([[row.get(c) for c in frame.columns]], schema=_schema(table), orient="row")
    key = row[table.key]
    at = table.position(key)
    keys = frame[table.key]
    was_sorted = keys.flags["SORTED_ASC"]
    index = table._index
    # `vstack` appends the other frame's chunks: 45 µs on a million rows, `concat` 280 µs.
    tail = table.tail
    if at is None:
        new = frame.vstack(one)
        tail += 1
        if tail % GATHER_EVERY == 0:
            # Each row added is a chunk: the rows added lately become one, so that queries do
            # not go through thousands (a copy of those rows only, not of the table).
            start = new.height - tail
            new = new.slice(0, start).vstack(new.slice(start).rechunk())
        still_sorted = was_sorted and (frame.height == 0 or key > keys[-1])
        if index is not None:
            index[key] = frame.height  # shared: the table before has no row at that index
    else:
        new = frame.slice(0, at).vstack(one).vstack(frame.slice(at + 1))
        still_sorted = was_sorted
    top = _top(table)
    if isinstance(key, int) and not isinstance(key, bool):
        top = key if top is None else max(top, key)
    if still_sorted:
        new.replace_column(new.get_column_index(table.key), new[table.key].set_sorted())
    elif was_sorted:
        new = sorted_key(new, table.key)  # out of order now: the index takes over
    index = None if was_sorted else index
    return dataclasses.replace(table, frame=new, _index=index, top_key=top, tail=tail)


def _schema(table: Table) -> dict[str, Any]:
    return {c: table.dtype(c) for c in table.columns}


def delete(table: Table, key: Any) -> Table:
    """A new table without the row of `key` (the same table when there is none)."""
    at = table.position(key)
    if at is None:
        return table
    frame = table.frame
    was_sorted = frame[table.key].flags["SORTED_ASC"]
    new = frame.slice(0, at).vstack(frame.slice(at + 1))
    if was_sorted:
        new.replace_column(new.get_column_index(table.key), new[table.key].set_sorted())
    top = _top(table)
    tail = table.tail - (at >= frame.height - table.tail)
    # Every row after it moved up by one: an index by key is made again when next needed.
    return dataclasses.replace(table, frame=new, _index=None, top_key=top, tail=tail)


def append_rows(table: Table, rows: Sequence[Mapping[str, Any]]) -> Table:
    """A new table with `rows` added at the end, in one chunk (their keys are not the table's:
    the caller made sure)."""
    if not rows:
        return table
    frame = table.frame
    columns = frame.columns
    many = pl.DataFrame(
        [[r.get(c) for c in columns] for r in rows], schema=_schema(table), orient="row"
    )
    keys = [r[table.key] for r in rows]
    column = frame[table.key]
    was_sorted = column.flags["SORTED_ASC"]
    before = [column[-1]] if frame.height else []
    still_sorted = was_sorted and all(a < b for a, b in itertools.pairwise(before + keys))
    index = table._index
    if index is not None:
        for offset, key in enumerate(keys):
            index[key] = frame.height + offset  # shared: see `put`
    new = frame.vstack(many)
    tail = table.tail + len(rows)
    if tail // GATHER_EVERY != table.tail // GATHER_EVERY:
        start = new.height - tail
        new = new.slice(0, start).vstack(new.slice(start).rechunk())
    top = _top(table)
    numbers = [k for k in keys if isinstance(k, int) and not isinstance(k, bool)]
    if numbers:
        top = max(numbers) if top is None else max(top, *numbers)
    if still_sorted:
        new.replace_column(new.get_column_index(table.key), new[table.key].set_sorted())
    elif was_sorted:
        new = sorted_key(new, table.key)
    index = None if was_sorted else index
    return dataclasses.replace(table, frame=new, _index=index, top_key=top, tail=tail)


def apply_entries(table: Table, entries: Iterable[Mapping[str, Any]]) -> tuple[Table, list[str]]:
    """A journal's changes applied in order (JSON values converted); the problems of those that
    no longer fit the table (its file changed by hand since), which are left out.

    Rows added one after the other (new keys) are added together: a worker catching up with
    hundreds of posts, or a rewrite with the posts made while it wrote, does it in one step."""
    problems: list[str] = []
    added: list[dict[str, Any]] = []
    keys: set[Any] = set()
    for entry in entries:
        try:
            if entry.get("op") == "put":
                values = entry["row"]
                row = {c: column_value(table, c, values.get(c)) for c in table.columns}
                key = row[table.key]
                if key is None:
                    raise ValueError(f"no {table.key}")
                if key not in keys and table.position(key) is None:
                    added.append(row)
                    keys.add(key)
                    continue
                table = append_rows(table, added)
                added, keys = [], set()
                table = put(table, row)
            elif entry.get("op") == "delete":
                key = column_value(table, table.key, entry["key"])
                table = append_rows(table, added)
                added, keys = [], set()
                table = delete(table, key)
        except (ValueError, KeyError, TypeError, AttributeError, pl.exceptions.PolarsError) as exc:
            what = _shown(entry.get("row") or entry.get("key"))
            problems.append(f"{entry.get('op')} {what}: {exc}")
    try:
        table = append_rows(table, added)
    except pl.exceptions.PolarsError:
        for row in added:  # one by one, each problem its own
            table, more = apply_entries(table, [{"op": "put", "row": row_object(row)}])
            problems += more
    return table, problems


def rowid_runs(table: Table) -> list[list[int]] | None:
    """A rowid table's keys as runs `[first, last]` (1…n when no row was deleted): what the file
    does not keep, written in the journal so that a replay finds the rows by the same keys."""
    if not table.source.rowid:
        return None
    keys = table.frame[ROWID]
    if keys.is_empty():
        return []
    starts = (keys.diff().fill_null(0) != 1).arg_true().to_list()
    if not starts or starts[0] != 0:
        starts.insert(0, 0)
    bounds = [*starts, len(keys)]
    return [[int(keys[a]), int(keys[b - 1])] for a, b in itertools.pairwise(bounds)]


def with_rowids(table: Table, runs: Sequence[Sequence[int]]) -> Table:
    """A rowid table whose keys are the runs the journal kept, when they fit its rows."""
    if not table.source.rowid or sum(b - a + 1 for a, b in runs) != table.frame.height:
        return table
    keys = pl.concat(
        [pl.int_range(a, b + 1, dtype=pl.Int64, eager=True) for a, b in runs]
        or [pl.Series(ROWID, [], dtype=pl.Int64)]
    ).alias(ROWID)
    frame = table.frame.with_columns(keys)
    top = int(keys.max()) if len(keys) else None  # type: ignore[arg-type]
    return dataclasses.replace(table, frame=sorted_key(frame, ROWID), _index=None, top_key=top)


# A frame split in more chunks than this (by changes in its middle) is gathered again whole.
MAX_CHUNKS = 64


def rechunked(table: Table, pause: Callable[[float], None] = lambda seconds: None) -> Table:
    """The same rows in few chunks: the rows added lately gathered into one, and the whole
    table into one chunk per column when changes split it into many (a copy of every column,
    `pause`d between them)."""
    frame = table.frame
    if max(frame.n_chunks("all")) > MAX_CHUNKS:
        frame = sorted_key(gathered(frame, pause), table.key)
        return dataclasses.replace(table, frame=frame, _index=None, tail=0)
    if table.tail:
        start = frame.height - table.tail
        frame = frame.slice(0, start).vstack(frame.slice(start).rechunk())
        if table.frame[table.key].flags["SORTED_ASC"]:
            frame.replace_column(frame.get_column_index(table.key), frame[table.key].set_sorted())
    return dataclasses.replace(table, frame=frame, tail=0)
