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
for the file while the file's size, modification and change times and inode are the ones it
recorded; anything else (a file edited, a different Polars, an entry half written or unreadable)
is a miss, and the file is parsed as if there were no cache. The cache is in `$XDG_CACHE_HOME`
(else `~/.cache`), or `$COMPTOIR_CACHE_DIR`; where it cannot be written, nothing is kept and
nothing fails.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from comptoir.sites.api.tables import Table

# Bumped when what an entry holds changes: older entries are then misses.
FORMAT = 3
# Entries not used for this long, or beyond this many, are removed when one is written.
KEEP_SECONDS = 30 * 24 * 3600
KEEP_ENTRIES = 64


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


def folder() -> Path:
    """Where entries are kept: `$COMPTOIR_CACHE_DIR/tables`, else under `$XDG_CACHE_HOME` (else
    `~/.cache`) in `comptoir/tables`."""
    own = os.environ.get("COMPTOIR_CACHE_DIR")
    if own:
        return Path(own) / "tables"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "comptoir" / "tables"


def _trusted(base: Path) -> bool:
    """Whether the folder is this user's alone: rows read from a folder others can write to
    (a `$COMPTOIR_CACHE_DIR` in /tmp) could be anyone's."""
    st = os.stat(base)
    return st.st_uid == os.getuid() and not st.st_mode & 0o022


def stamp(path: Path) -> list[int]:
    """What tells that a file is the one an entry was made from."""
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _name(path: Path, key: str | None, types: Mapping[str, str] | None, strict: bool) -> str:
    import polars as pl

    what = [FORMAT, pl.__version__, str(path.resolve()), key, sorted((types or {}).items()), strict]
    return hashlib.sha256(json.dumps(what).encode()).hexdigest()[:32]


def lookup(
    path: Path, *, key: str | None, types: Mapping[str, str] | None, strict: bool
) -> Entry | None:
    """The entry standing for `path` read with these options, or None."""
    try:
        name = _name(path, key, types, strict)
        base = folder()
        if not _trusted(base):
            return None
        meta = json.loads((base / f"{name}.json").read_text("utf-8"))
        rows = base / f"{name}.parquet"
        if meta.get("stamp") != stamp(path) or rows.stat().st_size != meta.get("rows_bytes"):
            return None
        with contextlib.suppress(OSError):
            os.utime(base / f"{name}.json")  # its last use, for pruning
    except (OSError, ValueError, TypeError):
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
    """Keep `table` as read from a file whose `stamp` was `read` (best effort: an error keeps
    nothing)."""
    from comptoir.sites.api.query import type_name

    written: list[str] = []
    try:
        name = _name(table.path, key, types, strict)
        base = folder()
        base.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not _trusted(base):
            return
        # Written under temporary names and renamed, the JSON last (it names the rows' file
        # size): a reader finds a whole entry or a miss.
        with tempfile.NamedTemporaryFile(dir=base, suffix=".tmp", delete=False) as out:
            written.append(out.name)
            # One row group: read back, each column is one chunk, as a parsed CSV's (rows by
            # key are 2x slower in a chunked column). Compressed: 20 MB for 92 MB of CSV, and
            # decompressed straight into the frame (docs/decisions.md has the figures).
            table.frame.write_parquet(
                out,
                compression="zstd",
                statistics=False,
                row_group_size=max(table.frame.height, 1),
            )
        rows = base / f"{name}.parquet"
        os.replace(out.name, rows)
        meta = {
            "format": FORMAT,
            "path": str(table.path.resolve()),
            "stamp": read,
            "rows_bytes": rows.stat().st_size,
            "key": table.key,
            "columns": {c: type_name(t) for c, t in table.frame.schema.items()},
            "source": vars(table.source),
            "problems": [[p.line, p.message] for p in table.problems],
            "skipped": table.skipped,
        }
        with tempfile.NamedTemporaryFile(
            "w", dir=base, suffix=".tmp", delete=False, encoding="utf-8"
        ) as text:
            written.append(text.name)
            json.dump(meta, text)
        os.replace(text.name, base / f"{name}.json")
        _prune(base)
    except OSError:
        # A cache that cannot be written is no cache: the next start parses the file again.
        for leftover in written:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(leftover)


def _prune(base: Path) -> None:
    """Entries of files gone, unused for KEEP_SECONDS, of another format, or beyond
    KEEP_ENTRIES, removed (a hit touches its JSON: its modification time is its last use)."""
    now = time.time()
    entries = []
    for meta in base.glob("*.json"):
        try:
            used = meta.stat().st_mtime
            found = json.loads(meta.read_text("utf-8"))
        except (OSError, ValueError):
            continue
        source = found.get("path", "")
        stale = not source or not os.path.exists(source) or now - used > KEEP_SECONDS
        stale = stale or found.get("format") != FORMAT  # an older comptoir's
        entries.append((stale, -used, meta))
    entries.sort()
    kept = [meta for stale, _, meta in entries if not stale]
    for meta in [m for stale, _, m in entries if stale] + kept[KEEP_ENTRIES:]:
        for path in (meta, meta.with_suffix(".parquet"), meta.with_suffix(".arrow")):
            with contextlib.suppress(OSError):
                path.unlink()
    # Temporary files of a writer that died: an hour is far longer than any write takes.
    for tmp in base.glob("*.tmp"):
        with contextlib.suppress(OSError):
            if now - tmp.stat().st_mtime > 3600:
                tmp.unlink()
