"""Streaming an upload to disk: request body → hidden `.part` file → fsync → atomic, unique name.

Bytes go from each ASGI `http.request` chunk (read by body.py, multipart bodies through
python-multipart's streaming parser) straight to the file with `os.write`, so nothing is held in
memory or copied twice. A request is all or nothing: its files stay under
temporary names in DIR (`.comptoir-upload-<run>-<random>.part`, hidden from listings) until the
whole body has arrived and been checked, then each is fsynced and linked to its final name —
`os.link` fails rather than replace an existing file, so two uploads of `a.txt`, in any worker
process, become `a.txt` and `a (1).txt`. A client that leaves, a limit passed or a full disk
remove every temporary file and every folder the request created.

Folders a request creates are bounded (MAX_DEPTH levels, MAX_NEW_FOLDERS a request) and count
against --max-total (FOLDER_BYTES each): a small body naming thousands of paths must not fill
the disk with folders nobody counted. They are made, and a failed request's files and folders
removed, in a thread: a system call each, by the thousand, would stall every other request.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import os
import secrets
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from comptoir.errors import HTTPError
from comptoir.http.listing import human_size
from comptoir.sites.receive.names import MAX_DEPTH, numbered, safe_components
from comptoir.state import StateStore

PART_PREFIX = ".comptoir-upload-"
PART_SUFFIX = ".part"
# More files than this in one multipart request is a misuse (one open name each until the end).
MAX_FILES = 1000
# New folders one request may create: as many as files, which a tree of MAX_FILES files rarely
# needs. Without a cap, 1,000 files 32 new levels deep each made 32,000 folders (~125 MB).
MAX_NEW_FOLDERS = 1000
# What a new folder counts against --max-total: its entry and one block of the file system,
# since an empty folder takes room too (4 KiB on ext4, APFS, NTFS).
FOLDER_BYTES = 4096
# --max-total is reserved in the shared store by blocks, not per chunk.
QUOTA_BLOCK = 8 * 1024 * 1024
# Taken names are tried as `name (1)` … `name (99)`, then with a random suffix: a folder holding
# thousands of copies of one name must not make each new one try thousands of links.
MAX_NUMBERED = 100
RANDOM_TRIES = 20

_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
# File systems without hard links (FAT, some network shares) answer os.link with one of these.
# What opening a folder with O_DIRECTORY | O_NOFOLLOW meets when it is a file or a symlink.
_NOT_A_FOLDER = (errno.ENOTDIR, errno.ELOOP)
_NO_LINKS = (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS)
_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_O_PART = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC

# The write primitive, a module attribute so tests can simulate a full disk.
_write = os.write


@dataclass(frozen=True)
class Limits:
    """Size limits of a receive site (None: no limit)."""

    max_size: int | None = None
    max_total: int | None = None


@dataclass(frozen=True)
class Saved:
    """A file received and in place."""

    # Path relative to DIR, "/"-separated (folders kept from the client's relative path).
    name: str
    size: int
    # What the client called it.
    sent_as: str


def disk_error(exc: OSError) -> HTTPError:
    """The answer for a failed write: 507 when the disk is full, else a plain server error."""
    if exc.errno in _DISK_FULL:
        return HTTPError(507, "Not enough free space on the server's disk")
    if exc.errno in (errno.EMFILE, errno.ENFILE):
        # Busy, not broken: the same request may succeed a moment later.
        return HTTPError(503, "The server has too many files open; try again", {"Retry-After": "5"})
    return HTTPError(500, "The server could not save the file")


def too_large(limit: int) -> HTTPError:
    """413 for a file larger than --max-size."""
    return HTTPError(413, f"File too large: the limit is {human_size(limit)} per file")


def total_exceeded(limit: int) -> HTTPError:
    """413 for an upload that would pass --max-total."""
    return HTTPError(413, f"Upload refused: this link accepts {human_size(limit)} in all")


def too_many_folders() -> HTTPError:
    """413 for a request that would create more than MAX_NEW_FOLDERS folders."""
    return HTTPError(413, f"Too many new folders in one request (at most {MAX_NEW_FOLDERS})")


class Quota:
    """Bytes this session may still accept (--max-total), shared by workers through the store.

    A request reserves bytes before writing them (by blocks, so the store is not called per
    chunk) and gives back what it did not keep when it ends.
    """

    def __init__(self, store: StateStore, key: str, limit: int | None) -> None:
        self.store = store
        self.key = key
        self.limit = limit
        self.reserved = 0
        # The most this request can need (its Content-Length): blocks never reserve beyond it,
        # so a small upload does not hold room a concurrent one could use.
        self.ceiling: int | None = None

    def used(self) -> int:
        """Bytes kept (or reserved by requests in flight) in this session so far."""
        return self.store.get_int(self.key)

    def need(self, total: int, block: int = QUOTA_BLOCK) -> None:
        """Make sure `total` bytes are reserved for this request; 413 if the session is full."""
        if self.limit is None or total <= self.reserved:
            return
        missing = total - self.reserved
        block = max(missing, block)
        if self.ceiling is not None:
            block = max(missing, min(block, self.ceiling - self.reserved))
        for amount in (block, missing):
            if self.store.incr_below(self.key, self.limit, amount) is not None:
                self.reserved += amount
                return
        raise total_exceeded(self.limit)

    def add(self, amount: int) -> None:
        """Reserve `amount` bytes more than this request holds (new folders, counted on top of a
        PUT's Content-Length reserved before); 413 if the session is full."""
        if self.limit is None:
            return
        if self.store.incr_below(self.key, self.limit, amount) is None:
            raise total_exceeded(self.limit)
        self.reserved += amount

    def settle(self, kept: int) -> None:
        """End of a request: keep `kept` bytes counted, give back the rest of the reservation."""
        if self.limit is not None and self.reserved != kept:
            self.store.incr(self.key, kept - self.reserved)
        self.reserved = kept


def part_prefix(tag: str) -> str:
    """The start of the temporary names of one run's uploads (`tag` tells runs apart)."""
    return f"{PART_PREFIX}{tag}-"


class PartFile:
    """One file being received, under a temporary name until it is complete.

    The temporary file lives in DIR itself (so the main process can find what a killed worker
    left, see `remove_parts`) and is linked into its destination folder at the end; a folder on
    another file system gets its temporary file in place instead (a link cannot cross).
    """

    def __init__(
        self, tmp_dir_fd: int, dir_fd: int, folder: str, name: str, sent_as: str, tag: str
    ) -> None:
        # Both borrowed from the Upload, which opens each folder once for all its files.
        self.tmp_dir_fd = tmp_dir_fd
        self.dir_fd = dir_fd
        self.folder = folder
        self.name = name
        self.sent_as = sent_as
        self.size = 0
        self.fd: int | None = None
        self.final: str | None = None
        self.tmp = ""
        for _ in range(16):
            self.tmp = part_prefix(tag) + secrets.token_hex(8) + PART_SUFFIX
            try:
                self.fd = os.open(self.tmp, _O_PART, 0o666, dir_fd=tmp_dir_fd)
                break
            except FileExistsError:
                continue
            except OSError as exc:
                raise disk_error(exc) from None
        else:
            raise HTTPError(500, "The server could not save the file")

    def write(self, data: bytes | memoryview) -> None:
        """Append `data` (no copy: a partial write continues from a view)."""
        assert self.fd is not None
        view = memoryview(data)
        try:
            while view:
                view = view[_write(self.fd, view) :]
        except OSError as exc:
            raise disk_error(exc) from None
        self.size += len(data)

    async def sync(self) -> None:
        """Flush the data to the disk and close the file (in a thread: fsync may take seconds)."""
        fd, self.fd = self.fd, None
        if fd is None:
            return
        try:
            await asyncio.to_thread(_fsync_and_close, fd)
        except OSError as exc:
            raise disk_error(exc) from None

    def _candidates(self) -> Iterator[str]:
        yield self.name
        for n in range(1, MAX_NUMBERED):
            yield numbered(self.name, str(n))
        for _ in range(RANDOM_TRIES):
            yield numbered(self.name, secrets.token_hex(3))

    def link(self) -> str:
        """Give the file its final name, the first free one of `name`, `name (1)`…; return it.

        Blocking (a link per name tried): called in a thread.
        """
        for candidate in self._candidates():
            try:
                os.link(self.tmp, candidate, src_dir_fd=self.tmp_dir_fd, dst_dir_fd=self.dir_fd)
            except FileExistsError:
                continue
            except OSError as exc:
                if exc.errno not in _NO_LINKS:
                    raise disk_error(exc) from None
                if not self._reserve_and_rename(candidate):
                    continue
                self.final = candidate
            else:
                self.final = candidate
                os.unlink(self.tmp, dir_fd=self.tmp_dir_fd)
            return candidate
        raise HTTPError(409, "Too many files of this name already")

    def _reserve_and_rename(self, candidate: str) -> bool:
        # Without hard links: claim the name with O_EXCL (atomic across processes), then move
        # the data over the empty file we own.
        try:
            os.close(os.open(candidate, _O_PART, 0o666, dir_fd=self.dir_fd))
        except FileExistsError:
            return False
        except OSError as exc:
            raise disk_error(exc) from None
        os.replace(self.tmp, candidate, src_dir_fd=self.tmp_dir_fd, dst_dir_fd=self.dir_fd)
        return True

    @property
    def relative(self) -> str:
        """The final path relative to DIR."""
        name = self.final or self.name
        return f"{self.folder}/{name}" if self.folder else name

    def discard(self) -> None:
        """Remove whatever this file left on disk (temporary or, on rollback, final name)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        with contextlib.suppress(OSError):
            os.unlink(self.tmp, dir_fd=self.tmp_dir_fd)
        if self.final is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.final, dir_fd=self.dir_fd)
            self.final = None


class Upload:
    """The files of one request: written under temporary names, then all kept or all removed."""

    def __init__(self, root: str, limits: Limits, quota: Quota, tag: str = "") -> None:
        self.root = root
        self.limits = limits
        self.quota = quota
        # Marks this run's temporary names (see `remove_parts`).
        self.tag = tag
        self.parts: list[PartFile] = []
        # Folders this request created (relative to root, parents first), removed if it fails.
        self.created: list[str] = []
        # Reserved for new folders in --max-total, on top of what the files take.
        self.folder_bytes = 0
        self.total = 0
        self.current: PartFile | None = None
        self.done = False
        # A thread is making folders with this upload's descriptors: cleanup waits for it.
        self._making_folders = False
        self._root_fd: int | None = None
        # One descriptor per destination folder, shared by its files: a request of 1,000 files
        # in one folder holds one, not 1,000.
        self._folder_fds: dict[tuple[str, ...], int] = {}

    def _root(self) -> int:
        if self._root_fd is None:
            try:
                self._root_fd = os.open(self.root, _O_DIR)
            except OSError as exc:
                raise disk_error(exc) from None
        return self._root_fd

    async def open(self, path: Sequence[str], sent_as: str) -> PartFile:
        """Start the next file, at the relative `path` (components, sanitized here)."""
        if self.done:
            # Aborted under us (the worker is stopping): stop reading this body.
            raise HTTPError(503, "The server is stopping")
        if len(self.parts) >= MAX_FILES:
            raise HTTPError(413, f"Too many files in one request (at most {MAX_FILES})")
        folders, name = safe_components(path)
        if len(folders) > MAX_DEPTH:
            raise HTTPError(400, f"Path too deep (at most {MAX_DEPTH} folders)")
        root_fd = self._root()
        if folders not in self._folder_fds:
            await self._open_folder_in_thread(root_fd, folders)
        dir_fd = self._folder_fds[folders]
        same_fs = not folders or os.fstat(dir_fd).st_dev == os.fstat(root_fd).st_dev
        tmp_dir_fd = root_fd if same_fs else dir_fd
        part = PartFile(tmp_dir_fd, dir_fd, "/".join(folders), name, sent_as, self.tag)
        self.parts.append(part)
        self.current = part
        return part

    async def _open_folder_in_thread(self, root_fd: int, folders: tuple[str, ...]) -> None:
        # A system call or two per level, up to MAX_NEW_FOLDERS of them for one request: on the
        # event loop they would stall every other request of the worker.
        self._making_folders = True
        try:
            await _in_thread_to_its_end(functools.partial(self._open_folder, root_fd, folders))
        finally:
            self._making_folders = False
            if self.done:
                # Aborted while the thread worked: the cleanup it waited for happens now.
                await _in_thread_to_its_end(self._remove)
        if self.done:
            raise HTTPError(503, "The server is stopping")

    def _open_folder(self, root_fd: int, folders: tuple[str, ...]) -> None:
        """Open (creating what is missing) the folder `folders` under DIR, for its files.

        Blocking: runs in a thread, while the request waits for it.
        """
        try:
            fd = os.dup(root_fd)
        except OSError as exc:
            raise disk_error(exc) from None
        path = ""
        counted = False
        try:
            for level, folder in enumerate(folders):
                path = f"{path}/{folder}" if path else folder
                child = _open_dir(folder, fd, path)
                if child is None:
                    if not counted:
                        # This level is missing, so are those below it: all are counted (the
                        # cap, --max-total) before the first is made.
                        self._reserve_folders(len(folders) - level)
                        counted = True
                    try:
                        if _make_folder(folder, fd):
                            self.created.append(path)
                    except OSError as exc:
                        raise disk_error(exc) from None
                    child = _open_dir(folder, fd, path)
                    if child is None:  # removed as soon as made
                        raise HTTPError(500, "The server could not save the file")
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        self._folder_fds[folders] = fd

    def _reserve_folders(self, new: int) -> None:
        """Count `new` folders about to be made against the request's cap and --max-total."""
        if len(self.created) + new > MAX_NEW_FOLDERS:
            raise too_many_folders()
        self.quota.add(new * FOLDER_BYTES)
        self.folder_bytes += new * FOLDER_BYTES

    def write(self, data: bytes | memoryview) -> None:
        """Append to the current file, enforcing --max-size and --max-total."""
        part = self.current
        if self.done or part is None:
            # Aborted under us (the worker is stopping): stop reading this body.
            raise HTTPError(503, "The server is stopping")
        size = part.size + len(data)
        if self.limits.max_size is not None and size > self.limits.max_size:
            raise too_large(self.limits.max_size)
        self.quota.need(self.folder_bytes + self.total + len(data))
        part.write(data)
        self.total += len(data)

    async def commit(self) -> list[Saved]:
        """Give every file its final name (all, or none if one fails); return them."""
        self.current = None
        for part in self.parts:
            await part.sync()
        # In a thread: with many taken names, trying them must not stall every other request.
        await asyncio.to_thread(lambda: [part.link() for part in self.parts])
        # The new names are durable only once their folders are (fsync each folder once).
        for dir_fd in self._folder_fds.values():
            try:
                await asyncio.to_thread(os.fsync, dir_fd)
            except OSError as exc:
                raise disk_error(exc) from None
        self.done = True
        # What stays counted: the files, and the folders this request made.
        self.quota.settle(self.total + len(self.created) * FOLDER_BYTES)
        self._close()
        return [Saved(p.relative, p.size, p.sent_as) for p in self.parts]

    async def abort(self) -> None:
        """Remove everything this request wrote; give back its share of --max-total."""
        if self.done:
            return
        self.done = True
        if not self._making_folders:
            # Else the thread works with our descriptors: `open` removes all once it is done.
            # Up to MAX_FILES files and MAX_NEW_FOLDERS folders: in a thread too.
            await _in_thread_to_its_end(self._remove)

    def _remove(self) -> None:
        """Remove the files and folders of this request (blocking: called in a thread)."""
        for part in self.parts:
            part.discard()
        if self._root_fd is not None:
            for path in reversed(self.created):
                # Another upload may have put files there meanwhile: then it stays.
                with contextlib.suppress(OSError):
                    os.rmdir(path, dir_fd=self._root_fd)
        self._close()
        self.quota.settle(0)

    def _close(self) -> None:
        for fd in self._folder_fds.values():
            os.close(fd)
        self._folder_fds.clear()
        if self._root_fd is not None:
            os.close(self._root_fd)
            self._root_fd = None


def _open_dir(name: str, dir_fd: int, path: str) -> int | None:
    """A descriptor of the folder `name` in `dir_fd`, None if there is none (409: not a folder)."""
    try:
        # O_NOFOLLOW: a symlink in DIR must not lead an upload out of DIR.
        return os.open(name, _O_DIR, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno in _NOT_A_FOLDER:
            raise HTTPError(409, f"{path} exists and is not a folder") from None
        # Out of descriptors (503), or anything else: not the client's conflict.
        raise disk_error(exc) from None


async def _in_thread_to_its_end(func: Callable[[], None]) -> None:
    """`func()` in a thread; a caller cancelled meanwhile still waits for it to end (it works
    with descriptors and folders that the caller's cleanup would close and remove)."""
    future = asyncio.get_running_loop().run_in_executor(None, func)
    try:
        await asyncio.shield(future)
    except asyncio.CancelledError:
        while not future.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait([future])
        if not future.cancelled():
            future.exception()  # retrieved: what the thread raised goes with the cancellation
        raise


def remove_parts(root: str, tag: str) -> int:
    """Remove the temporary files one run left in `root` (its workers were killed); how many."""
    prefix = part_prefix(tag)
    removed = 0
    with contextlib.suppress(OSError), os.scandir(root) as entries:
        for entry in entries:
            if entry.name.startswith(prefix) and entry.name.endswith(PART_SUFFIX):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                    removed += 1
    return removed


class PartsCleaner:
    """A main-process service whose stop, after the workers are gone, removes their leftovers.

    Workers remove what a failed upload wrote, but a worker still receiving when the server
    stops is killed once the grace period is over, with no chance to clean up after itself.
    """

    def __init__(self, root: str, tag: str) -> None:
        self.name = "receive"
        self.root = root
        self.tag = tag

    async def start(self) -> list[str]:
        """Nothing to start, no address to show."""
        return []

    async def stop(self) -> None:
        """Remove this run's temporary files."""
        remove_parts(self.root, self.tag)


def _fsync_and_close(fd: int) -> None:
    # Runs in a thread and owns `fd`: if the request is cancelled meanwhile, nothing else
    # closes (or reuses) the descriptor under it.
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_folder(name: str, dir_fd: int) -> bool:
    """Make a folder in `dir_fd`; False when it exists already (made meanwhile by another
    upload: used as it is, and not counted as this one's)."""
    try:
        os.mkdir(name, dir_fd=dir_fd)
    except FileExistsError:
        return False
    return True
