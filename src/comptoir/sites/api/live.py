"""The tables of an api site as they change: each data file with its journal (journal.py).

- **Reads** (`refresh`, before each request that reads a table): one `stat` of the journal; when
  another worker (or another server on the same file) appended changes, they are read and applied
  first. A data file changed on disk by someone else (checked at most once a second) is read
  again, with the journal's changes on top.
- **Writes** (`write`, with `--write`): the changes waiting in a worker are committed together:
  the journal locked and read to its end, each change checked against the rows as they now are
  (writes.py), the accepted ones appended and flushed to the disk (`fdatasync`), then the new rows
  published. The answer goes out after that: an acknowledged write survives `kill -9`.
- **The file** (`rewrite`): half a second after a write (longer for a table whose last rewrite
  took longer), one worker writes the rows into a new file next to the data file, then puts it in
  place and rotates the journal, so that a spreadsheet opening the file sees the writes and the
  file is never seen half written. Other workers take the new file without reading it: they know
  its rows. At start, changes left in a journal (a crash) are applied, and written into the file.

Tables are snapshots (tables.py): a change publishes a new Table in the site's `tables`, and a
request keeps the one it started with. A table's lock lets one thing at a time touch its journal.
A commit runs on the event loop, the flush its one wait, unless it would wait for more (a lock
held elsewhere, a file to read: `Busy`); then it runs in the table's own thread, as reading the
journal for a read and the rewrite's short locked steps do. No data file is read on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import os
import threading
import time
from collections.abc import Callable, Iterator, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import polars as pl

from comptoir.errors import ConfigError
from comptoir.sites.api.changes import apply_entries, rechunked, rowid_runs, with_rowids
from comptoir.sites.api.errors import ApiError
from comptoir.sites.api.files import rewrite_path
from comptoir.sites.api.journal import Header, Journal, encode, parse_lines
from comptoir.sites.api.tables import Table, signature, write_data
from comptoir.sites.api.writes import Change, Done, decide

T = TypeVar("T")

# How often a data file is checked for a change made by someone else.
RELOAD_EVERY = 1.0
# How long after a write the file is written again (at least: never more than half the time).
REWRITE_AFTER = 0.5
# How long a worker stopping waits for another one's rewrite of the same file.
CLOSE_WAIT = 60.0

Outcome = Done | ApiError


class Busy(Exception):
    """A write would wait (a lock another holds, a file to read): not on the event loop."""


class Unreadable(Exception):
    """The data file changed on disk and cannot be read: writes wait until it can."""


class LiveTable:
    """One table: the rows published, the journal followed, the file written again."""

    def __init__(
        self,
        site: LiveTables,
        name: str,
        table: Table,
    ) -> None:
        self.site = site
        self.name = name
        self.path = table.path
        self.journal = Journal(table.path)
        # The data file the rows come from: the journal's changes are on top of it.
        self.base = table.signature
        self.lock = threading.Lock()
        self.thread = ThreadPoolExecutor(1, thread_name_prefix=f"comptoir-api-{name}")
        self.checked = time.monotonic()
        self.catching_up: asyncio.Future[None] | None = None
        self.queue: list[tuple[Change, asyncio.Future[Outcome]]] = []
        self.committing: asyncio.Task[None] | None = None
        self.rewriting: asyncio.Task[None] | None = None
        self.rewrite_took = 0.0
        self.reloads = 0  # a rewrite made from rows read before a reload is dropped
        self.known = (0, -1)  # the journal (inode, size) the rows published have everything of
        self.unreadable: str | None = None  # why the data file, changed, could not be read
        self.closing = False

    @property
    def table(self) -> Table:
        """The rows as published."""
        return self.site.tables[self.name]

    def _publish(self, table: Table) -> None:
        if table.signature != self.base:
            table = replace(table, signature=self.base)
        self.site.tables[self.name] = table

    @contextlib.contextmanager
    def _locked(self, wait: bool = True) -> Iterator[None]:
        """This table's lock (Busy if `wait` is False and another thread holds it); what the
        journal held when it is let go is in the rows published (a read that finds the journal
        so needs nothing more: `stale`)."""
        if not self.lock.acquire(blocking=wait):
            raise Busy
        try:
            yield
        finally:
            self.known = (self.journal.ino, self.journal.seen)
            self.lock.release()

    def stale(self) -> bool:
        """Whether the journal holds what the rows published lack: one `stat` (event loop)."""
        try:
            st = os.stat(self.journal.path)
        except OSError:
            return self.known[0] != 0
        return (st.st_ino, st.st_size) != self.known

    def _log(self, message: str) -> None:
        self.site.log(f"api: {self.path.name}: {message}")

    def _problems(self, problems: list[str]) -> None:
        problems = self.journal.problems + problems
        self.journal.problems = []
        for problem in problems[:20]:
            self._log(problem)
        if len(problems) > 20:
            self._log(f"… and {len(problems) - 20} more")

    async def _run(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.thread, work)

    # --- following (in the table's thread) -------------------------------------------------

    def attach(self) -> None:
        """At start: the changes a journal holds (a crash left them) applied to the rows."""
        try:
            self._attach()
        except OSError as exc:
            self._log(f"its journal could not be read: {exc}")

    def _attach(self) -> None:
        with self._locked():
            self.journal.recover()
            self._leftover()
            reading = self.journal.follow()
            if reading.header is None:
                return
            if reading.header.data != self.base:
                self._reload()
                return
            table = self.table
            if reading.header.rowids is not None:
                table = with_rowids(table, reading.header.rowids)
            table, problems = apply_entries(table, reading.fresh or [])
            self._publish(table)
            if reading.fresh:
                self._log(f"{len(reading.fresh)} changes from its journal, not in the file yet")
            self._problems(problems)

    def _leftover(self) -> None:
        """Remove a rewrite a crash left, unless a worker is making one now."""
        rewrite = rewrite_path(self.path)
        if not rewrite.exists():
            return
        with contextlib.suppress(OSError), _locked_data(self.path, wait=False) as locked:
            if locked:
                rewrite.unlink(missing_ok=True)

    def catch_up(self) -> None:
        """Apply what other workers appended; read the file again if someone else changed it."""
        with self._locked():
            try:
                self._follow()
                if self._file_changed():
                    self._reload()
            except OSError as exc:
                self._log(f"its journal could not be read: {exc} (serving the rows as they were)")

    def _file_changed(self) -> bool:
        try:
            return signature(self.path) != self.base
        except OSError:
            return False  # gone for a moment (an editor saving): keep serving what was read

    def _follow(self, wait: bool = True) -> None:
        """Apply what the journal holds beyond what was read (Busy when the data file must be
        read again and `wait` is False: the next `_follow` does it)."""
        reading = self.journal.follow()
        table, problems = apply_entries(self.table, reading.entries)
        header = reading.header
        if header is not None and reading.fresh is None:
            self.base = header.data  # the next generation: its data file has the rows we have
        elif header is not None and header.data == self.base:
            table, more = apply_entries(table, reading.fresh or [])
            problems += more
        elif header is not None:
            self._problems(problems)
            if not wait:
                self.base = (-1, -1)  # read it again: `_file_changed` says so from now on
                raise Busy
            self._reload()
            return
        if reading.entries or header is not None:
            self._publish(table)
        self._problems(problems)

    def _reload(self) -> bool:
        """Read the data file again, then every change of its journal's generation, checked
        under a shared lock to be the file that generation applies to; False if it cannot be
        read (the rows as they were are served)."""
        self.reloads += 1
        for _ in range(5):
            self.journal.close()
            self.journal.follow()  # opens the current generation, if any
            try:
                fresh = self.site.load(self.name)
            except ConfigError as exc:
                self._log(f"{exc} (still serving the rows read before)")
                self.journal.close()
                self.unreadable = str(exc)
                return False
            if self.journal.fd is None:
                if not self._file_changed_from(fresh.signature):
                    break
                continue
            if not self.journal.shared():
                continue
            try:
                same = signature(self.path) == fresh.signature
            except OSError:
                same = False
            finally:
                self.journal.unlock()
            if same:
                break
        else:
            self._log("changed while being read, five times: serving the last reading")
        self.site.reported(fresh)
        self.base = fresh.signature
        self.unreadable = None
        header = self.journal.header
        if header is None:
            self._publish(fresh)
            self.site.reloaded()
            return True
        changes = self.journal.whole()
        if header.data == fresh.signature and header.rowids is not None:
            fresh = with_rowids(fresh, header.rowids)
        elif header.data != fresh.signature and changes:
            self._log(
                f"changed on disk while {len(changes)} changes were not in it yet: "
                "they are applied to its new rows, by key"
            )
        table, problems = apply_entries(fresh, changes)
        self._publish(table)
        self.site.reloaded()
        self._problems(problems)
        return True

    def _file_changed_from(self, read: tuple[int, int]) -> bool:
        try:
            return signature(self.path) != read
        except OSError:
            return False

    # --- writing (in the table's thread) ---------------------------------------------------

    def _hold(self, wait: bool = True) -> None:
        """Lock the journal for a write, up to date: made if there is none, read to its end, its
        data file the one our rows come from. With `wait` False, Busy rather than wait for
        another writer or read a file: the caller is the event loop."""
        while True:
            self._follow(wait)
            if self._file_changed() and not wait:
                raise Busy
            if self._file_changed() and not self._reload():
                raise Unreadable(self.unreadable or "")
            if self._file_changed():
                continue
            if self.journal.fd is None:
                mode = os.stat(self.path).st_mode & 0o666
                if self.journal.create(self.base, rowid_runs(self.table), mode):
                    return
                continue
            try:
                if not self.journal.lock(wait):
                    continue
            except BlockingIOError:
                raise Busy from None
            reading = self.journal.follow()  # what was appended before we had the lock
            table, problems = apply_entries(self.table, reading.entries)
            if reading.entries:
                self._publish(table)
            if self._file_changed():
                self.journal.unlock()
                self._problems(problems)
                if not wait:
                    raise Busy
                if not self._reload():
                    raise Unreadable(self.unreadable or "")
                continue
            self.journal.trim()
            self._problems(problems)
            return

    def commit(self, changes: list[Change], wait: bool = True) -> list[Outcome]:
        """Check and apply changes, each against the rows the ones before it made; append those
        accepted to the journal, on the disk before this returns. With `wait` False (on the
        event loop), Busy when that would mean waiting for a lock or reading a file."""
        with self._locked(wait):
            self._hold(wait)
            try:
                outcomes: list[Outcome] = []
                entries = []
                table = self.table
                for change in changes:
                    try:
                        table, done, entry = decide(table, change)
                    except ApiError as refusal:
                        outcomes.append(refusal)
                        continue
                    except (pl.exceptions.PolarsError, ValueError, TypeError) as exc:
                        # A column of a type rows cannot be made of (from a Parquet file).
                        error = {"error": f"the row cannot be stored: {_first_line(exc)}"}
                        outcomes.append(ApiError(422, error))
                        continue
                    outcomes.append(done)
                    entries.append(entry)
                if entries:
                    self.journal.append(encode(entries))
                    self._publish(table)
                return outcomes
            finally:
                self.journal.unlock()

    def rewrite(self) -> str:
        """Write the rows into the data file if the journal holds changes: `done`, `more` (changes
        came meanwhile), `clean` (nothing to write), `busy` (another worker is at it), `gone`.

        The rows are written, then gathered into one chunk per column and brought up to date
        with the changes made meanwhile, all outside the table's lock; under it, only what came
        in the last moments is applied, the file put in place and the journal rotated."""
        with _locked_data(self.path, wait=False) as locked:
            if not locked:
                return "busy"
            with self._locked():
                self._hold()
                try:
                    if os.stat(self.path).st_ino != locked:
                        return "busy"  # replaced since it was opened
                    if not self.journal.pending():
                        return "clean"
                    snapshot, end, generation = self.table, self.journal.offset, self.journal.header
                    reloads = self.reloads
                    assert self.journal.fd is not None and generation is not None
                    # This generation, whatever the table's thread does with its own descriptor.
                    journal = os.dup(self.journal.fd)
                finally:
                    self.journal.unlock()
            try:
                return self._rewrite(snapshot, end, generation, reloads, journal)
            finally:
                os.close(journal)
        return "gone"

    def _pause(self, seconds: float) -> None:
        """Between two parts of a rewrite, as long as the last one took: a rewrite takes half of
        the processor at most, and requests get the other half (two cores here, and Polars uses
        both). None once the worker stops: no request waits then, and --grace is counted."""
        if not self.closing:
            time.sleep(min(seconds, 0.1))

    def _rewrite(
        self, snapshot: Table, end: int, generation: Header, reloads: int, journal: int
    ) -> str:
        started = time.monotonic()
        rewrite = rewrite_path(self.path)
        write_data(snapshot.frame, snapshot.source, rewrite, self._pause)
        os.chmod(rewrite, os.stat(self.path).st_mode & 0o777)
        written = signature(rewrite)
        runs = rowid_runs(snapshot)
        fresh = rechunked(snapshot, self._pause)
        applied = end
        problems: list[str] = []
        for _ in range(3):
            upto = self.journal.offset  # only grows while this generation lasts
            if upto - applied <= 0:
                break
            changes = parse_lines(os.pread(journal, upto - applied, applied))
            fresh, more = apply_entries(fresh, changes)
            problems += more
            applied = upto
        with self._locked():
            self._hold()
            try:
                if self.reloads != reloads or self.journal.header != generation:
                    rewrite.unlink(missing_ok=True)
                    return "busy"
                tail = self.journal.tail_from(end)
                header = Header.new(written, previous=generation.id, tail=len(tail), rowids=runs)
                last = parse_lines(self.journal.tail_from(applied))
                self.journal.rotate(header, tail, rewrite)
                self.base = written
                table, more = apply_entries(fresh, last)
                self._publish(table)
            finally:
                self.journal.unlock()
        self._problems(problems + more)
        self.rewrite_took = time.monotonic() - started
        return "more" if tail else "done"

    def remove(self) -> None:
        """A journal holding no change removed (the server stops: the file has every write)."""
        with self._locked():
            self._follow()
            if self.journal.fd is None:
                return
            if self.journal.lock():
                try:
                    self.journal.follow()
                    if not self._file_changed():
                        self.journal.remove()
                finally:
                    self.journal.unlock()
            self.journal.close()

    # --- on the event loop -------------------------------------------------------------------

    async def refresh(self) -> None:
        """Before a read: the changes other workers made, and the file changed by someone else."""
        now = time.monotonic()
        due = now - self.checked >= RELOAD_EVERY
        if due:
            self.checked = now
        # Without --write no worker appends to the journal: no `stat` of it per read.
        stale = self.site.writable and self.stale()
        if self.catching_up is None and (stale or (due and self._file_changed())):
            self.catching_up = asyncio.ensure_future(self._run(self.catch_up))
            self.catching_up.add_done_callback(self._caught_up)
        if self.catching_up is not None:
            await asyncio.shield(self.catching_up)

    def fresh(self) -> bool:
        """Whether `refresh` would have nothing to do now (it may have: False), without doing
        it: the outer fast path answers a row only then (app.py)."""
        return (
            self.catching_up is None
            and time.monotonic() - self.checked < RELOAD_EVERY
            and not (self.site.writable and self.stale())
        )

    def _caught_up(self, future: asyncio.Future[None]) -> None:
        self.catching_up = None

    async def write(self, change: Change) -> Outcome:
        """Commit one change (with the others waiting in this worker) and say how it went."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self.queue.append((change, future))
        if self.committing is None or self.committing.done():
            self.committing = asyncio.create_task(self._commit_queue())
        return await asyncio.shield(future)

    async def _commit_queue(self) -> None:
        while self.queue:
            await asyncio.sleep(0)  # the requests already received join this batch
            batch, self.queue = self.queue, []
            changes = [c for c, _ in batch]
            try:
                try:
                    # On the event loop: the flush of the journal is the only wait (a thread
                    # hop cost more, measured: docs/decisions.md)...
                    outcomes = self.commit(changes, wait=False)
                except Busy:
                    # ...unless a lock is held (another worker writing, this one's rewrite
                    # putting its file in place) or a file must be read: in the table's thread.
                    outcomes = await self._run(functools.partial(self.commit, changes))
            except Unreadable as exc:
                error = {"error": f"the table's file changed and cannot be read: {exc}"}
                outcomes = [ApiError(503, error, {"Retry-After": "5"})] * len(batch)
            except OSError as exc:
                self._log(f"a write could not be saved: {exc}")
                error = {"error": f"the change could not be saved: {exc.strerror or exc}"}
                outcomes = [ApiError(503, error, {"Retry-After": "5"})] * len(batch)
            except Exception as exc:  # a bug: each request gets its 500, none waits forever
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if not future.done():
                    future.set_result(outcome)
            if any(isinstance(o, Done) for o in outcomes):
                self.rewrite_soon()

    def rewrite_soon(self) -> None:
        """Have the file written again shortly (one rewrite at a time, in the background)."""
        if self.rewriting is None or self.rewriting.done():
            self.rewriting = asyncio.create_task(self._rewrites())

    async def _rewrites(self) -> None:
        delay = max(REWRITE_AFTER, self.rewrite_took)
        while True:
            await asyncio.sleep(delay)
            try:
                result = await asyncio.to_thread(self.rewrite)
            except Unreadable:
                delay = 5.0  # said when it was found; written once the file can be read again
                continue
            except OSError as exc:
                self._log(f"not written again: {exc} (its journal keeps the changes)")
                delay = 5.0
                continue
            if result == "busy":
                delay = REWRITE_AFTER
            elif result == "more":
                delay = max(REWRITE_AFTER, self.rewrite_took)
            else:
                return

    async def close(self, writable: bool) -> None:
        """The worker stops: every write in the file, the journal removed, the thread ended."""
        self.closing = True
        if self.committing is not None:
            await asyncio.gather(self.committing, return_exceptions=True)
        if self.rewriting is not None:
            self.rewriting.cancel()
            await asyncio.gather(self.rewriting, return_exceptions=True)
        try:
            if writable:
                deadline = time.monotonic() + CLOSE_WAIT
                while await self._run(self.rewrite) in ("busy", "more"):
                    if time.monotonic() > deadline:
                        break
                    await asyncio.sleep(0.05)
                await self._run(self.remove)
        except Unreadable:
            self._log("not written again: it cannot be read (its journal keeps the changes)")
        except OSError as exc:
            self._log(f"not written again: {exc} (its journal keeps the changes)")
        finally:
            await self._run(self.journal.close)
            self.thread.shutdown(wait=False)


class LiveTables:
    """Every table of a site, as `LiveTable`s publishing into the site's `tables`."""

    def __init__(
        self,
        tables: MutableMapping[str, Table],
        load: Callable[[str], Table],
        *,
        log: Callable[[str], None],
        reported: Callable[[Table], None] = lambda table: None,
        reloaded: Callable[[], None] = lambda: None,
        writable: bool = False,
    ) -> None:
        self.tables = tables
        self.load = load
        self.log = log
        self.reported = reported
        self.reloaded = reloaded
        self.writable = writable
        self.live = {name: LiveTable(self, name, table) for name, table in tables.items()}
        for live in self.live.values():
            live.attach()

    async def refresh(self, name: str) -> None:
        """Before a read of table `name`: up to date with the other workers and the file."""
        live = self.live.get(name)
        if live is not None:
            await live.refresh()

    async def write(self, name: str, change: Change) -> Outcome:
        """Commit a change to table `name`."""
        return await self.live[name].write(change)

    async def start(self) -> None:
        """The worker starts: changes a crash left in journals are written into the files."""
        if self.writable:
            for live in self.live.values():
                if live.journal.pending():
                    live.rewrite_soon()

    async def close(self) -> None:
        """The worker stops (see LiveTable.close)."""
        for live in self.live.values():
            await live.close(self.writable)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


@contextlib.contextmanager
def _locked_data(path: Path, *, wait: bool) -> Any:
    """Lock the data file as it is now (the worker rewriting it holds this); yields its inode,
    or 0 when another worker holds it (`wait=False`) or it is gone."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        yield 0
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield 0
            return
        yield os.fstat(fd).st_ino
    finally:
        os.close(fd)
