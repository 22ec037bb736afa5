"""A table's rows as read, kept in a Parquet file so that the next start does not parse again.

Parsing a CSV is most of an api site's start: Polars reads 90 MB of CSV in about a second on one
core, and then the start checked the file in a process of its own and read it again in each
worker. The rows as read (types inferred, `--type` applied, key found, malformed rows left out) go
to `<cache>/comptoir/tables/<entry>.parquet`, with what the read found beside them in
`<entry>.json`; the Parquet file is read back in a seventh of that time, and the JSON alone
tells the start's check what it needs (the columns and their types, the rows left out) without
Polars touching a row in the process the workers are forked from (docs/decisions.md).

An entry is one data file read with one set of options (`--id`, `--type`, `--strict`): its name is
a hash of them and of the file's real path, so a file's next version replaces its last. It stands
for the file while the file's device, inode, size, modification and change times are the ones it
recorded, and its rows file is the one it names, with the hash it recorded; anything else (a
file edited, a different Polars, an entry half written, damaged or of another shape) is a miss,
and the file is parsed as if there were no cache. A file modified less than two seconds before
it was read is not kept: on a file system whose times are that coarse (FAT), a rewrite of the
same size within the tick would keep its stamp. The cache is in `$XDG_CACHE_HOME`
(else `~/.cache`), or `$COMPTOIR_CACHE_DIR`; where it cannot be written, nothing is kept and
nothing fails.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import json
import os
import re
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from comptoir.sites.api.rowstore import BYTE_ORDER, RowStore, write_rows

if TYPE_CHECKING:
    from comptoir.sites.api.tables import Table

# Bumped when what an entry holds changes: older entries are then misses.
FORMAT = 5
# Entries not used for this long are removed when one is written; beyond KEEP_ENTRIES, the least
# lately used go first, but never one used within RECENT_SECONDS (a start reading more tables
# than KEEP_ENTRIES would otherwise evict each entry before its next use).
KEEP_SECONDS = 30 * 24 * 3600
KEEP_ENTRIES = 64
RECENT_SECONDS = 24 * 3600
# A file modified this recently may change again within its file system's time resolution.
RACY_SECONDS = 2.0
# The names comptoir gives what it keeps: nothing else in the folder is ever touched.
_ENTRY = re.compile(r"[0-9a-f]{32}\.json")
_ROWS = re.compile(r"[0-9a-f]{32}-[0-9a-f]{16}\.(parquet|rows)")
# Rows files of earlier formats (one per entry, named as its JSON).
_LEGACY = re.compile(r"[0-9a-f]{32}\.(arrow|parquet)")
_TEMPORARY = "comptoir-"
_META_KEYS = {"format": int, "path": str, "stamp": list, "rows": str, "rows_bytes": int}
_META_KEYS |= {"rows_hash": str, "key": str, "columns": dict, "dtypes": dict, "source": dict}
_META_KEYS |= {"problems": list, "skipped": int}
# The rows written as JSON (rowstore.py), when Polars writes them as the API does: the file's
# name and size, the byte order of its offsets, and (first key, rows) when the keys are the
# integers first, first + 1, … in order.
_JSON_KEYS = {"json_rows": str, "json_rows_bytes": int, "byte_order": str}


@dataclass(frozen=True)
class Entry:
    """A cached read of one data file: the rows' Parquet file and what the read found."""

    rows: Path
    meta: dict[str, Any]

    @property
    def columns(self) -> dict[str, str]:
        """Column → type name (integer, float, boolean, date, datetime, string), in order."""
        columns: dict[str, str] = self.meta["columns"]
        return columns

    @property
    def span(self) -> tuple[int, int] | None:
        """(first key, rows) when the keys are first, first + 1, … in order, else None."""
        span = self.meta.get("span")
        return (span[0], span[1]) if span else None

    def row_store(self) -> RowStore | None:
        """The rows written as JSON (rowstore.py); None when the entry has none or it cannot be read
        (then rows are written one at a time)."""
        meta = self.meta
        if "json_rows" not in meta or meta["byte_order"] != BYTE_ORDER:
            return None
        path = self.rows.with_name(meta["json_rows"])
        try:
            if path.stat().st_size != meta["json_rows_bytes"]:
                return None
            return RowStore(path, meta["rows_count"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def read_rows(self) -> bytes:
        """The rows file's bytes, checked against the hash recorded (ValueError if not theirs:
        damaged on disk, or another store's)."""
        data = self.rows.read_bytes()
        if _digest(data) != self.meta["rows_hash"]:
            raise ValueError("the rows file is not the one recorded")
        return data


def folder() -> Path | None:
    """Where entries are kept: `$COMPTOIR_CACHE_DIR/tables`, else under `$XDG_CACHE_HOME` (else
    `~/.cache`) in `comptoir/tables`; None when there is no such place (no home)."""
    own = os.environ.get("COMPTOIR_CACHE_DIR")
    if own:
        return Path(own) / "tables"
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        try:
            base = str(Path.home() / ".cache")
        except RuntimeError:
            return None  # no HOME, and a user the password database does not know
    return Path(base) / "comptoir" / "tables"


def _trusted(base: Path) -> bool:
    """Whether the folder is this user's alone: a real folder (not a link to elsewhere), owned
    by this user, that nobody else can write to, in a folder where nobody else can replace it
    (others may write to the parent only if it is sticky, as /tmp is). Rows read from a folder
    others can write to could be anyone's."""
    st = os.lstat(base)
    if not os.path.isdir(base) or os.path.islink(base):
        return False
    if st.st_uid != os.getuid() or st.st_mode & 0o022:
        return False
    parent = os.stat(base.parent)
    return not parent.st_mode & 0o022 or bool(parent.st_mode & 0o1000)


def stamp(path: Path) -> list[int]:
    """What tells that a file is the one an entry was made from."""
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


@functools.cache
def _engine() -> str:
    """The version of Polars, read from its package's metadata: a start that finds its tables
    in the cache does not import Polars before it serves (starting.py)."""
    try:
        return importlib.metadata.version("polars")
    except importlib.metadata.PackageNotFoundError:
        import polars as pl  # installed under another name (polars-lts-cpu…)

        return str(pl.__version__)


def _name(path: Path, key: str | None, types: Mapping[str, str] | None, strict: bool) -> str:
    what = [FORMAT, _engine(), str(path.resolve()), key, sorted((types or {}).items()), strict]
    return hashlib.sha256(json.dumps(what).encode()).hexdigest()[:32]


def _meta(text: str) -> dict[str, Any] | None:
    """An entry's JSON, if it has the shape this comptoir writes."""
    meta = json.loads(text)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        return None
    for key, kind in _META_KEYS.items():
        if not isinstance(meta.get(key), kind):
            return None
    if not _ROWS.fullmatch(meta["rows"]) or not meta["rows"].endswith(".parquet"):
        return None
    if "json_rows" in meta:
        for key, kind in _JSON_KEYS.items():
            if not isinstance(meta.get(key), kind):
                return None
        if not _ROWS.fullmatch(meta["json_rows"]) or not meta["json_rows"].endswith(".rows"):
            return None
    span = meta.get("span")
    if span is not None and not (
        isinstance(span, list) and len(span) == 2 and all(type(v) is int for v in span)
    ):
        return None
    if not isinstance(meta.get("rows_count"), int):
        return None
    return meta


def lookup(
    path: Path, *, key: str | None, types: Mapping[str, str] | None, strict: bool
) -> Entry | None:
    """The entry standing for `path` read with these options, or None."""
    try:
        base = folder()
        if base is None or not _trusted(base):
            return None
        name = _name(path, key, types, strict)
        meta = _meta((base / f"{name}.json").read_text("utf-8"))
        if meta is None or meta["stamp"] != stamp(path):
            return None
        rows = base / meta["rows"]
        if rows.stat().st_size != meta["rows_bytes"]:
            return None
        with contextlib.suppress(OSError):
            os.utime(base / f"{name}.json")  # its last use, for pruning
    except (OSError, ValueError, TypeError, RuntimeError):
        return None
    return Entry(rows, meta)


def store(
    table: Table,
    read: list[int],
    *,
    key: str | None,
    types: Mapping[str, str] | None,
    strict: bool,
) -> None:
    """Keep `table` as read from a file whose `stamp` was `read` (best effort: whatever fails,
    nothing is kept and nothing is left behind)."""
    if time.time() - read[1] / 1e9 < RACY_SECONDS:
        return  # modified just before it was read: see the module's docstring
    written: list[str] = []
    try:
        _store(table, read, key, types, strict, written)
    except Exception:
        # A full disk, a file size limit, a folder that cannot be made: Polars reports some as
        # its own errors, not OSError. A cache that cannot be written is no cache.
        for leftover in written:
            with contextlib.suppress(OSError):
                os.unlink(leftover)


def _store(
    table: Table,
    read: list[int],
    key: str | None,
    types: Mapping[str, str] | None,
    strict: bool,
    written: list[str],
) -> None:
    from comptoir.sites.api.query import type_name
    from comptoir.sites.api.tables import key_span

    base = folder()
    if base is None:
        return
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not _trusted(base):
        return
    name = _name(table.path, key, types, strict)
    # The rows under a name of their own (a store of another version of the file, racing this
    # one, cannot mix its rows file with this one's JSON), then the JSON naming them, each
    # written under a temporary name, flushed and renamed: a reader finds a whole entry or a
    # miss.
    with tempfile.NamedTemporaryFile(dir=base, prefix=_TEMPORARY, delete=False) as out:
        written.append(out.name)
        # One row group: read back, each column is one chunk, as a parsed CSV's (rows by key
        # are 2x slower in a chunked column). Compressed: 20 MB for 92 MB of CSV, and
        # decompressed straight into the frame (docs/decisions.md has the figures).
        table.frame.write_parquet(
            out, compression="zstd", statistics=False, row_group_size=max(table.frame.height, 1)
        )
        out.flush()
        os.fsync(out.fileno())
    data = Path(out.name).read_bytes()
    suffix = os.urandom(8).hex()
    rows = f"{name}-{suffix}.parquet"
    os.replace(out.name, base / rows)
    written[0] = str(base / rows)
    json_rows = _store_json_rows(table, base, f"{name}-{suffix}.rows", written)
    meta = {
        "format": FORMAT,
        "path": str(table.path.resolve()),
        "stamp": read,
        "rows": rows,
        "rows_bytes": len(data),
        "rows_hash": _digest(data),
        "key": table.key,
        "columns": {c: type_name(t) for c, t in table.frame.schema.items()},
        "dtypes": {c: str(t) for c, t in table.frame.schema.items()},
        "source": vars(table.source),
        "problems": [[p.line, p.message] for p in table.problems],
        "skipped": table.skipped,
        "rows_count": table.frame.height,
        "span": list(span) if (span := key_span(table.frame[table.key])) else None,
        **json_rows,
    }
    with tempfile.NamedTemporaryFile(
        "w", dir=base, prefix=_TEMPORARY, delete=False, encoding="utf-8"
    ) as text:
        written.append(text.name)
        json.dump(meta, text)
        text.flush()
        os.fsync(text.fileno())
    entry = base / f"{name}.json"
    previous = None
    with contextlib.suppress(OSError, ValueError):
        previous = _meta(entry.read_text("utf-8"))
    os.replace(text.name, entry)
    written.clear()  # the entry is whole: nothing to take back
    if previous is not None and previous["rows"] != rows:
        # The last version's rows (a reader that found the old JSON misses, and parses).
        for old in (previous["rows"], previous.get("json_rows")):
            if old:
                with contextlib.suppress(OSError):
                    (base / old).unlink()
    _prune(base)


def _store_json_rows(table: Table, base: Path, name: str, written: list[str]) -> dict[str, Any]:
    """The rows written as JSON (rowstore.py) under `name`: the entry's keys naming them, or
    none when Polars does not write this table's rows as the API does."""
    with tempfile.NamedTemporaryFile("w+b", dir=base, prefix=_TEMPORARY, delete=False) as out:
        written.append(out.name)
        if not write_rows(table.frame, out):
            out.close()
            os.unlink(written.pop())
            return {}
        out.flush()
        os.fsync(out.fileno())
        size = out.tell()
    os.replace(out.name, base / name)
    written[-1] = str(base / name)
    return {"json_rows": name, "json_rows_bytes": size, "byte_order": BYTE_ORDER}


def _prune(base: Path) -> None:
    """Entries of files gone, unused for KEEP_SECONDS, of another shape, or beyond KEEP_ENTRIES
    (the least lately used, but not used within RECENT_SECONDS), removed, with rows files no
    entry names (a hit touches its JSON: its modification time is its last use). Only names
    comptoir gives are touched."""
    now = time.time()
    entries: list[tuple[bool, float, Path, tuple[str, ...]]] = []
    for meta_path in base.iterdir():
        if not _ENTRY.fullmatch(meta_path.name):
            continue
        try:
            used = meta_path.stat().st_mtime
            meta = _meta(meta_path.read_text("utf-8"))
        except (OSError, ValueError):
            continue
        source = meta["path"] if meta is not None else ""
        stale = meta is None or not os.path.exists(source) or now - used > KEEP_SECONDS
        files = tuple(meta[k] for k in ("rows", "json_rows") if k in meta) if meta else ()
        entries.append((stale, -used, meta_path, files))
    entries.sort()
    kept = [(-minus_used, m, files) for stale, minus_used, m, files in entries if not stale]
    doomed = {m for stale, _, m, _ in entries if stale}
    doomed |= {m for used, m, _ in kept[KEEP_ENTRIES:] if now - used > RECENT_SECONDS}
    named = {name for _, m, files in kept if m not in doomed for name in files}
    for _, _, meta_path, files in entries:
        if meta_path in doomed:
            for path in (meta_path, *(base / name for name in files)):
                with contextlib.suppress(OSError):
                    path.unlink()
    for path in base.iterdir():
        with contextlib.suppress(OSError):
            age = now - path.stat().st_mtime
            orphan = bool(_ROWS.fullmatch(path.name)) and path.name not in named
            orphan = orphan or bool(_LEGACY.fullmatch(path.name))
            # Rows no entry names go at once (a store of the same entry renames its rows an
            # instant before its JSON: a file that new is left to it); temporary files after an
            # hour, far longer than any store takes.
            if (orphan and age > 60) or (path.name.startswith(_TEMPORARY) and age > 3600):
                path.unlink()
