"""The ASGI app of an echo site: limits, CORS, short error answers, then Starlette's router.

The endpoints live in `endpoints`, `dynamic` and `auth`; each module exports its `ROUTES`. This
module wraps them with what every answer shares:
- a request whose declared body exceeds `max_body` gets 413 before any endpoint runs;
- every answer carries `Access-Control-Allow-Origin: *` and OPTIONS answers CORS preflights, as
  httpbin does — but never `Allow-Credentials`: an echo site may share a host with sites whose
  cookies must stay private, and a credentialed cross-origin read of /cookies would reveal them;
- `HTTPError`s raised by endpoints (bad numbers, limits) become a status with a short text/JSON
  body; a client that goes away mid-answer ends the request quietly.

Paths without parameters (/get, /headers, /ip...) are found by a dict lookup instead of Starlette's
walk through every route's regex: /get is what load tests hit, and the walk was a fifth of it.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, Router, WebSocketRoute

from comptoir.errors import HTTPError
from comptoir.http.errors import send_error
from comptoir.http.numbers import parse_decimal
from comptoir.sites import SiteContext
from comptoir.sites.echo import EchoOptions, auth, dynamic, endpoints, index
from comptoir.sites.echo.context import SCOPE_KEY, EchoContext
from comptoir.types import Message, Receive, Scope, Send

PREFLIGHT_METHODS = b"GET, POST, PUT, DELETE, PATCH, OPTIONS"

Endpoint = Callable[[Request], Awaitable[Response]]


def all_routes() -> list[BaseRoute]:
    """Every route of the echo site, the index page first."""
    return [*index.ROUTES, *endpoints.ROUTES, *dynamic.ROUTES, *auth.ROUTES]


def exact_routes(routes: Sequence[BaseRoute]) -> dict[tuple[str, str], Endpoint]:
    """(method, path) → endpoint for the routes without parameters, where the router would pick
    that very route: a route an earlier one could match is left to the router."""
    out: dict[tuple[str, str], Endpoint] = {}
    for i, route in enumerate(routes):
        if (
            not isinstance(route, Route)
            or route.param_convertors
            or not route.methods
            or not inspect.iscoroutinefunction(route.endpoint)
        ):
            continue
        earlier = routes[:i]
        if any(
            isinstance(r, Route | WebSocketRoute) and r.path_regex.match(route.path)
            for r in earlier
        ):
            continue
        for method in route.methods:
            out.setdefault((method, route.path), route.endpoint)
    return out


class EchoSite:
    """The ASGI app of an echo site."""

    def __init__(self, options: EchoOptions, context: SiteContext) -> None:
        self.context = EchoContext(options, context.prefix)
        self.routes = all_routes()
        self.router = Router(self.routes, redirect_slashes=False, default=self._not_found)
        self.exact = exact_routes(self.routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one request or WebSocket."""
        if scope["type"] not in ("http", "websocket"):
            return
        # The host router already moved the mount prefix out of `path`; Starlette must not try
        # to strip it a second time, so it sees no root_path (links use the context's prefix).
        child = {**scope, "root_path": "", SCOPE_KEY: self.context}
        if scope["type"] == "websocket":
            try:
                await self.router(child, receive, send)
            except HTTPError:
                await send({"type": "websocket.close", "code": 1008})
            return
        started = False

        async def send_with_cors(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                if not any(k.lower() == b"access-control-allow-origin" for k, _ in headers):
                    headers.append((b"access-control-allow-origin", b"*"))
                message = {**message, "headers": headers}
            await send(message)

        try:
            self._check_declared_length(child)
            if child["method"] == "OPTIONS":
                await self._options(child, send_with_cors)
                return
            endpoint = self.exact.get((child["method"], child["path"]))
            if endpoint is not None:
                # What Starlette's Route would do for this route, without the search for it.
                child["path_params"] = {}
                response = await endpoint(Request(child, receive, send_with_cors))
                await response(child, receive, send_with_cors)
                return
            await self.router(child, receive, send_with_cors)
        except HTTPError as exc:
            if not started:
                await send_error(child, send_with_cors, exc.status, exc.message, exc.headers)
        except ClientDisconnect:
            pass

    def _check_declared_length(self, scope: Scope) -> None:
        limit = self.context.options.max_body
        for k, v in scope.get("headers", ()):
            if k.lower() != b"content-length":
                continue
            declared = parse_decimal(v.strip().decode("latin-1"))
            if declared is not None and declared > limit:
                raise HTTPError(413, f"request body larger than {limit} bytes")

    async def _options(self, scope: Scope, send: Send) -> None:
        """Answer OPTIONS with the methods the path allows and a CORS preflight, as Flask does."""
        methods: set[str] = set()
        for route in self.routes:
            if isinstance(route, Route) and route.path_regex.match(scope["path"]):
                methods |= route.methods or set()
        if not methods:
            raise HTTPError(404, "Not found")
        headers = [
            (b"allow", ", ".join(sorted(methods | {"OPTIONS"})).encode()),
            (b"access-control-allow-methods", PREFLIGHT_METHODS),
            (b"access-control-max-age", b"3600"),
            (b"content-length", b"0"),
        ]
        for k, v in scope.get("headers", ()):
            if k.lower() == b"access-control-request-headers":
                headers.append((b"access-control-allow-headers", v))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    async def _not_found(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await send_error(scope, send, 404, "Not found")
