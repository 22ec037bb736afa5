"""The routes of a share, all under the capability token:

- `GET /<token>/`: browsers (`Accept: text/html`) get the landing page, JSON clients a description;
  any other client gets the content itself: the file of a one-file share, else the archive;
- `GET /<token>/f/<name>`: a shared file; `/<token>/f/<folder>/…` a shared folder's listing, or a
  file inside it (resolved by http/paths.py with the folder as root); a folder's URL gives curl
  and wget (and `?archive` anyone) that folder alone as an archive, counted on its own;
- `GET /<token>/archive.<ext>`: everything shared, as one archive (not for a one-file share).

Anything else, a wrong token included, is the same plain 404 as an unknown path. Every answer
carries `Referrer-Policy: no-referrer` and `X-Robots-Tag: noindex`: the link is the secret.

Every download is planned once (http/plan.py) and sent as planned: a file through http/files.py,
an archive through `send_plan` with bytes made in a thread. The plan goes to download.py, which
takes the download's slot from it; the pages are in pages.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import AsyncGenerator, Callable, Iterator

from comptoir.errors import HTTPError
from comptoir.http.disposition import content_disposition
from comptoir.http.errors import wants_json
from comptoir.http.files import (
    FileCache,
    FileOptions,
    plan_file,
    request_headers,
    send_planned_file,
)
from comptoir.http.paths import resolve_path, unquote_bytes
from comptoir.http.plan import Representation, plan, send_plan
from comptoir.sites.contract import SiteContext
from comptoir.sites.share import ShareOptions
from comptoir.sites.share.archive import EXTENSIONS, Archive, ArchiveChanged, make_archive
from comptoir.sites.share.download import ARCHIVE_UNIT, Downloads
from comptoir.sites.share.items import (
    Member,
    SharedItem,
    file_unit,
    folder_unit,
    shared_items,
    walk,
    walk_folder,
)
from comptoir.sites.share.limits import DownloadSlots, Gone
from comptoir.sites.share.pages import ShareLinks, SharePages
from comptoir.sites.share.progress import make_board
from comptoir.sites.toolkit import (
    not_allowed,
    send_allowed,
    send_http_error,
    send_redirect,
    serve_link,
    wants_html,
)
from comptoir.types import Receive, Scope, Send

ALLOWED = "GET, HEAD, OPTIONS"
# Downloads are not kept by caches: a copy left in one would outlive --count and --expire.
NO_STORE = "private, no-store"
# Bytes handed to the server per message when streaming an archive.
SEND_CHUNK = 256 * 1024


class ShareSite:
    """The ASGI app of a share."""

    def __init__(self, options: ShareOptions, context: SiteContext) -> None:
        self.options = options
        self.token = options.token
        self.items = shared_items(options.paths)
        self.by_name = {item.name: item for item in self.items}
        # A one-file share is that file; anything else is also offered as one archive.
        self.single = self.items[0] if len(self.items) == 1 and not self.items[0].is_dir else None
        ext = EXTENSIONS[options.archive]
        self.archive_name = (self.items[0].name if len(self.items) == 1 else "share") + ext
        self.links = ShareLinks(f"{context.prefix}/{options.token}/", "archive" + ext)
        share_id = hashlib.sha256(f"share\0{options.token}".encode()).hexdigest()[:16]
        self.slots = DownloadSlots(
            context.store, share_id, options.limit, options.expire, context.clock.time
        )
        self.board = make_board(quiet=context.quiet, workers=context.workers)
        self._request_shutdown = context.request_shutdown
        self._stopping_key = f"share:{share_id}:stopping"
        stop = _nothing if options.keep else self._stop
        self.downloads = Downloads(
            self.slots, self.board, share_id, self._file_units, stop, options.stall_timeout
        )
        self.pages = SharePages(
            options,
            self.items,
            self.links,
            self.downloads,
            context.prefix,
            None if self.single is not None else self.archive_name,
            context.lan_address,
        )
        # Without --count nothing needs to know when the last byte left, and with --quiet
        # nothing draws progress: files then go out by pathsend, straight from the server.
        self.pathsend = options.limit is None and context.quiet
        # No body cache: a share serves each file rarely, and counts every byte it sends. No
        # precompressed siblings either: `x.gz` next to a shared `x` is not shared.
        self.cache = FileCache(revalidate=0.0, max_bytes=0, variants=False)
        self.file_options = FileOptions(cache_control=NO_STORE)
        self._timer: asyncio.TimerHandle | None = None

    def _file_units(self) -> Iterator[str]:
        return (m.unit for m in walk(self.items) if m.unit)

    # -- lifespan ------------------------------------------------------------------------------

    async def startup(self) -> None:
        """Lifespan startup: stop the server when the link expires."""
        left = self.slots.seconds_left()
        if left is not None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(left, self.downloads.finish)

    async def shutdown(self) -> None:
        """Lifespan shutdown: stop drawing, print what this worker sent."""
        if self._timer is not None:
            self._timer.cancel()
        self.board.close()

    def _stop(self) -> None:
        """The share is over: say why on the terminal (once, whichever worker), then stop."""
        # A server that ends by itself says why, or its user is left guessing whether it crashed.
        if self.slots.store.incr(self._stopping_key) == 1:
            self.board.note(f"stopping: {self._stop_reason()}")
        self._request_shutdown()

    def _stop_reason(self) -> str:
        if self.slots.expired():
            return "the link expired (--expire)"
        flag = "--once" if self.options.once else f"--count {self.options.count}"
        return f"every download allowed is done ({flag})"

    # -- routing -------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one request."""
        await serve_link(
            scope, receive, send, self.token, self._route, home=self.links.base, errors=self._error
        )

    async def _error(self, scope: Scope, send: Send, exc: HTTPError, home: str | None) -> None:
        if isinstance(exc, Gone):
            await self.pages.gone(scope, send, exc.message)
        else:
            await send_http_error(scope, send, exc, home)

    async def _route(self, scope: Scope, receive: Receive, send: Send, rest: str) -> None:
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            if method == "OPTIONS":
                await send_allowed(send, ALLOWED)
                return
            raise not_allowed(ALLOWED)
        if self.slots.expired():
            self.downloads.finish()
        if rest == "":
            await send_redirect(scope, send, self.links.base, keep_query=True)
        elif rest == "/":
            await self._root(scope, receive, send)
        elif rest == "/" + self.links.archive_path and self.single is None:
            await self._archive(scope, receive, send)
        elif rest.startswith("/f/"):
            await self._item(scope, receive, send, rest[3:].encode("latin-1"))
        else:
            raise HTTPError(404, "Not found")

    async def _root(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The landing page for people, the content itself for curl and wget."""
        if wants_html(scope):
            await self.pages.landing(scope, send)
        elif wants_json(scope):
            await self.pages.describe(scope, send)
        elif self.single is not None:
            item = self.single
            await self._file(scope, receive, send, item.path, item.unit, item.name, item.name)
        else:
            await self._archive(scope, receive, send)

    async def _item(self, scope: Scope, receive: Receive, send: Send, raw: bytes) -> None:
        """`f/<name>` (a shared file) or `f/<folder>/…` (inside a shared folder)."""
        head, sep, sub = raw.partition(b"/")
        # Matched by exact name, never looked up on disk: a sibling of a shared file is no item.
        item = self.by_name.get(os.fsdecode(unquote_bytes(head)))
        if item is None:
            raise HTTPError(404, "Not found")
        if not item.is_dir:
            if sep:
                raise HTTPError(404, "Not found")
            await self._file(scope, receive, send, item.path, item.unit, item.name, item.name)
            return
        if not sep:
            await send_redirect(scope, send, self.links.folder(item, ()), keep_query=True)
            return
        # The shared folder is the root: `..`, encoded slashes, dotfiles and symlinks leading
        # out are refused there (404), exactly as for `comptoir serve`.
        resolved = resolve_path(item.path, b"/" + sub)
        info, is_dir = self.cache.lookup(resolved.path)
        if is_dir:
            if not resolved.trailing_slash:
                location = self.links.folder(item, resolved.parts)
                await send_redirect(scope, send, location, keep_query=True)
                return
            # Like the share's own URL: people get the listing, curl and wget the content (the
            # folder as an archive); `?archive` asks for the archive from a page's button.
            if _asks_archive(scope) or not (wants_html(scope) or wants_json(scope)):
                await self._folder_archive(
                    scope, receive, send, item, resolved.path, resolved.parts
                )
                return
            await self.pages.listing(scope, send, item, resolved.path, resolved.parts)
            return
        if info is None or resolved.trailing_slash or not resolved.parts:
            raise HTTPError(404, "Not found")
        label = "/".join((item.name, *resolved.parts))
        unit = file_unit(item, resolved.path)
        await self._file(scope, receive, send, resolved.path, unit, resolved.parts[-1], label)

    # -- downloads -----------------------------------------------------------------------------

    async def _file(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        path: str,
        unit: str,
        name: str,
        label: str,
    ) -> None:
        """Download one file, with ranges and conditionals (http/files.py)."""
        info, _ = self.cache.lookup(path)
        answer = None if info is None else plan_file(scope, info, self.cache, self.file_options)
        if answer is None:
            raise HTTPError(404, "Not found")
        extra = [(b"content-disposition", content_disposition(name).encode())]
        # Unless nothing counts or draws, the body is sent from here: every byte is counted and
        # a cut is noticed.
        pathsend = self.pathsend and "http.response.pathsend" in scope.get("extensions", {})

        async def respond(send: Send) -> None:
            await send_planned_file(send, answer, self.cache, extra=extra, pathsend=pathsend)

        await self.downloads.serve(
            scope, receive, send, unit=unit, label=label, plan=answer.plan, respond=respond
        )

    async def _archive(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Download everything as one archive."""
        await self._send_members(
            scope, receive, send, lambda: list(walk(self.items)), ARCHIVE_UNIT, self.archive_name
        )

    async def _folder_archive(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        item: SharedItem,
        folder: str,
        parts: tuple[str, ...],
    ) -> None:
        """Download one folder of the share (a shared folder, or one inside it) as an archive."""
        if not parts and len(self.items) == 1:
            # The one shared folder: that is the share's archive, counted as such.
            await self._archive(scope, receive, send)
            return
        name = parts[-1] if parts else item.name
        await self._send_members(
            scope,
            receive,
            send,
            lambda: list(walk_folder(item, folder, name)),
            folder_unit(item, folder),
            name + EXTENSIONS[self.options.archive],
        )

    async def _send_members(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        members: Callable[[], list[Member]],
        unit: str,
        filename: str,
    ) -> None:
        """Download `members` as one archive called `filename`, counted under `unit`."""
        available = self.downloads.check(unit)
        if not available.ok:
            raise Gone(available)  # before reading every member's size to make it
        archive = await self._make_archive(members)
        headers = [
            (b"content-type", archive.content_type.encode()),
            (b"content-disposition", content_disposition(filename).encode()),
            (b"cache-control", NO_STORE.encode()),
            (b"x-content-type-options", b"nosniff"),
        ]
        etag = archive.etag
        if etag is None:
            # Compressed as it is sent: neither size nor validators, so no ranges.
            rep = Representation(None)
            headers.append((b"accept-ranges", b"none"))
        else:
            # Remade up to each range asked: one range, never several (multipart) at once.
            rep = Representation(
                archive.size, etag, archive.last_modified, archive.mtime, multipart=False
            )
            headers += [
                (b"etag", etag.encode()),
                (b"last-modified", archive.last_modified.encode()),
                (b"accept-ranges", b"bytes"),
            ]
        planned = plan(scope["method"], request_headers(scope), rep)

        async def respond(send: Send) -> None:
            read = (
                (lambda start, end: _archive_bytes(archive, start, end)) if planned.body else None
            )
            await send_plan(send, planned, rep.size, headers, read)

        await self.downloads.serve(
            scope, receive, send, unit=unit, label=filename, plan=planned, respond=respond
        )

    async def _make_archive(self, members: Callable[[], list[Member]]) -> Archive:
        fmt, compress = self.options.archive, self.options.compress

        def make() -> Archive:
            return make_archive(fmt, members(), compress=compress)

        try:
            return await asyncio.to_thread(make)
        except ArchiveChanged:
            retry = {"Retry-After": "1"}
            raise HTTPError(503, "The shared files are changing; try again", retry) from None


# -- helpers ----------------------------------------------------------------------------------


def _nothing() -> None:
    """--keep: a share whose downloads are used up stays up."""


def _asks_archive(scope: Scope) -> bool:
    """`?archive` on a folder's URL: its archive, whatever the client accepts."""
    query = scope.get("query_string", b"").split(b"&")
    return any(q == b"archive" or q.startswith(b"archive=") for q in query)


def _pull(chunks: Iterator[bytes]) -> bytes | None:
    """Up to about SEND_CHUNK bytes from `chunks` (blocking); b"" for progress only; None at end."""
    parts: list[bytes] = []
    size = 0
    for chunk in chunks:
        if not chunk:
            if parts:
                break
            return b""
        parts.append(chunk)
        size += len(chunk)
        if size >= SEND_CHUNK:
            break
    else:
        if not parts:
            return None
    return b"".join(parts)


async def _archive_bytes(
    archive: Archive, start: int, end: int | None
) -> AsyncGenerator[bytes, None]:
    """An archive's bytes start..end (None: all of it), made in a thread; exactly those."""
    chunks = archive.chunks(start)
    left = None if end is None else end + 1 - start
    try:
        while left is None or left > 0:
            data = await asyncio.to_thread(_pull, chunks)
            if data is None:
                break
            if not data:
                await asyncio.sleep(0)  # a cut client is noticed between steps of a long skip
                continue
            if left is not None:
                data = data[:left]
                left -= len(data)
            yield data
    finally:
        # Close the generator now (its open member file with it), unless a thread still runs it
        # (a cancelled request): then it is dropped when that thread is done.
        close = getattr(chunks, "close", None)
        if close is not None:
            with contextlib.suppress(ValueError):
                close()
    if left:
        # Fewer bytes than promised: never finish the response as if it were whole.
        raise ArchiveChanged("archive ended early")
