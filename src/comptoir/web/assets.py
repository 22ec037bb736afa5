"""The CSS and JS every page comptoir renders links, under `/.comptoir/` on every site."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from comptoir.http.errors import send_error
from comptoir.http.files import FileCache, FileOptions, send_file
from comptoir.http.paths import PathRefused, resolve_path
from comptoir.types import Receive, Scope, Send
from comptoir.web import ASSETS_PREFIX, STATIC_DIR


class Assets:
    """Answers `/.comptoir/<asset>` from the package's static folder (one per worker, all sites).

    Called by the theme switch's layer (web/theme.py) for the paths under `/.comptoir/` it does
    not answer itself, in front of the password: the login page needs its CSS.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.root = os.path.realpath(str(STATIC_DIR))
        # The package's own files change only when comptoir is upgraded: trusted for a minute.
        self.cache = FileCache(revalidate=60.0, clock=clock)
        self.options = FileOptions(cache_control="public, max-age=3600")
        self.prefix = ASSETS_PREFIX.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the asset a `/.comptoir/…` path names, or 404."""
        raw = scope.get("raw_path") or scope["path"].encode()
        try:
            resolved = resolve_path(self.root, raw[len(self.prefix) - 1 :])
        except PathRefused as exc:
            await send_error(scope, send, exc.status, exc.message)
            return
        info, _ = self.cache.lookup(resolved.path)
        if info is None or scope["method"] not in ("GET", "HEAD"):
            await send_error(scope, send, 404, "Not found")
            return
        # The package's own files: the same for every request until the cache looks again.
        until = self.cache.fresh_until(info.path)
        await send_file(scope, receive, send, info, self.cache, self.options, reuse_until=until)
