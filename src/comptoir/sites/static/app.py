"""The ASGI app of a static site: files through the lean path, folders, redirects, 404 pages."""

from __future__ import annotations

import os

from comptoir.errors import HTTPError
from comptoir.http import listing
from comptoir.http.errors import wants_json
from comptoir.http.files import FileCache, FileInfo, FileOptions, send_file
from comptoir.http.mime import is_textual
from comptoir.http.paths import (
    ResolveCache,
    quote_name,
    reachable,
    real_root,
    resolve_path,
    url_for_parts,
)
from comptoir.sites.contract import SiteContext
from comptoir.sites.static import StaticOptions
from comptoir.sites.toolkit import not_allowed, send_allowed, send_http_error, send_redirect
from comptoir.types import Receive, Scope, Send

ALLOWED = "GET, HEAD, OPTIONS"


class StaticSite:
    """The ASGI app of a static site."""

    def __init__(self, options: StaticOptions, context: SiteContext) -> None:
        self.options = options
        self.prefix = context.prefix
        self.root = real_root(options.root)
        self.cache = FileCache(options.revalidate, clock=context.clock.monotonic)
        self.resolutions = ResolveCache(options.revalidate, clock=context.clock.monotonic)
        cache_control = (
            f"public, max-age={options.cache}"
            if options.cache
            else "public, max-age=0, must-revalidate"
        )
        self.file_options = FileOptions(cache_control=cache_control, compress=options.compress)
        # The custom 404 page must not be cached as if it were the missing file.
        self.error_file_options = FileOptions(cache_control="no-cache")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one request."""
        if scope["type"] != "http":
            return
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            if method == "OPTIONS":
                await send_allowed(send, ALLOWED)
            else:
                await send_http_error(scope, send, not_allowed(ALLOWED))
            return
        try:
            await self._get(scope, receive, send)
        except HTTPError as exc:
            await self._error(scope, receive, send, exc)

    async def _get(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = scope.get("raw_path") or scope["path"].encode()
        known = self.resolutions.get(raw)
        if known is not None:
            # The hot path: a small file answered from memory makes no system call at all.
            info, _ = self.cache.lookup(known.path)
            if info is not None and _from_memory(info):
                await send_file(
                    scope,
                    receive,
                    send,
                    info,
                    self.cache,
                    self.file_options,
                    reuse_until=self._reuse_until(raw, info),
                )
                return
        resolved = resolve_path(self.root, raw, hidden=self.options.hidden)
        info, is_dir = self.cache.lookup(resolved.path)
        if info is not None:
            if resolved.trailing_slash:
                # `file.txt/` is not a folder: don't serve the file under a second URL.
                raise HTTPError(404, "Not found")
            await send_file(scope, receive, send, info, self.cache, self.file_options)
            if _from_memory(info):
                self.resolutions.put(raw, resolved)
            return
        if not is_dir:
            raise HTTPError(404, "Not found")
        if not resolved.trailing_slash:
            await self._redirect_to_slash(scope, send, resolved.parts)
            return
        index = self._file_in(resolved.path, "index.html")
        if index is not None:
            await send_file(scope, receive, send, index, self.cache, self.file_options)
            return
        if not self.options.listing:
            raise HTTPError(404, "Not found")
        await self._listing(scope, send, resolved.path, resolved.parts)

    def _reuse_until(self, raw: bytes, info: FileInfo) -> float | None:
        """Until when this file's answer depends on nothing but the URL (fastpath.py), if it does.

        Until either cache would look at the disk again: the resolution (a symlink swapped) or
        the file's stat (its content). Not with --compress: text then varies by Accept-Encoding.
        """
        if self.options.compress and is_textual(info.content_type):
            return None
        return min(self.resolutions.fresh_until(raw), self.cache.fresh_until(info.path))

    async def _redirect_to_slash(self, scope: Scope, send: Send, parts: tuple[str, ...]) -> None:
        # Canonical folder URLs end in "/" so that relative links in pages resolve correctly.
        # The location is rebuilt from the checked components, not echoed from the request:
        # `//evil.example` would otherwise redirect off-site (a protocol-relative URL).
        location = url_for_parts(parts, prefix=self.prefix, slash=True)
        await send_redirect(scope, send, location, keep_query=True, private=False)

    async def _listing(self, scope: Scope, send: Send, folder: str, parts: tuple[str, ...]) -> None:
        base_url = self.prefix + "".join("/" + quote_name(p) for p in parts) + "/"
        try:
            entries = listing.scan(folder, self.root, hidden=self.options.hidden, base_url=base_url)
        except OSError:
            raise HTTPError(403, "Folder not readable") from None
        if wants_json(scope):
            body = listing.render_json(parts, entries)
            ctype = b"application/json"
        else:
            body = listing.render_html(parts, entries, prefix=self.prefix).encode()
            ctype = b"text/html; charset=utf-8"
        headers = [
            (b"content-type", ctype),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-cache"),
            (b"vary", b"Accept"),
            (b"x-content-type-options", b"nosniff"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send(
            {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body}
        )

    async def _error(self, scope: Scope, receive: Receive, send: Send, exc: HTTPError) -> None:
        """A 404 answered by --spa's index.html or the site's own 404.html, else comptoir's page
        for browsers (back to the site's root), plain text or JSON for the rest."""
        if exc.status == 404:
            path = scope["path"]
            last = path.rsplit("/", 1)[-1]
            if self.options.spa and "." not in last:
                index = self._root_file("index.html")
                if index is not None:
                    await send_file(scope, receive, send, index, self.cache, self.file_options)
                    return
            page = self._root_file("404.html")
            if page is not None and not wants_json(scope):
                await send_file(
                    scope, receive, send, page, self.cache, self.error_file_options, status=404
                )
                return
        await send_http_error(scope, send, exc, self.prefix + "/")

    def _root_file(self, name: str) -> FileInfo | None:
        return self._file_in(self.root, name)

    def _file_in(self, folder: str, name: str) -> FileInfo | None:
        # Files the server picks itself obey the same rules as requested ones (no symlink out).
        real = reachable(self.root, os.path.join(folder, name), hidden=self.options.hidden)
        if real is None:
            return None
        info, _ = self.cache.lookup(real)
        return info


def _from_memory(info: FileInfo) -> bool:
    """True if every answer for this file comes from memory (so its resolution may be reused).

    Anything read from disk (a large file, a precompressed sibling) is resolved afresh each time.
    """
    return info.body is not None and not info.variants
