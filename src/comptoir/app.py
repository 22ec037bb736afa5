"""Assembles the ASGI app a worker serves: access log → lifespan → host router → security → sites.

`build_app(config)` runs in each worker process: every site kind builds its app from its options,
each is wrapped so `/.comptoir/…` answers the shared CSS/JS, then in the security middlewares
(headers, theme switch, password: `security.secure_site`), and the router picks one per request.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
from collections.abc import Callable

from comptoir.accesslog import AccessLog
from comptoir.config import Config
from comptoir.hosts import HostRouter, Route, normalize_host, normalize_mount
from comptoir.http.errors import send_error
from comptoir.http.files import FileCache, FileOptions, send_file
from comptoir.http.paths import PathRefused, resolve_path
from comptoir.security import secure_site
from comptoir.sites import SiteContext, get_kind
from comptoir.state import open_store
from comptoir.types import ASGIApp, Receive, Scope, Send
from comptoir.web import ASSETS_PREFIX, STATIC_DIR

# python-multipart logs every malformed body it meets as a warning. The client already gets a 400
# saying so; what a client sends must not write on the server's terminal (--quiet means quiet).
_multipart_log = logging.getLogger("python_multipart")
_multipart_log.addHandler(logging.NullHandler())
_multipart_log.propagate = False


class WithAssets:
    """Answers `/.comptoir/<asset>` from the package's static folder, else defers to the site."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.root = os.path.realpath(str(STATIC_DIR))
        self.cache = FileCache(revalidate=60.0)
        self.options = FileOptions(cache_control="public, max-age=3600")
        self.prefix = ASSETS_PREFIX.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve an asset or pass the request on."""
        raw = scope.get("raw_path") or scope["path"].encode()
        if scope["type"] != "http" or not raw.startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        try:
            resolved = resolve_path(self.root, raw[len(self.prefix) - 1 :])
        except PathRefused as exc:
            await send_error(scope, send, exc.status, exc.message)
            return
        info, _ = self.cache.lookup(resolved.path)
        if info is None or scope["method"] not in ("GET", "HEAD"):
            await send_error(scope, send, 404, "Not found")
            return
        await send_file(scope, receive, send, info, self.cache, self.options)


class Lifespan:
    """Answers ASGI lifespan events, running the sites' own startup/shutdown hooks if any."""

    def __init__(self, app: ASGIApp, sites: list[ASGIApp]) -> None:
        self.app = app
        self.sites = sites

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle lifespan, pass everything else on."""
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self._call_all("startup")
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                with contextlib.suppress(Exception):
                    await self._call_all("shutdown")
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _call_all(self, hook: str) -> None:
        for site in self.sites:
            fn = getattr(site, hook, None)
            if fn is not None:
                result = fn()
                if inspect.isawaitable(result):
                    await result


def build_app(
    config: Config,
    *,
    request_shutdown: Callable[[], None] | None = None,
    state_path: str | None = None,
) -> ASGIApp:
    """Build the whole ASGI app for a config (called once per worker).

    `state_path` is the SQLite file the main process created for state shared between workers;
    without it the state is private to this process (one worker, tests).
    """
    store = open_store(state_path)
    routes: list[Route] = []
    site_apps: list[ASGIApp] = []
    for site in config.sites:
        kind = get_kind(site.kind)
        mount = normalize_mount(site.path)
        context = SiteContext(
            prefix="" if mount == "/" else mount,
            request_shutdown=request_shutdown or (lambda: None),
            quiet=config.server.quiet,
            store=store,
            workers=config.server.workers,
        )
        app = kind.build(site.options, context)
        site_apps.append(app)
        hosts = tuple(h for h in (normalize_host(x, wildcard=True) for x in site.hosts) if h)
        # Security sits inside the router, so it sees each site's own paths (its login page is
        # `<mount>/.comptoir/login`), and outside the assets, which the login page itself needs.
        guarded = secure_site(WithAssets(app), config.server, store)
        routes.append(Route(guarded, hosts, mount, site.default))
    outer: ASGIApp = Lifespan(HostRouter(routes), site_apps)
    if not config.server.quiet:
        outer = AccessLog(outer, config.server.log_format)
    return outer
