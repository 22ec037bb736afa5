"""The pages of a share: the landing page (with the link's QR code), its JSON description for
scripts, shared folders' listings, and the 410 page once the link is over.

The QR code is for another machine (a phone): a page opened on this one through `127.0.0.1` or
`localhost` shows the link with the machine's LAN address instead, or says that none reaches it.

All of them read the disk (sizes, what a folder holds) in a thread, and none is counted: they
say what can be downloaded, they are not downloads.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import segno
from markupsafe import Markup

from comptoir.errors import HTTPError
from comptoir.http import listing
from comptoir.http.errors import send_error, wants_json
from comptoir.http.listing import human_size
from comptoir.http.mime import content_type
from comptoir.http.paths import display_name, quote_name
from comptoir.http.responses import send_uncached
from comptoir.netinfo import is_loopback_host
from comptoir.sites.share import ShareOptions
from comptoir.sites.share.archive import EXTENSIONS, ArchiveChanged, make_archive
from comptoir.sites.share.download import ARCHIVE_UNIT, Downloads
from comptoir.sites.share.items import SharedItem, file_unit, folder_totals, walk
from comptoir.sites.share.limits import Gone
from comptoir.sites.toolkit import header, wants_html
from comptoir.types import Scope, Send
from comptoir.web import render

HTML = b"text/html; charset=utf-8"
_HOST = re.compile(r"^[A-Za-z0-9.\-]+(:\d+)?$|^\[[0-9A-Fa-f:.]+\](:\d+)?$")


@dataclass(frozen=True)
class ShareLinks:
    """The URLs under a share's link: `base` is `<mount prefix>/<token>/`."""

    base: str
    # The archive of everything, relative to `base` (`archive.zip`).
    archive_path: str

    @property
    def archive(self) -> str:
        """The URL of the archive of everything shared."""
        return self.base + self.archive_path

    def folder(self, item: SharedItem, parts: tuple[str, ...]) -> str:
        """The URL of a shared folder, or of a folder inside it (`parts`)."""
        return self.base + "f/" + "".join(quote_name(p) + "/" for p in (item.name, *parts))

    def item(self, item: SharedItem) -> str:
        """The URL of a shared file or folder."""
        if item.is_dir:
            return self.folder(item, ())
        return self.base + "f/" + quote_name(item.name)


class SharePages:
    """The pages a share shows people (HTML) and scripts (JSON)."""

    def __init__(
        self,
        options: ShareOptions,
        items: list[SharedItem],
        links: ShareLinks,
        downloads: Downloads,
        prefix: str,
        archive_name: str | None,
        lan_address: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.options = options
        self.items = items
        self.links = links
        self.downloads = downloads
        self.slots = downloads.slots
        self.prefix = prefix
        # The file name of the archive of everything; None for a one-file share (no archive).
        self.archive_name = archive_name
        # The machine's LAN address for URLs, where other machines reach the share (SiteContext).
        self.lan_address = lan_address

    async def gone(self, scope: Scope, send: Send, reason: str) -> None:
        """410: a page for people, a short text or JSON for scripts."""
        if wants_html(scope):
            body = render("share_gone.html", prefix=self.prefix, reason=reason).encode()
            await send_uncached(send, 410, body, HTML, head=scope["method"] == "HEAD")
        else:
            await send_error(scope, send, 410, reason)

    async def describe(self, scope: Scope, send: Send) -> None:
        """`Accept: application/json` on the share's URL: what it holds, for scripts."""
        self._refuse_when_over()
        items, archive = await asyncio.to_thread(
            lambda: (self._describe_items(), self._describe_archive())
        )
        doc = {"items": items, "archive": archive, "expires_in": self.slots.seconds_left()}
        body = json.dumps(doc, ensure_ascii=False).encode()
        head = scope["method"] == "HEAD"
        await send_uncached(send, 200, body, b"application/json", head=head, vary=True)

    async def landing(self, scope: Scope, send: Send) -> None:
        """The page a person opens: what is shared, download buttons, the link's QR code."""
        self._refuse_when_over()
        items, archive, public = await asyncio.to_thread(
            lambda: (self._describe_items(), self._describe_archive(), self._public_url(scope))
        )
        for entry in items:
            entry["human_size"] = human_size(entry["size"])
        if archive is not None:
            # A compressed archive's size is not known before it is made: no size shown.
            size = archive["size"]
            archive["human_size"] = human_size(size) if size is not None else ""
        url = public or self._url(scope, _reached_host(scope))
        body = render(
            "share.html",
            prefix=self.prefix,
            items=items,
            archive=archive,
            url=url,
            qr=_qr_svg(url) if public is not None else None,
            expires=_duration_text(self.slots.seconds_left()),
            limit=self.slots.count,
        ).encode()
        await send_uncached(send, 200, body, HTML, head=scope["method"] == "HEAD", vary=True)

    async def listing(
        self, scope: Scope, send: Send, item: SharedItem, folder: str, parts: tuple[str, ...]
    ) -> None:
        """A shared folder's page: its entries, each file downloadable, and 'download all'."""
        self._refuse_when_over()
        base = self.links.folder(item, parts)
        try:
            entries = await asyncio.to_thread(
                listing.scan, folder, item.path, hidden=False, base_url=base
            )
        except OSError:
            raise HTTPError(403, "Folder not readable") from None
        head = scope["method"] == "HEAD"
        if wants_json(scope):
            body = listing.render_json((item.name, *parts), entries)
            await send_uncached(send, 200, body, b"application/json", head=head, vary=True)
            return
        crumbs = [{"name": "Share", "url": self.links.base}]
        names = (item.name, *parts)
        for i in range(len(names)):
            url = self.links.folder(item, names[1 : i + 1])
            crumbs.append({"name": display_name(names[i]), "url": url})
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
            archive_url=self.links.archive,
            archive_name=display_name(self.archive_name or ""),
            # The archive of this folder alone, unless it is the share's whole archive.
            folder_archive_url=base + "?archive" if parts or len(self.items) > 1 else None,
            folder_archive_name=display_name(names[-1] + EXTENSIONS[self.options.archive]),
        ).encode()
        await send_uncached(send, 200, body, HTML, head=head, vary=True)

    def _refuse_when_over(self) -> None:
        over = self.downloads.over()
        if over is not None:
            raise Gone(over)

    def _describe_items(self) -> list[dict[str, Any]]:
        """Name, kind, size and downloads left of each shared item (reads the disk)."""
        out = []
        for item in self.items:
            entry: dict[str, Any] = {
                "name": display_name(item.name),
                "type": "directory" if item.is_dir else "file",
                "url": self.links.item(item),
            }
            try:
                if item.is_dir:
                    entry["files"], entry["size"] = folder_totals(item)
                    entry["archive_url"] = self.links.item(item) + "?archive"
                else:
                    entry["size"] = os.stat(item.path).st_size
                    entry["content_type"] = content_type(item.path)
                    entry["downloads_left"] = self.slots.left(item.unit)
            except OSError:
                continue
            out.append(entry)
        return out

    def _describe_archive(self) -> dict[str, Any] | None:
        if self.archive_name is None:
            return None
        try:
            archive = make_archive(
                self.options.archive, list(walk(self.items)), compress=self.options.compress
            )
        except ArchiveChanged:
            return None
        return {
            "name": display_name(self.archive_name),
            "url": self.links.archive,
            "size": archive.size,
            "downloads_left": self.slots.left(ARCHIVE_UNIT),
        }

    def _public_url(self, scope: Scope) -> str | None:
        """The share's URL for another machine, for the QR code and the copy button: as this
        browser reached it, but with the machine's LAN address if it came through loopback
        (None when no address reaches the share). Makes system calls: run it in a thread."""
        host = _reached_host(scope)
        name, colon, port = host.rpartition(":")
        if not colon or "]" in port:  # no port: `localhost`, `[::1]`
            name, port = host, ""
        if is_loopback_host(name):
            lan = self.lan_address()
            if lan is None:
                return None
            host = lan + (f":{port}" if port else "")
        return self._url(scope, host)

    def _url(self, scope: Scope, host: str) -> str:
        return f"{scope.get('scheme', 'http')}://{host}{self.links.base}"


def _reached_host(scope: Scope) -> str:
    """`host[:port]` as the request reached the server: its Host header, else (no header, or
    one that is no host name) the address it came in at."""
    host = header(scope["headers"], b"host") or ""
    if not _HOST.match(host):
        server = scope.get("server") or ("localhost", None)
        host = f"[{server[0]}]" if ":" in str(server[0]) else str(server[0])
        if server[1]:
            host += f":{server[1]}"
    return host


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
