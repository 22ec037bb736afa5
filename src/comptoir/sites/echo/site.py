"""The ASGI app of an echo site: limits and CORS around Starlette's router, served through
`sites/starlette.py` (mount convention, `HTTPError` and disconnects, OPTIONS/405 `Allow`).

The endpoints live in `endpoints`, `dynamic` and `auth`; each module exports its `ROUTES`. This
module wraps them with what every answer shares:
- a request whose declared body exceeds `max_body` gets 413 before any endpoint runs;
- every answer carries `Access-Control-Allow-Origin: *` (error answers too: the adapter answers
  through this site's `send`) and OPTIONS answers CORS preflights, as httpbin does — but never
  `Allow-Credentials`: an echo site may share a host with sites whose cookies must stay private,
  and a credentialed cross-origin read of /cookies would reveal them;
- every answer but comptoir's own pages carries `Content-Security-Policy: sandbox` (`SANDBOX`);
- comptoir's own cookies are never shown back (http/cookies.without_own_cookies) nor set.

Paths without parameters (/headers, /uuid...) are found by a dict lookup instead of Starlette's
walk through every route's regex. /get, /headers, /ip and /user-agent, computed from the request
alone, are answered before the router by `computed.py`, and offered to the worker's fast path.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, Router, WebSocketRoute

from comptoir.http.errors import send_error
from comptoir.http.numbers import parse_decimal
from comptoir.http.reuse import REUSE, Computed
from comptoir.sites import SiteContext
from comptoir.sites.echo import EchoOptions, auth, computed, dynamic, endpoints, index
from comptoir.sites.echo.context import SCOPE_KEY, EchoContext
from comptoir.sites.starlette import StarletteSite, route_path, starlette_scope
from comptoir.types import Message, Receive, Scope, Send
from comptoir.web.page import current_page

PREFLIGHT_METHODS = b"GET, POST, PUT, DELETE, PATCH, OPTIONS"
CORS = (b"access-control-allow-origin", b"*")
# On every answer but comptoir's own pages (which have their strict policy): what a client makes
# echo answer (/response-headers?Content-Type=text/html&x=<script>…, /base64/…) is shown by a
# browser in a sandbox — no script, no form, an origin of its own — never as a page of this host,
# whose other sites' cookies and pages it could otherwise reach. A policy the client adds itself
# (/response-headers) only narrows this one: browsers enforce every policy they get.
SANDBOX = (b"content-security-policy", b"sandbox")

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


class ExactRouter(Router):
    """Starlette's router, but paths without parameters are found by a dict lookup."""

    def __init__(self, routes: Sequence[BaseRoute]) -> None:
        super().__init__(list(routes), redirect_slashes=False)
        self.exact = exact_routes(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer through the route of an exact path at once, else as Router does."""
        if scope["type"] == "http":
            endpoint = self.exact.get((scope["method"], route_path(scope)))
            if endpoint is not None:
                # What Starlette's Route would do for this route, without the search for it.
                scope.setdefault("router", self)
                scope["path_params"] = {}
                response = await endpoint(Request(scope, receive, send))
                await response(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


class EchoSite:
    """The ASGI app of an echo site."""

    def __init__(self, options: EchoOptions, context: SiteContext) -> None:
        self.context = EchoContext(options, context.prefix)
        self.site = StarletteSite(ExactRouter(all_routes()), options=self._options)
        self.computed = {
            path: (describe, Computed(computed.outer(describe, self.context)))
            for path, describe in computed.DESCRIBE.items()
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one request or WebSocket."""
        if scope["type"] not in ("http", "websocket"):
            return
        child = {**scope, SCOPE_KEY: self.context}
        if scope["type"] == "websocket":
            await self.site(child, receive, send)
            return
        if scope["method"] == "GET":
            found = self.computed.get(scope["path"])
            if found is not None:
                describe, offer = found
                body = computed.body(describe, starlette_scope(child))
                if body is not None:
                    headers = list(computed.JSON_HEADERS)
                    headers[0] = (b"content-length", str(len(body)).encode())
                    start = {"type": "http.response.start", "status": 200, "headers": headers}
                    start[REUSE] = offer
                    await send(start)
                    await send({"type": "http.response.body", "body": body})
                    return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(k.lower() == b"access-control-allow-origin" for k, _ in headers):
                    headers.append(CORS)
                if not current_page().rendered:
                    headers.append(SANDBOX)
                message = {**message, "headers": headers}
            await send(message)

        limit = self.context.options.max_body
        if _declared_length(child) > limit:
            await send_error(child, send_with_cors, 413, f"request body larger than {limit} bytes")
            return
        await self.site(child, receive, send_with_cors)

    async def _options(self, scope: Scope, send: Send, allowed: list[str]) -> None:
        """Answer OPTIONS with the methods the path allows and a CORS preflight, as Flask does."""
        headers = [
            (b"allow", ", ".join(allowed).encode()),
            (b"access-control-allow-methods", PREFLIGHT_METHODS),
            (b"access-control-max-age", b"3600"),
            (b"content-length", b"0"),
        ]
        for k, v in scope.get("headers", ()):
            if k.lower() == b"access-control-request-headers":
                headers.append((b"access-control-allow-headers", v))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


def _declared_length(scope: Scope) -> int:
    """The request's Content-Length (0 when absent or not a number)."""
    for k, v in scope.get("headers", ()):
        if k.lower() == b"content-length":
            declared = parse_decimal(v.strip().decode("latin-1"))
            return declared or 0
    return 0
