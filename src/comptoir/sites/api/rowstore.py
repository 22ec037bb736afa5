"""A table's rows as the API writes them, one JSON object each, in a file beside the cache's.

A row by key was a Polars row turned into Python values and written as JSON: 25 µs, the most of
its answer, and only possible once Polars is imported and the rows read (a second of a start).
The cache (cache.py) keeps beside a table's Parquet file its rows already written: every row's
JSON, one per line, then where each line starts. A worker answers a row with its line, read from
the file — from the first moment, before Polars is even imported (starting.py), and after, as
long as the table is the one read (a write makes a new Table, without this store).

The file is made by Polars (`write_ndjson`, in Rust: a million rows in a second), and a row is
kept only where Polars writes it exactly as the API does (`output.dumps`, orjson) — same bytes,
so the same ETag whichever answers. For integers, booleans, dates and nulls the spelling is the
only one JSON has; floats and texts with control characters are compared value by value; other
types (datetimes, which Polars writes with a space where orjson writes `T`, nested types) make no
store, and the table's rows are written one at a time as before.

Layout: the rows' lines, then `rows + 1` offsets (unsigned 64-bit in this machine's byte order,
which the cache's entry records: where each line starts, and the end of the last), then `rows`
once more (8 bytes).
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import weakref
from array import array
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl

# Rows written at a time: the Polars text of this many rows is held at once (about 20 MB).
CHUNK_ROWS = 100_000
BYTE_ORDER = sys.byteorder  # of the offsets: an entry made elsewhere is a miss


def json_etag(body: bytes) -> str:
    """The entity tag of a row written as JSON (`dumps(row_object(row))`): `row_etag` without
    writing it again, for a GET that has just written it."""
    return f'"{hashlib.blake2b(body, digest_size=12).hexdigest()}"'


class RowStore:
    """A rows file: `row(at)` is row `at`'s JSON (a final newline included).

    The offsets are read into memory (8 bytes a row); a row is read with `pread`, through the
    page cache. Mapped, the file's pages would count in each worker's memory once touched (a
    million rows by random key touch all 190 MB of it); read, they are the system's cache, shared
    by the workers and given back under pressure, as SQLite's pages are to Datasette.
    """

    def __init__(self, path: Path, rows: int) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            size = os.fstat(fd).st_size
            index = 8 * (rows + 2)
            if size < index:
                raise ValueError("a rows file shorter than its offsets")
            tail = os.pread(fd, index, size - index)
            if len(tail) != index:
                raise ValueError("a rows file shorter than its offsets")
            offsets = array("Q")
            offsets.frombytes(tail)
            if offsets.pop() != rows or offsets[0] != 0 or offsets[rows] != size - index:
                raise ValueError("a rows file of another table")
        except BaseException:
            os.close(fd)
            raise
        if hasattr(os, "posix_fadvise"):
            # Read ahead in the background: with the file out of the page cache (a reboot), rows
            # by random key each waited for the disk (5,300 rows/s in the 5 s after a 2 s
            # warm-up, against 6,900 read ahead and 11,000 once all is cached).
            os.posix_fadvise(fd, 0, size - index, os.POSIX_FADV_WILLNEED)
        self._fd = fd
        self._offsets = offsets
        self.rows = rows
        weakref.finalize(self, os.close, fd)

    def row(self, at: int) -> bytes | None:
        """Row `at`'s JSON: `{...}\\n`; None if the file no longer has it (cut short since)."""
        start = self._offsets[at]
        size = self._offsets[at + 1] - start
        data = os.pread(self._fd, size, start)
        return data if len(data) == size else None


def _same_spelling() -> tuple[object, ...]:
    """The types whose every value Polars and orjson spell alike (compared with `==`: a
    column's type is an instance, these are classes)."""
    import polars as pl

    integers = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64)
    return (*integers, pl.Boolean, pl.Date, pl.Null)


def write_rows(frame: pl.DataFrame, out: IO[bytes]) -> bool:
    """Write the frame's rows file to `out`; False (nothing useful written) when Polars would not
    write every row as the API does."""
    import polars as pl

    from comptoir.sites.api.output import dumps

    same_spelling = _same_spelling()
    checked: list[str] = []
    for column, dtype in frame.schema.items():
        if dtype == pl.Float64 or dtype == pl.String:
            checked.append(column)
        elif dtype not in same_spelling:
            # Int128 among others: past 64 bits orjson gives way to the json module, which
            # writes text escaped to ASCII where Polars writes UTF-8.
            return False
    if not _same_values(frame, checked):
        return False
    offsets = array("Q", [0])
    at = 0
    for start in range(0, frame.height, CHUNK_ROWS):
        text = frame.slice(start, CHUNK_ROWS).write_ndjson().encode()
        # A JSON text spells a newline in a value `\n`: each one here ends a row.
        offsets.extend(at + m.end() for m in re.finditer(b"\n", text))
        out.write(text)
        at += len(text)
    if len(offsets) != frame.height + 1:
        return False
    # The whole rows, on a sample, as the API writes them: the column names' spelling too.
    step = max(1, frame.height // 97)
    for row_at in [*range(0, frame.height, step), frame.height - 1][: 100 if frame.height else 0]:
        out.seek(offsets[row_at])
        line = out.read(offsets[row_at + 1] - offsets[row_at])
        if line != dumps(dict(zip(frame.columns, frame.row(row_at), strict=True))):
            return False
    out.seek(0, os.SEEK_END)
    offsets.append(frame.height)
    out.write(offsets.tobytes())
    return True


def _same_values(frame: pl.DataFrame, columns: list[str]) -> bool:
    """Whether Polars writes each value of these columns (floats; texts with a control character,
    which JSON may spell two ways) as orjson does."""
    import orjson
    import polars as pl

    for column in columns:
        series = frame[column]
        if series.dtype == pl.String:
            series = series.filter(series.str.contains(r"[\x00-\x1f]"))
        if not len(series):
            continue
        lines = series.to_frame("v").write_ndjson().encode().split(b"\n")[:-1]
        polars_spelling = [line[5:-1] for line in lines]  # {"v":…}
        if series.dtype == pl.Float64:
            # No comma in a number: one orjson call for the whole column.
            ours = orjson.dumps(series.to_list())[1:-1].split(b",")
        else:
            ours = [orjson.dumps(v) for v in series.to_list()]
        if polars_spelling != ours:
            return False
    return True
