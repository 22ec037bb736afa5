"""The routes of a share, all under the capability token:

- `GET /<token>/`: browsers (`Accept: text/html`) get the landing page, JSON clients a description;
  any other client gets the content itself: the file of a one-file share, else the archive;
- `GET /<token>/f/<name>`: a shared file; `/<token>/f/<folder>/…` a shared folder's listing, or a
  file inside it (resolved by http/paths.py with the folder as root); a folder's URL gives curl
  and wget (and `?archive` anyone) that folder alone as an archive, counted on its own;
- `GET /<token>/archive.<ext>`: everything shared, as one archive (not for a one-file share).

Anything else, a wrong token included, is the same plain 404 as an unknown path. Every answer
carries `Referrer-Policy: no-referrer` and `X-Robots-Tag: noindex`: the link is the secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import stat
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import segno
from markupsafe import Markup

from comptoir.accesslog import client_label
from comptoir.errors import HTTPError
from comptoir.http import conditional, listing
from comptoir.http.disposition import content_disposition
from comptoir.http.errors import send_error, wants_json
from comptoir.http.files import (
    FileCache,
    FileOptions,
    build_info,
    request_headers,
    send_file,
)
from comptoir.http.listing import human_size
from comptoir.http.mime import content_type
from comptoir.http.paths import (
    display_name,
    location_value,
    quote_name,
    resolve_path,
    unquote_bytes,
)
from comptoir.http.ranges import Unsatisfiable, parse_range
from comptoir.http.responses import send_uncached
from comptoir.security.capability import send_with_link_headers, split_token
from comptoir.sites import SiteContext
from comptoir.sites.share import ShareOptions
from comptoir.sites.share.archive import (
    EXTENSIONS,
    Archive,
    ArchiveChanged,
    make_archive,
)
from comptoir.sites.share.items import (
    Member,
    SharedItem,
    file_unit,
    folder_totals,
    folder_unit,
    shared_items,
    walk,
    walk_folder,
)
from comptoir.sites.share.limits import (
    EXPIRED,
    USED_UP,
    Availability,
    DownloadSlots,
    completes_download,
)
from comptoir.sites.share.progress import Transfer, TransferBoard, make_board
from comptoir.types import Message, Receive, Scope, Send
from comptoir.web import render

# The link is a secret: pages must not leak it to other sites nor to search engines.
ALLOWED = "GET, HEAD, OPTIONS"
# Downloads are not kept by caches: a copy left in one would outlive --count and --expire.
NO_STORE = "private, no-store"
ARCHIVE_UNIT = "archive"
# Bytes handed to the server per message when streaming an archive.
SEND_CHUNK = 256 * 1024
_HOST = re.compile(r"^[A-Za-z0-9.\-]+(:\d+)?$|^\[[0-9A-Fa-f:.]+\](:\d+)?$")

Respond = Callable[[Send], Awaitable[None]]


class ClientGone(Exception):
    """The client closed the connection before the response was complete."""


class Gone(HTTPError):
    """410: the link expired, or what was asked for has no complete download left."""

    def __init__(self, availability: Availability) -> None:
        super().__init__(410, availability.reason)


class Download:
    """The `send` of one transfer: counts bytes, notices a cut, draws the transfer's line.

    granian keeps accepting `send` after the client left (the bytes go nowhere), so a cut is
    noticed from `receive()`'s `http.disconnect`, watched by a task while the body goes out.
    A body is finished once its last byte went out: all of its Content-Length (granian may
    report the request over as soon as those are out), else the final body message.
    """

    def __init__(
        self, scope: Scope, receive: Receive, send: Send, board: TransferBoard, label: str
    ) -> None:
        self.scope = scope
        self.receive = receive
        self._send = send
        self.board = board
        self.label = label
        self.gone = asyncio.Event()
        self.status = 0
        # Bytes of body handed to the server, and how many the response announced.
        self.sent = 0
        self.length: int | None = None
        # The last byte went out (to the server; the network may still lose it).
        self.finished = False
        self.transfer: Transfer | None = None

    @contextlib.asynccontextmanager
    async def watching(self) -> AsyncIterator[None]:
        """Watch for the client leaving while the body is sent."""
        task = asyncio.create_task(self._watch())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _watch(self) -> None:
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                self.gone.set()
                return

    async def send(self, message: Message) -> None:
        """Pass a message on, or raise ClientGone once the client has left."""
        mtype = message["type"]
        if mtype == "http.response.body" and not message.get("more_body", False):
            # Let a disconnect already on its way be seen before the last byte counts.
            await asyncio.sleep(0)
        if self.gone.is_set():
            if self.finished:
                return  # only the empty closing message is left: nothing was lost
            raise ClientGone()
        if mtype == "http.response.start":
            self.status = message["status"]
            if self.status in (200, 206):
                length = _header_value(message.get("headers", ()), b"content-length")
                self.length = int(length) if length is not None and length.isdigit() else None
                self.transfer = self.board.begin(client_label(self.scope), self.label, self.length)
        elif mtype == "http.response.body":
            await self._send(message)
            body = message.get("body", b"")
            self.sent += len(body)
            if body and self.transfer is not None:
                self.board.advance(self.transfer, len(body))
            if not message.get("more_body", False) or (
                self.length is not None and self.sent >= self.length
            ):
                self.finished = True
            return
        elif mtype == "http.response.pathsend":
            # Only used without --count (see ShareSite.pathsend): the server sends it all.
            await self._send(message)
            if self.transfer is not None:
                self.board.advance(self.transfer, self.transfer.total or 0)
            self.finished = True
            return
        await self._send(message)


class ShareSite:
    """The ASGI app of a share."""

    def __init__(self, options: ShareOptions, context: SiteContext) -> None:
        self.options = options
        self.token = options.token
        self.prefix = context.prefix
        self.base_url = f"{context.prefix}/{options.token}/"
        self.request_shutdown = context.request_shutdown
        self.items = shared_items(options.paths)
        self.by_name = {item.name: item for item in self.items}
        # A one-file share is that file; anything else is also offered as one archive.
        self.single = self.items[0] if len(self.items) == 1 and not self.items[0].is_dir else None
        ext = EXTENSIONS[options.archive]
        self.archive_path = "/archive" + ext
        self.archive_name = (self.items[0].name if len(self.items) == 1 else "share") + ext
        share_id = hashlib.sha256(f"share\0{options.token}".encode()).hexdigest()[:16]
        self.slots = DownloadSlots(context.store, share_id, options.limit, options.expire)
        self.over_key = f"share:{share_id}:over"
        self.board = make_board(quiet=context.quiet, workers=context.workers)
        # Without --count nothing needs to know when the last byte left, and with --quiet
        # nothing draws progress: files then go out by pathsend, straight from the server.
        self.pathsend = options.limit is None and context.quiet
        # No body cache: a share serves each file rarely, and counts every byte it sends.
        self.cache = FileCache(revalidate=0.0, max_bytes=0)
        self.file_options = FileOptions(cache_control=NO_STORE)
        self.in_flight = 0
        self.closing = False
        self._stop_requested = False
        self._timer: asyncio.TimerHandle | None = None

    # -- lifespan ------------------------------------------------------------------------------

    async def startup(self) -> None:
        """Lifespan startup: stop the server when the link expires."""
        left = self.slots.seconds_left()
        if left is not None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(left, self._finish)

    async def shutdown(self) -> None:
        """Lifespan shutdown: stop drawing, print what this worker sent."""
        if self._timer is not None:
            self._timer.cancel()
        self.board.close()

    def _finish(self) -> None:
        """Everything is used up or expired: stop once this worker's transfers are done."""
        self.closing = True
        self._maybe_stop()

    def _maybe_stop(self) -> None:
        if (
            self.closing
            and self.in_flight == 0
            and not self.options.keep
            and not self._stop_requested
        ):
            self._stop_requested = True
            # SIGTERM to the main process: granian lets other workers' transfers finish
            # within --grace.
            self.request_shutdown()

    # -- routing -------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one request."""
        if scope["type"] != "http":
            return
        send_with_headers = send_with_link_headers(send)
        try:
            await self._route(scope, receive, send_with_headers)
        except Gone as exc:
            await self._gone(scope, send_with_headers, exc.message)
        except HTTPError as exc:
            await send_error(scope, send_with_headers, exc.status, exc.message, exc.headers)

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = scope.get("raw_path") or scope["path"].encode()
        rest = split_token(raw.decode("latin-1"), self.token)
        if rest is None:
            raise HTTPError(404, "Not found")
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            if method == "OPTIONS":
                await send_uncached(send, 204, b"", None, headers=[(b"allow", ALLOWED.encode())])
                return
            raise HTTPError(405, "Method not allowed", {"Allow": ALLOWED})
        if self.slots.expired():
            self._finish()
        if rest == "":
            await self._redirect(scope, send, self.base_url)
        elif rest == "/":
            await self._root(scope, receive, send)
        elif rest == self.archive_path and self.single is None:
            await self._archive(scope, receive, send)
        elif rest.startswith("/f/"):
            await self._item(scope, receive, send, rest[3:].encode("latin-1"))
        else:
            raise HTTPError(404, "Not found")

    async def _root(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The landing page for people, the content itself for curl and wget."""
        if _wants_html(scope):
            await self._landing(scope, send)
        elif wants_json(scope):
            await self._describe(scope, send)
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
            await self._redirect(scope, send, self._folder_url(item, ()))
            return
        # The shared folder is the root: `..`, encoded slashes, dotfiles and symlinks leading
        # out are refused there (404), exactly as for `comptoir serve`.
        resolved = resolve_path(item.path, b"/" + sub)
        try:
            st = os.stat(resolved.path)
        except OSError:
            raise HTTPError(404, "Not found") from None
        if stat.S_ISDIR(st.st_mode):
            if not resolved.trailing_slash:
                await self._redirect(scope, send, self._folder_url(item, resolved.parts))
                return
            # Like the share's own URL: people get the listing, curl and wget the content (the
            # folder as an archive); `?archive` asks for the archive from a page's button.
            if _asks_archive(scope) or not (_wants_html(scope) or wants_json(scope)):
                await self._folder_archive(
                    scope, receive, send, item, resolved.path, resolved.parts
                )
                return
            await self._listing(scope, send, item, resolved.path, resolved.parts)
            return
        if resolved.trailing_slash or not resolved.parts:
            raise HTTPError(404, "Not found")
        label = "/".join((item.name, *resolved.parts))
        unit = file_unit(item, resolved.path)
        await self._file(scope, receive, send, resolved.path, unit, resolved.parts[-1], label)

    # -- downloads -----------------------------------------------------------------------------

    def _check(self, unit: str) -> Availability:
        if self.store_over():
            return USED_UP
        return self.slots.check(unit)

    def store_over(self) -> bool:
        """True once everything shared has had all its complete downloads (all workers)."""
        return self.slots.count is not None and self.slots.store.get(self.over_key) is not None

    async def _download(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        unit: str,
        label: str,
        completes: bool | None,
        respond: Respond,
    ) -> None:
        """Answer a download of `unit`, taking and settling its slot (see limits.py)."""
        available = self._check(unit)
        if available.ok and completes:
            available = self.slots.take(unit)
        if not available.ok:
            raise Gone(available)
        if completes is None:
            # HEAD, 304, 412, 416: no body, nothing to count or draw.
            await respond(send)
            return
        download = Download(scope, receive, send, self.board, label)
        self.in_flight += 1
        try:
            # Cut, or a file changed under the transfer: the response stays incomplete, which
            # tells the client; the slot goes back below.
            with contextlib.suppress(ClientGone, OSError, ArchiveChanged):
                async with download.watching():
                    await respond(download.send)
        finally:
            self.in_flight -= 1
            counted = bool(completes and download.finished and download.status in (200, 206))
            if completes and not counted:
                self.slots.give_back(unit)
            if download.transfer is not None:
                self.board.end(download.transfer, finished=download.finished, counted=counted)
        if counted:
            await self._completed(unit)
        self._maybe_stop()

    async def _completed(self, unit: str) -> None:
        """Count a complete download; past the last one, the share is over."""
        done = self.slots.complete(unit)
        limit = self.slots.count
        if limit is None or done < limit:
            return
        if unit == ARCHIVE_UNIT or await asyncio.to_thread(self._all_files_used_up):
            self.slots.store.set(self.over_key, b"1")
            self._finish()

    def _all_files_used_up(self) -> bool:
        return all(self.slots.used_up(m.unit) for m in walk(self.items) if m.unit)

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
        """Download one file, with ranges and conditionals (http/files.send_file)."""
        try:
            st = os.stat(path)
        except OSError:
            raise HTTPError(404, "Not found") from None
        if not stat.S_ISREG(st.st_mode):
            raise HTTPError(404, "Not found")
        # No precompressed siblings: `x.gz` next to a shared `x` is not shared.
        info = build_info(path, st, with_variants=False)
        headers = request_headers(scope)
        headers.pop("accept-encoding", None)
        completes = completes_download(
            scope["method"],
            headers,
            size=info.size,
            etag=info.etag,
            last_modified=info.last_modified,
            mtime=info.mtime,
        )
        extra = [(b"content-disposition", content_disposition(name).encode())]
        file_scope = scope
        if not self.pathsend and "http.response.pathsend" in scope.get("extensions", {}):
            # Send the body ourselves: every byte is counted and a cut is noticed.
            extensions = {
                k: v for k, v in scope["extensions"].items() if k != "http.response.pathsend"
            }
            file_scope = {**scope, "extensions": extensions}

        async def respond(send: Send) -> None:
            await send_file(
                file_scope,
                receive,
                send,
                info,
                self.cache,
                self.file_options,
                headers=headers,
                extra=extra,
            )

        await self._download(
            scope, receive, send, unit=unit, label=label, completes=completes, respond=respond
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
        archive = await self._make_archive(members)
        headers = request_headers(scope)
        completes = completes_download(
            scope["method"],
            headers,
            size=archive.size,
            etag=archive.etag,
            last_modified=archive.last_modified,
            mtime=archive.mtime,
        )

        async def respond(send: Send) -> None:
            await self._send_archive(scope, send, archive, headers, filename)

        await self._download(
            scope,
            receive,
            send,
            unit=unit,
            label=filename,
            completes=completes,
            respond=respond,
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

    async def _send_archive(
        self, scope: Scope, send: Send, archive: Archive, hdrs: dict[str, str], filename: str
    ) -> None:
        """The archive's answer: conditionals, one Range (exact bytes), or all of it."""
        method = scope["method"]
        etag, size = archive.etag, archive.size
        headers = [
            (b"content-type", archive.content_type.encode()),
            (b"content-disposition", content_disposition(filename).encode()),
            (b"cache-control", NO_STORE.encode()),
            (b"x-content-type-options", b"nosniff"),
        ]
        if etag is None or size is None:
            headers.append((b"accept-ranges", b"none"))
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            if method != "HEAD":
                await _pump(archive.chunks(0), send, None)
            else:
                await send({"type": "http.response.body", "body": b""})
            return
        headers += [
            (b"etag", etag.encode()),
            (b"last-modified", archive.last_modified.encode()),
            (b"accept-ranges", b"bytes"),
        ]
        decided = conditional.evaluate(method, hdrs, etag, archive.mtime)
        if decided is not None:
            keep = {b"etag", b"last-modified", b"cache-control"}
            kept = [h for h in headers if h[0] in keep] if decided == 304 else []
            await _send_empty(send, decided, [*kept, (b"content-length", b"0")])
            return
        start, end, status = 0, size - 1, 200
        range_header = hdrs.get("range")
        if range_header is not None and conditional.range_applies(
            hdrs, etag, archive.last_modified
        ):
            try:
                ranges = parse_range(range_header, size)
            except Unsatisfiable:
                refused = [h for h in headers if h[0] in (b"etag", b"last-modified")]
                refused += [
                    (b"content-range", f"bytes */{size}".encode()),
                    (b"content-length", b"0"),
                ]
                await _send_empty(send, 416, refused)
                return
            # Several ranges at once are answered with the whole archive, as RFC 9110 allows:
            # download managers ask one range per connection.
            if ranges is not None and len(ranges) == 1:
                (start, end), status = ranges[0], 206
                headers.append((b"content-range", f"bytes {start}-{end}/{size}".encode()))
        length = end - start + 1 if size else 0
        headers.append((b"content-length", str(length).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        if method == "HEAD" or length == 0:
            await send({"type": "http.response.body", "body": b""})
            return
        await _pump(archive.chunks(start), send, length)

    # -- pages ---------------------------------------------------------------------------------

    async def _gone(self, scope: Scope, send: Send, reason: str) -> None:
        if _wants_html(scope):
            body = render("share_gone.html", prefix=self.prefix, reason=reason).encode()
            await send_uncached(send, 410, body, b"text/html; charset=utf-8", head=_is_head(scope))
        else:
            await send_error(scope, send, 410, reason)

    def _folder_url(self, item: SharedItem, parts: tuple[str, ...]) -> str:
        return self.base_url + "f/" + "".join(quote_name(p) + "/" for p in (item.name, *parts))

    def _item_url(self, item: SharedItem) -> str:
        if item.is_dir:
            return self._folder_url(item, ())
        return self.base_url + "f/" + quote_name(item.name)

    def _describe_items(self) -> list[dict[str, Any]]:
        """Name, kind, size and downloads left of each shared item (reads the disk)."""
        out = []
        for item in self.items:
            entry: dict[str, Any] = {
                "name": display_name(item.name),
                "type": "directory" if item.is_dir else "file",
                "url": self._item_url(item),
            }
            try:
                if item.is_dir:
                    entry["files"], entry["size"] = folder_totals(item)
                    entry["archive_url"] = self._item_url(item) + "?archive"
                else:
                    entry["size"] = os.stat(item.path).st_size
                    entry["content_type"] = content_type(item.path)
                    entry["downloads_left"] = self.slots.left(item.unit)
            except OSError:
                continue
            out.append(entry)
        return out

    def _describe_archive(self) -> dict[str, Any] | None:
        if self.single is not None:
            return None
        try:
            archive = make_archive(
                self.options.archive, list(walk(self.items)), compress=self.options.compress
            )
        except ArchiveChanged:
            return None
        return {
            "name": display_name(self.archive_name),
            "url": self.base_url + self.archive_path[1:],
            "size": archive.size,
            "downloads_left": self.slots.left(ARCHIVE_UNIT),
        }

    def _over(self) -> Availability | None:
        """Why nothing can be downloaded any more, or None while something can."""
        if self.slots.expired():
            return EXPIRED
        if self.store_over():
            return USED_UP
        return None

    async def _describe(self, scope: Scope, send: Send) -> None:
        """`Accept: application/json` on the share's URL: what it holds, for scripts."""
        over = self._over()
        if over is not None:
            raise Gone(over)
        items, archive = await asyncio.to_thread(
            lambda: (self._describe_items(), self._describe_archive())
        )
        doc = {"items": items, "archive": archive, "expires_in": self.slots.seconds_left()}
        body = json.dumps(doc, ensure_ascii=False).encode()
        await send_uncached(send, 200, body, b"application/json", head=_is_head(scope), vary=True)

    async def _landing(self, scope: Scope, send: Send) -> None:
        """The page a person opens: what is shared, download buttons, the link's QR code."""
        over = self._over()
        if over is not None:
            raise Gone(over)
        items, archive = await asyncio.to_thread(
            lambda: (self._describe_items(), self._describe_archive())
        )
        for entry in items:
            entry["human_size"] = human_size(entry["size"])
        if archive is not None:
            # A compressed archive's size is not known before it is made: no size shown.
            size = archive["size"]
            archive["human_size"] = human_size(size) if size is not None else ""
        url = self._public_url(scope)
        body = render(
            "share.html",
            prefix=self.prefix,
            items=items,
            archive=archive,
            url=url,
            qr=_qr_svg(url),
            expires=_duration_text(self.slots.seconds_left()),
            limit=self.slots.count,
        ).encode()
        await send_uncached(
            send, 200, body, b"text/html; charset=utf-8", head=_is_head(scope), vary=True
        )

    async def _listing(
        self, scope: Scope, send: Send, item: SharedItem, folder: str, parts: tuple[str, ...]
    ) -> None:
        """A shared folder's page: its entries, each file downloadable, and 'download all'."""
        over = self._over()
        if over is not None:
            raise Gone(over)
        base = self._folder_url(item, parts)
        try:
            entries = await asyncio.to_thread(
                listing.scan, folder, item.path, hidden=False, base_url=base
            )
        except OSError:
            raise HTTPError(403, "Folder not readable") from None
        if wants_json(scope):
            body = listing.render_json((item.name, *parts), entries)
            await send_uncached(
                send, 200, body, b"application/json", head=_is_head(scope), vary=True
            )
            return
        crumbs = [{"name": "Share", "url": self.base_url}]
        names = (item.name, *parts)
        for i in range(len(names)):
            crumbs.append(
                {"name": display_name(names[i]), "url": self._folder_url(item, names[1 : i + 1])}
            )
        left = {}
        if self.slots.count is not None:
            for e in entries:
                if not e.is_dir:
                    real = os.path.realpath(os.path.join(folder, e.name))
                    left[e.name] = self.slots.left(file_unit(item, real))
        body = render(
            "share_listing.html",
            prefix=self.prefix,
            crumbs=crumbs,
            title="/".join(display_name(n) for n in names),
            parent_url=crumbs[-2]["url"],
            entries=entries,
            left=left,
            archive_url=self.base_url + self.archive_path[1:],
            archive_name=display_name(self.archive_name),
            # The archive of this folder alone, unless it is the share's whole archive.
            folder_archive_url=base + "?archive" if parts or len(self.items) > 1 else None,
            folder_archive_name=display_name(names[-1] + EXTENSIONS[self.options.archive]),
        ).encode()
        await send_uncached(
            send, 200, body, b"text/html; charset=utf-8", head=_is_head(scope), vary=True
        )

    def _public_url(self, scope: Scope) -> str:
        """The share's URL as this browser reached it, for the QR code and the copy button."""
        host = _header(scope, b"host")
        if not _HOST.match(host):
            server = scope.get("server") or ("localhost", None)
            host = f"[{server[0]}]" if ":" in str(server[0]) else str(server[0])
            if server[1]:
                host += f":{server[1]}"
        return f"{scope.get('scheme', 'http')}://{host}{self.base_url}"

    async def _redirect(self, scope: Scope, send: Send, location: str) -> None:
        if scope.get("query_string"):
            # `f/folder?archive` must stay a request for the archive once at `f/folder/`.
            location += "?" + scope["query_string"].decode("latin-1")
        headers = [(b"location", location_value(location))]
        body = b"Moved Permanently\n"
        await send_uncached(
            send, 301, body, b"text/plain; charset=utf-8", head=_is_head(scope), headers=headers
        )


# -- helpers ----------------------------------------------------------------------------------


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


async def _pump(chunks: Iterator[bytes], send: Send, length: int | None) -> None:
    """Send an archive's bytes, made in a thread; exactly `length` of them when known."""
    left = length
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
            await send({"type": "http.response.body", "body": data, "more_body": True})
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
    await send({"type": "http.response.body", "body": b""})


def _qr_svg(url: str) -> Markup:
    """The QR code of `url` as inline SVG, made here: no script, no outside request."""
    svg = segno.make(url, error="m").svg_inline(
        scale=5, border=2, dark="#000", light="#fff", omitsize=False
    )
    # segno's SVG holds only path data derived from the URL, never the URL's text.
    return Markup(svg)


def _duration_text(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = int(seconds)
    if s >= 86400:
        return f"{s // 86400} d {s % 86400 // 3600} h"
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60} min"
    if s >= 60:
        return f"{s // 60} min"
    return f"{s} s"


def _asks_archive(scope: Scope) -> bool:
    """`?archive` on a folder's URL: its archive, whatever the client accepts."""
    query = scope.get("query_string", b"").split(b"&")
    return any(q == b"archive" or q.startswith(b"archive=") for q in query)


def _wants_html(scope: Scope) -> bool:
    return "text/html" in _header(scope, b"accept")


def _is_head(scope: Scope) -> bool:
    return bool(scope["method"] == "HEAD")


def _header(scope: Scope, name: bytes) -> str:
    for k, v in scope.get("headers", ()):
        if k.lower() == name:
            return str(v.decode("latin-1"))
    return ""


def _header_value(headers: Any, name: bytes) -> str | None:
    for k, v in headers:
        if k.lower() == name:
            return str(v.decode("latin-1"))
    return None


async def _send_empty(send: Send, status: int, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b""})
