"""The outer fast path: an answer wholly known in advance, sent without the stack below.

Most requests a static site gets are repeats: the same small file, asked again and again. The
full stack (host router, security headers, theme, assets, the site, the file cache) decides the
same answer each time, at about five times the Python cost of sending it. So when a site answers
with something that depends on nothing but the request's host, path and query — a small file held
in memory, whole — it says so in its answer's start message (http/reuse.py), and the worker's
outer app (app.WorkerApp) keeps the answer exactly as it went out: final headers (security
headers and validators included) and body. Until the `Reusable` expires — when the site would have
looked at the disk again — a GET or HEAD of the same host, path and query is answered from that
entry; with preconditions or a Range, through http/plan.py, the one place deciding those.

An answer computed from the request alone (echo's /get: its query, headers and address) is kept
the same way, as its final headers and the site's function (`Computed`): a GET of the same host and
path is answered by calling it, again without the stack between. The function declines (None)
what it would not answer exactly as the site does; the full stack answers those. An offer `under`
a path (an api site's rows by key) is kept by host and the path up to its last `/`, and answers
every GET there that its function does not decline, each with its own ETag.

What never comes from here: anything a password protects (no fast path at all then; the app
builds none), answers that vary with other request headers (precompressed siblings, --compress),
listings, errors, redirects, writes, WebSockets, multipart ranges and refused preconditions
(they go down the full stack, which answers them as always).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from comptoir.http.files import FILE_REQUEST_HEADERS, request_headers
from comptoir.http.plan import Plan, Representation, plan
from comptoir.http.reuse import Computed, Reusable
from comptoir.types import Scope

# Request headers that make an answer differ: preconditions and ranges (a reusable answer has no
# other variant, Accept-Encoding included).
_CONDITIONAL = FILE_REQUEST_HEADERS - {b"accept-encoding"}
# What a 304 keeps of the answer (http/plan.py's choice, plus what the security layer adds to
# every answer that has no body type).
_NOT_MODIFIED = frozenset(
    (
        b"etag",
        b"last-modified",
        b"cache-control",
        b"vary",
        b"x-content-type-options",
        b"strict-transport-security",
    )
)
# Bounds: entries hold small bodies only (http/files.SMALL_FILE), so many of them at most, and so
# much memory in all (keys and headers counted); a key longer than MAX_KEY is never kept.
MAX_ENTRIES = 4096
MAX_BYTES = 64 * 1024 * 1024
MAX_KEY = 2048

Key = tuple[bytes, bytes, bytes]
Headers = list[tuple[bytes, bytes]]
# What the outer app sends: status, headers, body, and the access log's target if already known.
Prepared = tuple[int, Headers | tuple[tuple[bytes, bytes], ...], bytes, str | None]


@dataclass(slots=True)
class Entry:
    """One kept answer: its final headers and body, the representation, its expiry."""

    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
    rep: Representation
    until: float
    # The request's path and query as the access log writes them (escaped once, here).
    log_target: str | None = None


@dataclass(slots=True)
class ComputedEntry:
    """One kept computed answer: its final headers (Content-Length at `length_at`), the function."""

    headers: tuple[tuple[bytes, bytes], ...]
    length_at: int
    answer: Callable[[Scope], bytes | tuple[bytes, bytes] | None]
    # Where the ETag header is, for answers that come with their own.
    etag_at: int | None = None


class FastPath:
    """Kept answers by (Host, raw path, query), computed ones by (Host, raw path); the answering
    from them."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, mounts: tuple[str, ...] = ()
    ) -> None:
        self.clock = clock
        # The sites' mount paths, spelled as raw paths are: an offer `under` a path is not kept
        # where a site is mounted below it (that site answers those paths, not the offer's).
        self.mounts = tuple(m.encode("utf-8", "surrogateescape") for m in mounts if m != "/")
        self.entries: dict[Key, Entry] = {}
        self.computed: dict[tuple[bytes, bytes], ComputedEntry] = {}
        # Offers `under` a path: by host and the path up to its last `/`, included.
        self.computed_under: dict[tuple[bytes, bytes], ComputedEntry] = {}
        self._bytes = 0

    def find(self, scope: Scope) -> Prepared | None:
        """The whole answer to a GET or HEAD this can answer, else None (the full stack will)."""
        method = scope["method"]
        if method != "GET" and method != "HEAD":
            return None
        key, conditional = _request_key(scope)
        if key is None:
            return None
        entry = self.entries.get(key)
        if entry is not None:
            if self.clock() >= entry.until:
                self._drop(key)
                return None
            decided = self.plan_for(scope, entry) if conditional else None
            if conditional and decided is None:
                return None
            return self.prepare(scope, entry, decided)
        if method == "GET":
            if self.computed:
                found = self.computed.get((key[0], key[1]))
                if found is not None:
                    return _compute(scope, found)
            if self.computed_under:
                raw = key[1]
                found = self.computed_under.get((key[0], raw[: raw.rfind(b"/") + 1]))
                if found is not None:
                    return _compute(scope, found)
        return None

    def plan_for(self, scope: Scope, entry: Entry) -> Plan | None:
        """The plan for a conditional request, if the fast path sends that kind of answer."""
        decided = plan(scope["method"], request_headers(scope), entry.rep)
        if decided.status in (200, 304) or (decided.status == 206 and len(decided.ranges) == 1):
            return decided
        return None  # several ranges, 412, 416: the full stack frames those

    def prepare(self, scope: Scope, entry: Entry, decided: Plan | None) -> Prepared:
        """The answer to send from a kept entry, as planned."""
        head = scope["method"] == "HEAD"
        if decided is None or decided.status == 200:
            return 200, entry.headers, b"" if head else entry.body, entry.log_target
        if decided.status == 304:
            headers = [h for h in entry.headers if h[0] in _NOT_MODIFIED]
            return 304, headers, b"", entry.log_target
        (start, end), size = decided.ranges[0], entry.rep.size
        headers = [h for h in entry.headers if h[0] != b"content-length"]
        headers.append((b"content-range", f"bytes {start}-{end}/{size}".encode()))
        headers.append((b"content-length", str(end - start + 1).encode()))
        body = b"" if head else entry.body[start : end + 1]
        return 206, headers, body, entry.log_target

    def keep(
        self,
        scope: Scope,
        headers: Headers,
        body: bytes,
        offer: Reusable,
        log_target: str | None = None,
    ) -> None:
        """Keep the whole answer the full stack just sent to a plain GET, as offered."""
        key, conditional = _request_key(scope)
        if key is None or conditional or len(body) != offer.rep.size:
            return  # not the plain answer, or not one the fast path could find again
        if sum(len(part) for part in key) > MAX_KEY:
            # A client can send a huge Host or query (granian takes hundreds of KB): kept, each
            # such spelling would hold that much memory for nothing anyone else asks for.
            return
        self._drop(key)
        entry = Entry(tuple(headers), body, offer.rep, offer.until, log_target)
        size = _held(key, entry)
        if len(self.entries) >= MAX_ENTRIES or self._bytes + size > MAX_BYTES:
            self._drop_expired()
            if len(self.entries) >= MAX_ENTRIES or self._bytes + size > MAX_BYTES:
                # Bounded without tracking recency on every request (as the file cache does).
                self.entries.clear()
                self._bytes = 0
        self.entries[key] = entry
        self._bytes += size

    def keep_computed(self, scope: Scope, headers: Headers, offer: Computed) -> None:
        """Keep the headers of a computed answer the full stack just sent to a GET, and its
        function."""
        key, _ = _request_key(scope)
        if key is None or sum(len(part) for part in key[:2]) > MAX_KEY:
            return
        length_at = next((i for i, h in enumerate(headers) if h[0] == b"content-length"), None)
        if length_at is None:
            return  # framed otherwise (chunked): not what the fast path sends
        etag_at = next((i for i, h in enumerate(headers) if h[0] == b"etag"), None)
        entry = ComputedEntry(tuple(headers), length_at, offer.answer, etag_at)
        raw = key[1]
        if offer.under:
            raw = raw[: raw.rfind(b"/") + 1]
            if any(m.startswith(raw) for m in self.mounts):
                return
        kept = self.computed_under if offer.under else self.computed
        if len(self.entries) + len(self.computed) + len(self.computed_under) >= MAX_ENTRIES:
            # Few paths compute their answers; spellings of a host are what could fill this.
            kept.clear()
        kept[(key[0], raw)] = entry

    def _drop_expired(self) -> None:
        now = self.clock()
        for key in [k for k, e in self.entries.items() if now >= e.until]:
            self._drop(key)

    def _drop(self, key: Key) -> None:
        old = self.entries.pop(key, None)
        if old is not None:
            self._bytes -= _held(key, old)


def _compute(scope: Scope, entry: ComputedEntry) -> Prepared | None:
    try:
        answer = entry.answer(scope)
    except Exception:
        # A function that fails declines: the full stack answers (and reports) the same request.
        return None
    if answer is None:
        return None
    headers = list(entry.headers)
    if isinstance(answer, tuple):
        body, etag = answer
        if entry.etag_at is None:
            return None  # the first answer had no ETag to replace: not the site's answer
        headers[entry.etag_at] = (b"etag", etag)
    else:
        body = answer
    headers[entry.length_at] = (b"content-length", str(len(body)).encode())
    return 200, headers, body, None


def _request_key(scope: Scope) -> tuple[Key | None, bool]:
    """(Host, raw path, query) of a request, and whether it carries preconditions or a Range.

    The key is None where the full stack must decide: no Host (HTTP/1.0, or a 400 on HTTP/1.1),
    two of them (a 400), no raw path.
    """
    host = None
    conditional = False
    for name, value in scope["headers"]:
        if name == b"host":
            if host is not None:
                return None, conditional
            host = value
        elif name in _CONDITIONAL:
            conditional = True
    raw = scope.get("raw_path")
    if not host or raw is None:
        return None, conditional
    return (host, raw, scope.get("query_string", b"")), conditional


def _held(key: Key, entry: Entry) -> int:
    """The memory an entry holds, counted generously: key, headers, body, log target."""
    size = sum(len(part) for part in key) + len(entry.body) + len(entry.log_target or "") * 4
    return size + sum(len(k) + len(v) + 64 for k, v in entry.headers) + 256
