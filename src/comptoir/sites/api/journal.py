"""A table's journal: the writes acknowledged and not yet in its file, one JSON line each, in a
hidden file next to it (`people.csv` → `.people.csv.comptoir-journal`).

    {"comptoir-journal":1,"id":"…","previous":"…","data":[size,mtime_ns],"tail":0,"rowids":null}
    {"op":"put","row":{"id":7,"name":"Ada",…}}
    {"op":"delete","key":3}

The first line is the generation's header: its id, the generation it follows (None for a journal
begun on its own), the signature (size, modification time) of the data file its changes apply to,
and how many bytes after the header were carried over from the generation before (`tail`: its
followers have read them there already); for a rowid table, the rows' keys as runs, which the file
does not keep.

Who does what, all of it under `flock` on the journal, which every worker of every server on the
file respects:
- a write (live.py) locks the journal, reads what other workers appended, checks its change against
  the rows as they now are, appends one line (or one per change of a batch) and `fdatasync`s before
  the answer goes out: a 2xx means the change is on the disk;
- a reader only `stat`s the journal (size and inode) before each request and reads the lines it
  has not seen: a write acknowledged by one worker is seen by the next request to any other;
- the file's rewrite (live.py's compaction) writes the rows into `.people.csv.comptoir-new`, then,
  locked, puts it in the file's place and starts a new generation holding the lines appended
  meanwhile (`rotate`). The old journal stays readable to those who have it open: they read it to
  its end, find the new one continuing it, and skip its tail.

A crash leaves at worst: a line without its end (a write never acknowledged: cut off by the next
writer), a rewrite not yet in place (made again), or the rewrite in place and the journal not
rotated (`recover` finishes the rotation from `.people.csv.comptoir-journal.new`; without it, the
old generation's changes are applied again, which gives the same rows: changes.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from comptoir.sites.api.files import journal_path
from comptoir.sites.api.output import dumps
from comptoir.sites.api.tables import signature

FORMAT = 1


def sync_folder(path: Path) -> None:
    """Flush a folder's entries (a file made or renamed in it) to the disk."""
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Header:
    """The first line of a journal's generation."""

    id: str
    previous: str | None
    data: tuple[int, int]
    tail: int = 0
    rowids: list[list[int]] | None = None

    def line(self) -> bytes:
        """The header as the journal's first line."""
        return dumps(
            {
                "comptoir-journal": FORMAT,
                "id": self.id,
                "previous": self.previous,
                "data": list(self.data),
                "tail": self.tail,
                "rowids": self.rowids,
            }
        )

    @classmethod
    def parse(cls, line: bytes) -> Header:
        """The header of a journal's first line (ValueError if it is not one)."""
        obj = json.loads(line)
        if not isinstance(obj, dict) or obj.get("comptoir-journal") != FORMAT:
            raise ValueError("not a comptoir journal (or a newer format)")
        size, mtime = obj["data"]
        rowids = obj.get("rowids")
        return cls(
            str(obj["id"]),
            None if obj.get("previous") is None else str(obj["previous"]),
            (int(size), int(mtime)),
            int(obj.get("tail", 0)),
            [[int(a), int(b)] for a, b in rowids] if rowids is not None else None,
        )

    @classmethod
    def new(
        cls,
        data: tuple[int, int],
        *,
        previous: str | None = None,
        tail: int = 0,
        rowids: list[list[int]] | None = None,
    ) -> Header:
        """A new generation's header, with an id of its own."""
        return cls(secrets.token_hex(8), previous, data, tail, rowids)


@dataclass
class Reading:
    """What a journal held that had not been read.

    `entries` continue the rows as they were; then, when the journal became another generation:
    `header` is that generation, and `fresh` is None when it continues the one read before (its
    data file has every change before its tail: adopt its signature), else every change of it, to
    apply to the rows of its data file.
    """

    entries: list[dict[str, Any]] = field(default_factory=list)
    header: Header | None = None
    fresh: list[dict[str, Any]] | None = None


class Journal:
    """One worker's hold on a table's journal: which generation it follows, and how far."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.path = journal_path(data)
        self.fd: int | None = None
        self.ino = 0
        self.header: Header | None = None
        self.start = 0  # where the changes begin, after the header
        self.offset = 0  # how far the changes were read: always the end of a line
        self.seen = -1  # the file's size when it was last read
        self.problems: list[str] = []

    # --- reading ------------------------------------------------------------------------

    def follow(self) -> Reading:
        """What was appended since the last reading, following the journal into its next
        generation when it was replaced (or into a journal made anew)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            st = None
        if self.fd is not None and st is not None and st.st_ino == self.ino:
            return Reading(self._lines())
        # Replaced, removed or made: what is left of the generation followed so far comes first.
        left = self._lines() if self.fd is not None else []
        previous = self.header.id if self.header is not None else None
        self.close()
        if st is None or not self._open():
            return Reading(left)
        assert self.header is not None
        if previous is not None and self.header.previous == previous:
            self.offset = self.start + self.header.tail  # read in the generation before
            return Reading(left + self._lines(), self.header)
        return Reading(left, self.header, self._lines())

    def whole(self) -> list[dict[str, Any]]:
        """Every change of the generation followed, from its header (to apply on its data file)."""
        self.offset = self.start
        return self._lines()

    def _open(self) -> bool:
        """Open the journal at its path and read its header; False if there is none (yet)."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        head = _read_line(fd)
        if not head.endswith(b"\n"):
            os.close(fd)  # being made: its header comes under its maker's lock
            return False
        try:
            header = Header.parse(head[:-1])
        except (ValueError, KeyError, TypeError) as exc:
            os.close(fd)
            self.problems.append(f"{self.path}: not read: {exc}")
            return False
        self.fd, self.ino, self.header = fd, os.fstat(fd).st_ino, header
        self.start = self.offset = len(head)
        return True

    def _lines(self) -> list[dict[str, Any]]:
        """The whole lines after `offset` (a line still being written waits for its end)."""
        assert self.fd is not None
        size = os.fstat(self.fd).st_size
        self.seen = size
        if size <= self.offset:
            return []
        chunks = []
        at = self.offset
        while at < size:
            chunk = os.pread(self.fd, min(size - at, 1 << 24), at)
            if not chunk:
                break
            chunks.append(chunk)
            at += len(chunk)
        data = b"".join(chunks)
        end = data.rfind(b"\n") + 1
        entries = parse_lines(data[:end], self.problems)
        self.offset += end
        return entries

    # --- writing (under the lock) ---------------------------------------------------------

    def lock(self, wait: bool = True) -> bool:
        """Lock the generation followed for a write; False when it was replaced or removed
        meanwhile (unlocked again: follow it, then lock again). BlockingIOError when another
        holds it and `wait` is False."""
        return self._flock(fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))

    def unlock(self) -> None:
        """Let the other writers in."""
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)

    def create(self, data: tuple[int, int], rowids: list[list[int]] | None, mode: int) -> bool:
        """Begin a journal where there is none, locked, with its header on the disk; False when
        another worker made one first (follow it)."""
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, mode)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            st = os.fstat(fd)
            try:
                replaced = os.stat(self.path).st_ino != st.st_ino
            except FileNotFoundError:
                replaced = True
            if st.st_size or replaced:
                os.close(fd)
                return False
            header = Header.new(data, rowids=rowids)
            line = header.line()
            _write_all(fd, line)
            os.fdatasync(fd)
            sync_folder(self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
            raise
        self.close()
        self.fd, self.ino, self.header = fd, st.st_ino, header
        self.start = self.offset = self.seen = len(line)
        return True

    def trim(self) -> None:
        """Cut off a line without its end: a writer died writing it, so it was never
        acknowledged, and the next line must not be glued to it."""
        assert self.fd is not None
        self._lines()  # `seen` is the size now
        if self.seen > self.offset:
            os.ftruncate(self.fd, self.offset)
            self.problems.append(
                f"{self.path}: an unfinished change ({self.seen - self.offset} bytes) cut off"
            )
            self.seen = self.offset

    def append(self, lines: bytes) -> None:
        """Append changes and flush them to the disk (on failure, none of them stays)."""
        assert self.fd is not None
        try:
            _write_all(self.fd, lines)
            os.fdatasync(self.fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, self.offset)
            raise
        self.offset += len(lines)
        self.seen = self.offset

    def pending(self) -> bool:
        """Whether this generation holds changes (its data file lacks them)."""
        return self.fd is not None and max(self.seen, self.offset) > self.start

    def tail_from(self, offset: int) -> bytes:
        """The changes after `offset`, as they are in the file."""
        assert self.fd is not None
        return os.pread(self.fd, max(0, self.offset - offset), offset)

    def rotate(self, header: Header, tail: bytes, rewrite: Path) -> None:
        """Locked: put the data file's rewrite in its place and begin the generation `header`
        (holding `tail`, the changes the rewrite lacks), then follow it."""
        new = self.path.with_name(self.path.name + ".new")
        fd = os.open(new, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            os.fchmod(fd, os.stat(self.data).st_mode & 0o777)
            line = header.line()
            _write_all(fd, line + tail)
            os.fdatasync(fd)
            os.replace(rewrite, self.data)
            os.replace(new, self.path)
            sync_folder(self.path)
        except BaseException:
            os.close(fd)
            raise
        self.close()  # the old generation: unlocked with it
        self.fd, self.ino, self.header = fd, os.fstat(fd).st_ino, header
        self.start = len(line)
        self.offset = self.seen = len(line) + len(tail)

    def remove(self) -> bool:
        """Locked: remove a journal that holds no change (its data file has them all)."""
        if self.pending() or self.fd is None:
            return False
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        sync_folder(self.path)
        self.close()
        return True

    def shared(self) -> bool:
        """Lock the generation followed against writers and rotations, to look at its data file
        and journal together; False when it was replaced meanwhile (then nothing is locked)."""
        return self._flock(fcntl.LOCK_SH)

    def _flock(self, operation: int) -> bool:
        """flock the generation followed; False (and unlocked) when its file is no longer the
        journal's: a rotation replaced it, or it was removed, while this waited."""
        assert self.fd is not None
        fcntl.flock(self.fd, operation)
        try:
            current = os.stat(self.path).st_ino
        except FileNotFoundError:
            current = -1
        if current != self.ino:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            return False
        return True

    def recover(self) -> None:
        """Finish a rotation a crash interrupted: the next generation written, the rewrite in
        place, the journal not yet replaced (otherwise the next generation is dropped)."""
        new = self.path.with_name(self.path.name + ".new")
        if not new.exists():
            return
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.stat(self.path).st_ino != os.fstat(fd).st_ino:
                return  # rotated meanwhile, by a worker that finished its own rotation
            try:
                current = Header.parse(_read_line(fd).rstrip(b"\n"))
                header = Header.parse(_read_line_at(new))
                done = header.previous == current.id and header.data == signature(self.data)
            except FileNotFoundError:
                return
            except (ValueError, KeyError, TypeError, OSError):
                done = False
            if done:
                os.replace(new, self.path)
                self.problems.append(f"{self.path}: a rewrite interrupted by a crash, completed")
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(new)
            sync_folder(self.path)
        finally:
            os.close(fd)

    def close(self) -> None:
        """Let go of the generation followed (and its lock)."""
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
        self.fd = None
        self.ino = 0
        self.header = None
        self.start = self.offset = 0
        self.seen = -1


def parse_lines(data: bytes, problems: list[str] | None = None) -> list[dict[str, Any]]:
    """The changes of whole journal lines (a line that is not one is told in `problems`)."""
    entries = []
    for line in data.split(b"\n"):
        if not line:
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if isinstance(entry, dict):
            entries.append(entry)
        elif problems is not None:
            problems.append("a journal line that is not a change, left out")
    return entries


def encode(entries: list[dict[str, Any]]) -> bytes:
    """Changes as journal lines."""
    return b"".join(dumps(e) for e in entries)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_line(fd: int) -> bytes:
    """The first line of a file, however long (a header with many rowid runs)."""
    parts: list[bytes] = []
    for chunk in _chunks(fd):
        end = chunk.find(b"\n")
        if end >= 0:
            parts.append(chunk[: end + 1])
            break
        parts.append(chunk)
    return b"".join(parts)


def _chunks(fd: int) -> Iterator[bytes]:
    at = 0
    while chunk := os.pread(fd, 1 << 20, at):
        yield chunk
        at += len(chunk)


def _read_line_at(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        line = _read_line(fd)
    finally:
        os.close(fd)
    if not line.endswith(b"\n"):
        raise ValueError("no header")
    return line[:-1]
