"""The lean file path: cached stat, strong ETag, conditional requests, ranges, pathsend.

Why not Starlette's FileResponse/StaticFiles: they stat and open every file in a thread per request
(0.07x nginx here). Instead a `FileInfo` is kept per file for `revalidate` seconds: within that
interval a request makes no system call at all; after it, one `stat` tells whether the cached
headers (and, for small files, the cached body) still hold. Large bodies go to the server with
`http.response.pathsend`, which granian sends from Rust without passing through Python.

A file changed on disk is therefore served stale for at most `revalidate` seconds (default 1 s).
"""

from __future__ import annotations

import asyncio
import os
import stat
import time
import zlib
from collections.abc import AsyncGenerator, Callable, Iterable
from dataclasses import dataclass, field
from email.utils import formatdate

from comptoir.http.errors import send_error
from comptoir.http.mime import content_type, is_textual
from comptoir.http.plan import Plan, Representation, plan, send_plan
from comptoir.http.reuse import REUSE, Reusable
from comptoir.types import Receive, Scope, Send

Headers = list[tuple[bytes, bytes]]

# Files up to this size are kept in memory once read; larger ones are sent with pathsend.
SMALL_FILE = 256 * 1024
# Total memory the small-file cache may hold.
CACHE_BYTES = 64 * 1024 * 1024
# Chunk size for bodies we read ourselves (ranges of large files, on-the-fly gzip, and files a
# share counts): 1 MiB, with a thread hop per chunk, streams 1 GiB at 3.0 GB/s here, 256 KiB at 2.2.
CHUNK = 1024 * 1024
# ...but near the end of a body, smaller chunks. What has been handed to the server and not yet
# received sits in its queue and the socket buffers: the smaller the last chunks, the less a client
# that hangs up just before the end can leave there unseen (a share counts a download complete when
# its last byte is handed over).
TAIL_CHUNK = 64 * 1024
TAIL = 4 * 1024 * 1024
# Below this size compressing on the fly costs more than it saves.
MIN_COMPRESS = 1024


def http_date(ts: float) -> str:
    """An IMF-fixdate for a timestamp, as used in Last-Modified."""
    return formatdate(ts, usegmt=True)


@dataclass
class FileInfo:
    """What we know about one file, valid while its (mtime, size, inode) is unchanged."""

    path: str
    size: int
    mtime_ns: int
    ino: int
    content_type: str
    etag: str
    last_modified: str
    # Precompressed siblings (`file.br`, `file.gz`), by content-coding.
    variants: dict[str, FileInfo] = field(default_factory=dict)
    # Content-Encoding of this representation ("" for identity).
    encoding: str = ""
    body: bytes | None = None
    gzipped: bytes | None = None
    # (options, etag, has variants, headers): the last base headers built (see _base_headers).
    header_cache: tuple[FileOptions, str, bool, tuple[tuple[bytes, bytes], ...]] | None = field(
        default=None, repr=False, compare=False
    )
    # What the planner sees of this file (see representation()).
    planned: Representation | None = field(default=None, repr=False, compare=False)

    def representation(self) -> Representation:
        """This file as http/plan.py sees it; made once, so planning a file allocates nothing."""
        rep = self.planned
        if rep is None or rep.etag is not self.etag:
            rep = Representation(self.size, self.etag, self.last_modified, self.mtime)
            self.planned = rep
        return rep

    @property
    def mtime(self) -> int:
        """Modification time in whole seconds (the resolution of HTTP dates)."""
        return self.mtime_ns // 1_000_000_000

    def same_file(self, st: os.stat_result) -> bool:
        """True if a fresh stat still describes the file this info was built from."""
        return st.st_mtime_ns == self.mtime_ns and st.st_size == self.size and st.st_ino == self.ino


def make_etag(st: os.stat_result, encoding: str = "") -> str:
    """A strong ETag from modification time and size (identical across worker processes)."""
    suffix = f"-{encoding}" if encoding else ""
    return f'"{st.st_mtime_ns:x}-{st.st_size:x}{suffix}"'


def build_info(path: str, st: os.stat_result, *, with_variants: bool = True) -> FileInfo:
    """Build the FileInfo of a regular file from its stat."""
    info = FileInfo(
        path=path,
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        ino=st.st_ino,
        content_type=content_type(path),
        etag=make_etag(st),
        last_modified=http_date(st.st_mtime),
    )
    if with_variants:
        info.variants = find_variants(path, info.content_type)
    return info


_VARIANTS = (("br", ".br"), ("gzip", ".gz"))


def find_variants(path: str, ctype: str) -> dict[str, FileInfo]:
    """The precompressed siblings (`path.br`, `path.gz`) of a file, by content-coding.

    `path` is a real path already checked by http/paths.py. Siblings are taken only when they are
    regular files themselves (lstat): a symlink `file.gz` could lead where no URL may go.
    """
    variants: dict[str, FileInfo] = {}
    for coding, ext in _VARIANTS:
        try:
            vst = os.lstat(path + ext)
        except (OSError, ValueError):
            continue
        if stat.S_ISREG(vst.st_mode):
            v = build_info(path + ext, vst, with_variants=False)
            v.content_type = ctype
            v.encoding = coding
            v.etag = make_etag(vst, coding)
            variants[coding] = v
    return variants


def _variants_changed(info: FileInfo) -> bool:
    """True if a precompressed sibling appeared, vanished or changed since `info` was built."""
    for coding, ext in _VARIANTS:
        try:
            vst: os.stat_result | None = os.lstat(info.path + ext)
        except (OSError, ValueError):
            vst = None
        if vst is not None and not stat.S_ISREG(vst.st_mode):
            vst = None
        known = info.variants.get(coding)
        if (vst is None) != (known is None):
            return True
        if vst is not None and known is not None and not known.same_file(vst):
            return True
    return False


def _held_bytes(info: FileInfo | None) -> int:
    """Memory the cache holds for a file: its body, gzipped body and precompressed bodies."""
    if info is None:
        return 0
    held = len(info.body or b"") + len(info.gzipped or b"")
    return held + sum(_held_bytes(v) for v in info.variants.values())


@dataclass
class _Entry:
    info: FileInfo | None  # None: not a regular file (or missing)
    is_dir: bool
    checked: float


class FileCache:
    """Stat results and small bodies, re-validated at most every `revalidate` seconds."""

    def __init__(
        self,
        revalidate: float = 1.0,
        *,
        max_entries: int = 10_000,
        max_bytes: int = CACHE_BYTES,
        clock: Callable[[], float] = time.monotonic,
        variants: bool = True,
    ) -> None:
        self.revalidate = revalidate
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.clock = clock
        # Look for precompressed siblings (`x.gz` served for `x`); a share offers only `x`.
        self.variants = variants
        self._entries: dict[str, _Entry] = {}
        self._bytes = 0

    def lookup(self, path: str, *, force: bool = False) -> tuple[FileInfo | None, bool]:
        """(FileInfo for a regular file or None, is_dir) for an absolute path; never raises.

        `force` checks the disk even within the `revalidate` interval.
        """
        now = self.clock()
        entry = self._entries.get(path)
        if entry is not None and not force and now - entry.checked < self.revalidate:
            return entry.info, entry.is_dir
        try:
            st = os.stat(path)
        except (OSError, ValueError):
            self._store(path, _Entry(None, False, now), entry)
            return None, False
        if stat.S_ISDIR(st.st_mode):
            self._store(path, _Entry(None, True, now), entry)
            return None, True
        if not stat.S_ISREG(st.st_mode):
            # Devices, FIFOs, sockets: never served.
            self._store(path, _Entry(None, False, now), entry)
            return None, False
        if entry is not None and entry.info is not None and entry.info.same_file(st):
            # Unchanged: keep headers and body; the precompressed siblings may have changed alone.
            info = entry.info
            if self.variants and _variants_changed(info):
                self._bytes -= sum(_held_bytes(v) for v in info.variants.values())
                info.variants = find_variants(info.path, info.content_type)
            entry.checked = now
            return info, False
        info = build_info(path, st, with_variants=self.variants)
        self._store(path, _Entry(info, False, now), entry)
        return info, False

    def fresh_until(self, path: str) -> float:
        """Until when (this cache's clock) `path`'s entry is trusted without a stat; 0 if none."""
        entry = self._entries.get(path)
        return 0.0 if entry is None else entry.checked + self.revalidate

    def _store(self, path: str, new: _Entry, old: _Entry | None) -> None:
        if old is not None:
            self._bytes -= _held_bytes(old.info)
        if len(self._entries) >= self.max_entries and path not in self._entries:
            # Crude but bounded: drop everything rather than track recency on the hot path.
            self._entries.clear()
            self._bytes = 0
        self._entries[path] = new

    def read_small(self, info: FileInfo) -> bytes | None:
        """The body of a small file, read once and kept; None if too large or unreadable."""
        if info.body is not None:
            return info.body
        if info.size > SMALL_FILE:
            return None
        try:
            with open(info.path, "rb") as f:
                data = f.read(SMALL_FILE + 1)
        except OSError:
            return None
        if len(data) != info.size:
            # Changed under us: don't cache a body that disagrees with the headers.
            return None
        if self._bytes + len(data) <= self.max_bytes:
            info.body = data
            self._bytes += len(data)
        return data

    def keep_gzipped(self, info: FileInfo, data: bytes) -> None:
        """Keep the on-the-fly gzipped body of a small file, within the memory budget."""
        if info.gzipped is None and self._bytes + len(data) <= self.max_bytes:
            info.gzipped = data
            self._bytes += len(data)


def parse_accept_encoding(header: str) -> dict[str, float]:
    """Content-codings and their q-values from an Accept-Encoding header."""
    out: dict[str, float] = {}
    for part in header.split(","):
        token, _, params = part.strip().partition(";")
        token = token.strip().lower()
        if not token:
            continue
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        out[token] = q
    return out


def _accepts(codings: dict[str, float], coding: str) -> bool:
    if coding in codings:
        return codings[coding] > 0
    return codings.get("*", 0) > 0


@dataclass(frozen=True)
class FileOptions:
    """How files are answered: caching policy and compression."""

    cache_control: str = "public, max-age=0, must-revalidate"
    compress: bool = False
    extra_headers: tuple[tuple[bytes, bytes], ...] = ()


# The request headers answering a file depends on; the others are not even decoded.
FILE_REQUEST_HEADERS = frozenset(
    (
        b"range",
        b"if-range",
        b"accept-encoding",
        b"if-match",
        b"if-none-match",
        b"if-modified-since",
        b"if-unmodified-since",
    )
)


def request_headers(scope: Scope) -> dict[str, str]:
    """The request headers a file answer depends on, by lower-case name (the last value wins)."""
    out: dict[str, str] = {}
    for name, value in scope["headers"]:
        name = name.lower()
        if name in FILE_REQUEST_HEADERS:
            out[name.decode("latin-1")] = value.decode("latin-1")
    return out


@dataclass(slots=True)
class FileAnswer:
    """The planned answer for a file: what `send_planned_file` sends, exactly."""

    # The file: as it is on disk now whenever the body comes from there.
    info: FileInfo
    # What is sent: the file, or a precompressed sibling.
    rep: FileInfo
    # Gzipped on the fly (--compress).
    gzip: bool
    etag: str
    options: FileOptions
    plan: Plan


def plan_file(
    scope: Scope,
    info: FileInfo,
    cache: FileCache,
    options: FileOptions,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> FileAnswer | None:
    """Plan the answer to a GET or HEAD for a file (http/plan.py); None if it is gone (404).

    `status` other than 200 (e.g. 404 for a custom 404.html) disables conditionals and ranges.
    """
    hdrs = headers if headers is not None else request_headers(scope)
    planned = _plan(scope["method"], hdrs, info, cache, options, status)
    if planned is None:
        return None
    info, rep, gzip_on_the_fly, etag, decided = planned
    return FileAnswer(info, rep, gzip_on_the_fly, etag, options, decided)


async def send_planned_file(
    send: Send,
    answer: FileAnswer,
    cache: FileCache,
    *,
    extra: Iterable[tuple[bytes, bytes]] = (),
    pathsend: bool = False,
) -> None:
    """Send a file's planned answer; `pathsend` lets the server send a whole large file itself."""
    await _send_planned(
        send,
        answer.info,
        answer.rep,
        answer.gzip,
        answer.etag,
        answer.options,
        answer.plan,
        cache,
        extra,
        pathsend,
    )


async def send_file(
    scope: Scope,
    receive: Receive,
    send: Send,
    info: FileInfo,
    cache: FileCache,
    options: FileOptions,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
    extra: Iterable[tuple[bytes, bytes]] = (),
    reuse_until: float | None = None,
) -> None:
    """Answer a GET or HEAD for a file, honouring preconditions, ranges and encodings.

    `status` other than 200 (e.g. 404 for a custom 404.html) disables conditionals and ranges.
    `reuse_until`: the caller vouches that the whole answer depends on nothing but the request's
    host, path and query until then; a whole body from memory is then offered to the fast path
    (http/reuse.py).
    """
    # plan_file + send_planned_file, without the FileAnswer between them: this is the hot path.
    hdrs = headers if headers is not None else request_headers(scope)
    planned = _plan(scope["method"], hdrs, info, cache, options, status)
    if planned is None:
        await send_error(scope, send, 404, "Not found")
        return
    info, rep, gzip_on_the_fly, etag, decided = planned
    pathsend = "http.response.pathsend" in (scope.get("extensions") or ())
    await _send_planned(
        send,
        info,
        rep,
        gzip_on_the_fly,
        etag,
        options,
        decided,
        cache,
        extra,
        pathsend,
        reuse_until,
    )


def _plan(
    method: str,
    hdrs: dict[str, str],
    info: FileInfo,
    cache: FileCache,
    options: FileOptions,
    status: int,
) -> tuple[FileInfo, FileInfo, bool, str, Plan] | None:
    """(file, what is sent, gzipped on the fly, its ETag, the plan), or None if the file is gone."""
    range_header = hdrs.get("range") if status == 200 else None
    accept = hdrs.get("accept-encoding")
    rep, gzip_on_the_fly = _pick_coding(info, accept, range_header, options)
    if rep.body is None:
        # The body will come from disk, not from memory: the headers we send must describe the
        # file as it is now. A cached stat could announce the length of a file since replaced
        # (a truncated or overlong answer), or of one since deleted.
        fresh, _ = cache.lookup(info.path, force=True)
        if fresh is None:
            return None
        info = fresh
        rep, gzip_on_the_fly = _pick_coding(info, accept, range_header, options)
    if gzip_on_the_fly:
        # Its length is known only once compressed: no ranges (nor are they asked, see above).
        etag = info.etag[:-1] + '-gzip"'
        described = Representation(None, etag, rep.last_modified, rep.mtime)
    else:
        etag = rep.etag
        described = rep.representation()
    return info, rep, gzip_on_the_fly, etag, plan(method, hdrs, described, status=status)


async def _send_planned(
    send: Send,
    info: FileInfo,
    rep: FileInfo,
    gzip_on_the_fly: bool,
    etag: str,
    options: FileOptions,
    planned: Plan,
    cache: FileCache,
    extra: Iterable[tuple[bytes, bytes]],
    pathsend: bool,
    reuse_until: float | None = None,
) -> None:
    base = _base_headers(info, rep, etag, options)
    base.extend(extra)
    if planned.whole:
        if gzip_on_the_fly:
            base.append((b"content-encoding", b"gzip"))
            await _send_gzip(send, planned, info, cache, base)
            return
        if planned.body:
            body = cache.read_small(rep)
            if body is not None:
                base.append((b"content-length", str(rep.size).encode()))
                start = {"type": "http.response.start", "status": planned.status, "headers": base}
                if reuse_until is not None and planned.status == 200 and not info.variants:
                    # Without precompressed siblings, the answer does not vary with the
                    # request's Accept-Encoding: the same for every client.
                    start[REUSE] = Reusable(rep.representation(), reuse_until)
                await send(start)
                await send({"type": "http.response.body", "body": body})
                return
            if pathsend:
                base.append((b"content-length", str(rep.size).encode()))
                await send(
                    {"type": "http.response.start", "status": planned.status, "headers": base}
                )
                await send({"type": "http.response.pathsend", "path": rep.path})
                return
    # Ranges, refusals, HEAD, and whole bodies without pathsend (in-process test clients).
    read = (lambda s, e: _read_chunks(rep, cache, s, e)) if planned.body else None
    await send_plan(send, planned, rep.size, base, read)


def _base_headers(info: FileInfo, rep: FileInfo, etag: str, options: FileOptions) -> Headers:
    """The headers every answer for this representation carries (a fresh list to extend).

    Encoded once per representation and options, and kept on the FileInfo: a small file's answer
    then costs no string formatting at all.
    """
    has_variants = bool(info.variants)
    cached = rep.header_cache
    if (
        cached is not None
        and cached[0] is options
        and cached[1] == etag
        and cached[2] == has_variants
    ):
        return list(cached[3])
    vary = has_variants or (options.compress and is_textual(info.content_type))
    base: Headers = [
        (b"content-type", info.content_type.encode()),
        (b"etag", etag.encode()),
        (b"last-modified", rep.last_modified.encode()),
        (b"cache-control", options.cache_control.encode()),
        (b"accept-ranges", b"bytes"),
        (b"x-content-type-options", b"nosniff"),
    ]
    if vary:
        base.append((b"vary", b"Accept-Encoding"))
    if rep.encoding:
        base.append((b"content-encoding", rep.encoding.encode()))
    base.extend(options.extra_headers)
    rep.header_cache = (options, etag, has_variants, tuple(base))
    return list(base)


def _pick_coding(
    info: FileInfo, accept: str | None, range_header: str | None, options: FileOptions
) -> tuple[FileInfo, bool]:
    """The representation to send (a precompressed sibling or the file) and whether to gzip it."""
    if not accept or range_header is not None:
        # Ranges are always of the identity representation.
        return info, False
    compressible = options.compress and is_textual(info.content_type)
    if not info.variants and not compressible:
        return info, False
    codings = parse_accept_encoding(accept)
    for coding in ("br", "gzip"):
        if coding in info.variants and _accepts(codings, coding):
            return info.variants[coding], False
    # Only text is worth it (and --compress promises no more); a `.br` sibling of an image must
    # not turn on gzip for it.
    return info, compressible and info.size >= MIN_COMPRESS and _accepts(codings, "gzip")


async def _read_chunks(
    info: FileInfo, cache: FileCache, start: int, end: int | None
) -> AsyncGenerator[bytes, None]:
    """The bytes start..end (inclusive; None: to the end) of a file, from memory or in chunks."""
    if end is None:
        end = info.size - 1
    body = cache.read_small(info)
    if body is not None:
        yield body[start : end + 1]
        return
    fd = await asyncio.to_thread(os.open, info.path, os.O_RDONLY)
    try:
        pos = start
        while pos <= end:
            left = end + 1 - pos
            n = min(CHUNK, left - TAIL) if left > TAIL else min(TAIL_CHUNK, left)
            chunk = await asyncio.to_thread(os.pread, fd, n, pos)
            if not chunk:
                raise OSError("file shrank while being sent")
            pos += len(chunk)
            yield chunk
    finally:
        os.close(fd)


async def _send_gzip(
    send: Send, planned: Plan, info: FileInfo, cache: FileCache, headers: Headers
) -> None:
    """Gzip a text file on the fly; small files are compressed once and kept."""
    gzipped = info.gzipped
    if gzipped is None:
        body = cache.read_small(info)
        if body is not None:
            gzipped = await asyncio.to_thread(_gzip, body)
            cache.keep_gzipped(info, gzipped)
    if gzipped is not None:
        headers.append((b"content-length", str(len(gzipped)).encode()))
        await send({"type": "http.response.start", "status": planned.status, "headers": headers})
        await send({"type": "http.response.body", "body": gzipped if planned.body else b""})
        return
    # Large text file: stream it, compressed chunk by chunk, with no Content-Length.
    await send({"type": "http.response.start", "status": planned.status, "headers": headers})
    if not planned.body:
        await send({"type": "http.response.body", "body": b""})
        return
    comp = zlib.compressobj(6, zlib.DEFLATED, 31)
    async for chunk in _read_chunks(info, cache, 0, info.size - 1):
        out = comp.compress(chunk)
        if out:
            await send({"type": "http.response.body", "body": out, "more_body": True})
    await send({"type": "http.response.body", "body": comp.flush()})


def _gzip(data: bytes) -> bytes:
    comp = zlib.compressobj(6, zlib.DEFLATED, 31)
    return comp.compress(data) + comp.flush()
