"""Starlette routers as comptoir sites: mount convention translated, errors answered in one place.

comptoir's host router hands a site its own paths: `path` lies below the mount and the mount is in
`root_path` (the static, share and receive sites, and the security middlewares, read `path` as
the site's own). Starlette follows the ASGI spec as clarified in 2023 instead (Starlette 0.33,
encode/starlette#2352): `path` is the full path, `root_path` a prefix of it; routes match `path`
without `root_path` (`get_route_path`), and `request.url`, `request.base_url` and `url_for` are
built from the two. `StarletteSite` turns one convention into the other at the site's edge, so a
router mounted at /tools sees `path` /tools/get with `root_path` /tools: its URLs and `url_for`
include the mount, and a `Mount` inside it works as Starlette documents.

It is also where the answers Starlette would make its own way are made comptoir's way:
- `HTTPError` (ours) and Starlette's `HTTPException` (its 404, its 405, a body it cannot parse)
  become the short text/JSON answer of `http/errors.py`, whichever the client asked for, and a 405
  says in `Allow` the same methods as OPTIONS does;
- a client that went away (`ClientDisconnect`, `WebSocketDisconnect`) becomes `ClientGone`, which
  the worker's outer app ends quietly; any other exception goes on to it too, to become a logged
  500 (app.WorkerApp);
- HEAD answers carry no body, even from a plain `Response`, which sends one;
- a `Starlette` application is refused: its ServerErrorMiddleware answers its own 500 page (a
  traceback with `debug`) before comptoir could, so a site mounts a `Router` and adds middleware
  around it if it needs some.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from urllib.parse import quote, unquote_to_bytes

from starlette._utils import get_route_path
from starlette.applications import Starlette
from starlette.exceptions import HTTPException, WebSocketException
from starlette.requests import ClientDisconnect
from starlette.routing import BaseRoute, Match, Mount, Route, Router
from starlette.websockets import WebSocketDisconnect

from comptoir.errors import ClientGone, HTTPError
from comptoir.hosts import RAW_ROOT_PATH
from comptoir.http.errors import reason, send_error
from comptoir.types import Message, Receive, Scope, Send

__all__ = ["StarletteSite", "answer_options", "route_path", "route_raw_path", "starlette_scope"]


OptionsAnswer = Callable[[Scope, Send, list[str]], Awaitable[None]]


async def answer_options(scope: Scope, send: Send, allowed: list[str]) -> None:
    """The default answer to OPTIONS: 204 with the path's methods in `Allow`."""
    headers = [(b"allow", ", ".join(allowed).encode())]
    await send({"type": "http.response.start", "status": 204, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


class StarletteSite:
    """A Starlette `Router` served as a comptoir site (see the module docstring).

    OPTIONS on a path whose routes do not take it themselves is answered by `options` with the
    methods of those routes (echo adds CORS preflight headers); on a path no route has, 404.
    """

    def __init__(self, router: Router, *, options: OptionsAnswer = answer_options) -> None:
        if isinstance(router, Starlette):
            raise TypeError("mount a starlette Router, not a Starlette application")
        self.router = router
        self.options = options

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one request or WebSocket through the router."""
        if scope["type"] not in ("http", "websocket"):
            # Lifespan is the kind's declared hooks, run by the worker app.
            return
        child = starlette_scope(scope)
        # Inside an "app", Starlette raises HTTPException for its 404 and 405 (and a body it
        # cannot parse) instead of sending its own plain-text pages: they come here, to be
        # answered like every other error.
        child["app"] = self
        started = False
        head = scope["type"] == "http" and scope["method"] == "HEAD"

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] in ("http.response.start", "websocket.accept", "websocket.close"):
                started = True
            elif head and message["type"] == "http.response.body" and message.get("body"):
                message = {**message, "body": b""}
            await send(message)

        try:
            if scope["type"] == "http" and scope["method"] == "OPTIONS":
                methods = self._methods(child)
                if "OPTIONS" not in methods:
                    if not methods:
                        raise HTTPError(404, "Not found")
                    await self.options(child, tracked, sorted(methods | {"OPTIONS"}))
                    return
            await self.router(child, receive, tracked)
        except (ClientDisconnect, WebSocketDisconnect) as exc:
            raise ClientGone() from exc
        except HTTPError as exc:
            if not started:
                await self._refuse(child, tracked, exc.status, exc.message, exc.headers)
        except HTTPException as exc:
            if not started:
                message = exc.detail
                if message == reason(exc.status_code):
                    # Starlette's default detail is the reason phrase; comptoir says "Not found".
                    message = message.capitalize()
                await self._refuse(child, tracked, exc.status_code, message, exc.headers)
        except WebSocketException as exc:
            if not started:
                await tracked({"type": "websocket.close", "code": exc.code, "reason": exc.reason})

    async def _refuse(
        self,
        scope: Scope,
        send: Send,
        status: int,
        message: str,
        headers: Mapping[str, str] | None,
    ) -> None:
        if scope["type"] == "websocket":
            # Before the handshake is accepted, a close is the client's 403.
            await send({"type": "websocket.close", "code": 1008})
            return
        out = dict(headers or {})
        if status == 405:
            # Starlette names the methods of one route; OPTIONS answers those of every route
            # matching the path: the client gets the same list both ways.
            out = {k: v for k, v in out.items() if k.lower() != "allow"}
            out["Allow"] = ", ".join(self.allowed_methods(scope))
        await send_error(scope, send, status, message, out)

    def allowed_methods(self, scope: Scope) -> list[str]:
        """The methods the routes matching a request's path accept, OPTIONS included, sorted;
        empty when no route has the path. `scope` is in Starlette's convention."""
        methods = self._methods(scope)
        return sorted(methods | {"OPTIONS"}) if methods else []

    def _methods(self, scope: Scope) -> set[str]:
        return _route_methods(self.router.routes, {**scope, "type": "http", "method": "GET"})


def _route_methods(routes: Sequence[BaseRoute], scope: Scope) -> set[str]:
    methods: set[str] = set()
    for route in routes:
        match, child = route.matches(scope)
        if match is Match.NONE:
            continue
        if isinstance(route, Route):
            methods |= route.methods or set()
        elif isinstance(route, Mount):
            methods |= _route_methods(route.routes, {**scope, **child})
    return methods


def starlette_scope(scope: Scope) -> Scope:
    """A copy of a site's scope in Starlette's convention: `path` (and `raw_path`) include the
    mount in `root_path`."""
    root = scope.get("root_path", "")
    child = dict(scope)
    if not root:
        return child
    child["path"] = root + scope["path"]
    raw = scope.get("raw_path")
    if raw is not None:
        # The host router removed the prefix from raw_path too; put it back as the client
        # spelled it: raw_path is then the request's own, whole.
        child["raw_path"] = _raw_root(scope) + raw
    return child


# The path below the site's mount, in a scope of Starlette's convention (what routes match):
# Starlette's own function, so the two never disagree.
route_path = get_route_path


def route_raw_path(scope: Scope) -> bytes | None:
    """The raw path below the site's mount, as the client encoded it (None without raw_path).

    The inverse of what `StarletteSite` does to `raw_path`, for endpoints that report the request
    as sent (echo's /anything, digest's URI) relative to the site.
    """
    raw: bytes | None = scope.get("raw_path")
    root = scope.get("root_path", "")
    if raw is None or not root:
        return raw
    encoded = _raw_root(scope)
    if raw.startswith(encoded):
        return raw[len(encoded) :] or b"/"
    return quote(scope["path"].removeprefix(root), errors="surrogateescape").encode()


def _raw_root(scope: Scope) -> bytes:
    """The mount (`root_path`) as the client spelled it, else encoded as hosts.py encodes a mount
    in the Location of its redirects."""
    root: str = scope.get("root_path", "")
    spelled = scope.get(RAW_ROOT_PATH)
    if spelled is not None and unquote_to_bytes(spelled) == root.encode("utf-8", "surrogateescape"):
        return bytes(spelled)
    return quote(root, errors="surrogateescape").encode()
