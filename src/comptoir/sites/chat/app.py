"""The ASGI app of a chat site: `/ws`, the HTTP API beside it, and the front page.

Routes (a Starlette `Router` served by `sites/starlette.py`):

- `GET /ws`: the WebSocket (session.py), refused with 403 when the page that opens it comes from
  another origin (cross-site WebSocket hijacking) unless `--allow-origin` names it;
- `GET /openapi.json` (that HTTP API's OpenAPI document), `GET /docs` (Swagger UI on it);
- `GET /api/rooms`, `GET /api/rooms/<room>/messages?after=&before=&limit=`,
  `POST /api/rooms/<room>/messages` (`{"text", "nick"}`, delivered live), `GET /api/users`;
  errors are `{"error": "..."}` with a 4xx status, as the api kind answers;
- `GET /`: the browser's chat client (the page, web/static/chat.js and chat.css).

The app's `ChatRuntime` is what every connection shares: the options, the broker (the chat's core
in this process, or the hub's in the main process), this worker's fan-out and the history file.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route, Router, WebSocketRoute
from starlette.websockets import WebSocket

from comptoir.accesslog import escape_for_log
from comptoir.clientlimits import client_key
from comptoir.sites.chat import ChatOptions, endpoint_name, history_path
from comptoir.sites.chat.broker import Broker, LocalBroker
from comptoir.sites.chat.core import ChatError, make_core
from comptoir.sites.chat.fanout import Fanout
from comptoir.sites.chat.history import History
from comptoir.sites.chat.openapi import openapi_document
from comptoir.sites.chat.outbox import TokenBucket
from comptoir.sites.chat.protocol import SUBPROTOCOL
from comptoir.sites.chat.session import HISTORY_MAX, RECENT, TRY_LATER, ChatSession
from comptoir.sites.chat.text import BadName, check_nick, check_room, clean_text, parse_rate
from comptoir.sites.contract import SiteContext
from comptoir.sites.starlette import StarletteSite
from comptoir.terminal import write_line
from comptoir.types import Receive, Scope, Send
from comptoir.web import render

# The preference cookie holding a browser's nickname (written by chat.js, read to fill the page);
# comptoir's own prefix keeps it from echo sites' answers.
NICK_COOKIE = "comptoir_chat_nick"
# The largest body POST /api/rooms/<room>/messages reads: the JSON around a --max-message text.
BODY_SLACK = 1024
# Addresses whose HTTP posts are counted (--rate, per worker); past it the oldest is forgotten.
POSTERS_MAX = 10_000


@dataclass
class ChatRuntime:
    """What the connections of one chat site share in a worker."""

    options: ChatOptions
    broker: Broker
    history: History
    fanout: Fanout = field(default_factory=Fanout)
    monotonic: Callable[[], float] = time.monotonic

    @property
    def rate(self) -> tuple[float, float]:
        """(frames a second, burst) from `--rate`."""
        return parse_rate(self.options.rate)


class ChatSite:
    """The ASGI app of a chat site (see the module)."""

    def __init__(self, options: ChatOptions, context: SiteContext) -> None:
        self.options = options
        self.prefix = context.prefix
        hub = context.endpoints.get(endpoint_name(options))
        broker: Broker
        if hub is not None:
            from comptoir.sites.chat.hub import HubBroker

            broker = HubBroker(hub)
            history = History(history_path(options), writer=False)
        else:
            core = make_core(options)
            broker, history = LocalBroker(core), core.history
        self.runtime = ChatRuntime(options, broker, history)
        self.started = False
        self.refused: set[str] = set()  # the origins whose refusal was logged
        self.posters: OrderedDict[str | bytes, TokenBucket] = OrderedDict()  # --rate of POSTs
        self._starting = asyncio.Lock()
        router = Router(
            [
                Route("/", self.front, methods=["GET", "HEAD"]),
                WebSocketRoute("/ws", self.websocket),
                Route("/api/rooms", self.api_rooms, methods=["GET", "HEAD"]),
                Route(
                    "/api/rooms/{room}/messages", self.api_messages, methods=["GET", "HEAD", "POST"]
                ),
                Route("/api/users", self.api_users, methods=["GET", "HEAD"]),
                Route("/openapi.json", self.openapi, methods=["GET", "HEAD"]),
                Route("/docs", self.docs, methods=["GET", "HEAD"]),
            ],
            redirect_slashes=False,
        )
        self.site = StarletteSite(router)

    async def start(self) -> None:
        """Receive the site's events (the worker's lifespan, or the first request)."""
        async with self._starting:
            if not self.started:
                await self.runtime.broker.start(self.runtime.fanout.deliver)
                self.started = True

    async def close(self) -> None:
        """Stop receiving events; this worker's nicknames are freed."""
        if self.started:
            self.started = False
            await self.runtime.broker.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one request or WebSocket."""
        if scope["type"] not in ("http", "websocket"):
            return
        if not self.started:
            await self.start()
        try:
            await self.site(scope, receive, send)
        except ChatError as exc:
            # The hub is gone (hub.py): the API says so with a 503, not a 500.
            if scope["type"] != "http" or exc.code != "unavailable":
                raise
            await _json({"error": exc.message}, 503)(scope, receive, send)

    # WebSocket ---------------------------------------------------------------------------

    async def websocket(self, ws: WebSocket) -> None:
        """GET /ws: check the origin, take a place (limits), then serve the connection."""
        if not self._origin_allowed(ws):
            self._say_refused(ws.headers.get("origin", ""))
            await ws.close(1008)  # before the handshake: the client sees 403
            return
        last_id = _last_id(ws.query_params.get("last_id"))
        subprotocol = SUBPROTOCOL if SUBPROTOCOL in ws.scope.get("subprotocols", ()) else None
        host = ws.client.host if ws.client else "-"
        try:
            nick = await self.runtime.broker.call("connect", str(client_key(host)))
        except ChatError as exc:
            await ws.accept(subprotocol)
            await ws.close(TRY_LATER, exc.message)
            return
        try:
            await ws.accept(subprotocol)
        except BaseException:
            await self.runtime.broker.call("disconnect", nick)
            raise
        session = ChatSession(self.runtime, ws, nick, json_mode=subprotocol is not None)
        await session.run(last_id)

    def _say_refused(self, origin: str) -> None:
        # A browser shows nothing of a refused handshake but its status: the terminal says why,
        # once per origin (at most 20: a page trying many cannot fill the log).
        if origin in self.refused or len(self.refused) >= 20:
            return
        self.refused.add(origin)
        if origin == "null":
            page = "a page opened from a file or a sandboxed frame (Origin: null)"
        else:
            page = f"a page of {escape_for_log(origin)}"
        write_line(
            f"comptoir: chat: WebSocket from {page} refused (403), as a page of another site"
            f" would be; --allow-origin {escape_for_log(origin) or 'null'} lets it in"
        )

    def _origin_allowed(self, ws: WebSocket) -> bool:
        origin = ws.headers.get("origin")
        if origin is None:
            return True  # not a browser: cross-site hijacking needs one
        origin = origin.rstrip("/").lower()
        if origin in (o.rstrip("/").lower() for o in self.options.allow_origin):
            return True
        scheme = "https" if ws.scope.get("scheme") in ("wss", "https") else "http"
        host = ws.headers.get("host", "").lower()
        return bool(host) and origin == f"{scheme}://{host}"

    # HTTP API ----------------------------------------------------------------------------

    async def openapi(self, request: Request) -> Response:
        """GET /openapi.json: the HTTP API's OpenAPI 3.1 document."""
        return _json(openapi_document(self.prefix, self.options.max_message))

    async def docs(self, request: Request) -> Response:
        """GET /docs: Swagger UI on it (vendored, as the api kind's)."""
        page = render("api_docs.html", prefix=self.prefix, back="← chat")
        return HTMLResponse(page)

    async def api_rooms(self, request: Request) -> Response:
        """GET /api/rooms: every room, its members and messages kept."""
        return _json({"rooms": await self.runtime.broker.call("rooms")})

    async def api_users(self, request: Request) -> Response:
        """GET /api/users: who is connected now."""
        return _json({"users": await self.runtime.broker.call("users")})

    async def api_messages(self, request: Request) -> Response:
        """GET (a page of) or POST (one) message of a room."""
        try:
            room = check_room(request.path_params["room"])
        except BadName as exc:
            return _json({"error": str(exc)}, 400)
        if request.method == "POST":
            return await self._post(request, room)
        try:
            after = _number(request, "after")
            before = _number(request, "before")
            limit = _number(request, "limit")
        except ValueError as exc:
            return _json({"error": str(exc)}, 400)
        rooms = {r["name"] for r in await self.runtime.broker.call("rooms")}
        if room not in rooms:
            return _json({"error": f"no room #{room}"}, 404)
        limit = min(limit or RECENT, HISTORY_MAX)
        history = self.runtime.history
        if after is not None:
            messages = history.after(room, after, limit)
        elif before is not None:
            messages = history.before(room, before, limit)
        else:
            messages = history.recent(room, limit)
        return _json({"room": room, "messages": messages})

    def _may_post(self, request: Request) -> float:
        """0 if this client may post now (`--rate`, as a WebSocket's messages), else the seconds
        until it may."""
        key = client_key(request.client.host if request.client else "-")
        bucket = self.posters.get(key)
        if bucket is None:
            bucket = self.posters[key] = TokenBucket(*self.runtime.rate, now=self.runtime.monotonic)
            if len(self.posters) > POSTERS_MAX:
                self.posters.popitem(last=False)
        else:
            self.posters.move_to_end(key)
        if bucket.take():
            return 0.0
        return (1 - bucket.tokens) / bucket.rate

    async def _post(self, request: Request, room: str) -> Response:
        wait = self._may_post(request)
        if wait:
            retry = str(max(1, math.ceil(wait)))
            problem = {"error": f"too many messages: {self.options.rate} from one address"}
            return Response(orjson.dumps(problem), 429, {"Retry-After": retry}, "application/json")
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return _json({"error": "send JSON: Content-Type: application/json"}, 415)
        limit = self.options.max_message + BODY_SLACK
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                return _json({"error": f"body larger than {limit} bytes"}, 413)
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _json({"error": "the body is not JSON"}, 400)
        if not isinstance(data, dict):
            return _json({"error": 'send {"text": ..., "nick": ...}'}, 400)
        text, nick = data.get("text"), data.get("nick")
        if not isinstance(text, str) or not isinstance(nick, str):
            return _json({"error": "'text' and 'nick' must be strings"}, 400)
        text = clean_text(text)
        if not text:
            return _json({"error": "'text' is empty"}, 400)
        if len(text.encode()) > self.options.max_message:
            return _json({"error": f"'text' larger than {self.options.max_message} bytes"}, 413)
        try:
            nick = check_nick(nick)
        except BadName as exc:
            return _json({"error": str(exc)}, 400)
        broker = self.runtime.broker
        if await broker.call("online", nick):
            return _json({"error": f"the nickname {nick} is used by someone connected"}, 409)
        try:
            event = await broker.call("post", nick, room, text)
        except ChatError as exc:
            # A room the fixed list lacks: 404; a chat holding as many rooms as it can: 409.
            status = {"no_such_room": 404, "too_many_rooms": 409}.get(exc.code, 400)
            return _json({"error": exc.message}, status)
        return _json(event, 201)

    # Front page --------------------------------------------------------------------------

    async def front(self, request: Request) -> Response:
        """GET /: the chat client for browsers (web/static/chat.js), and how else to connect."""
        base = str(request.base_url).rstrip("/")
        try:
            # chat.js writes it with encodeURIComponent: a name may have letters beyond ASCII.
            nick = check_nick(unquote(request.cookies.get(NICK_COOKIE, "")))
        except BadName:
            nick = ""  # no cookie, or one the rules no longer accept: the page asks again
        html = render(
            "chat.html",
            prefix=self.prefix,
            nick=nick,
            cookie=NICK_COOKIE,
            fixed_rooms=self.options.fixed_rooms,
            max_message=self.options.max_message,
            page_url=base + "/",
            ws_url="ws" + base.removeprefix("http") + "/ws",
            api_url=base + "/api/rooms",
            tcp=self.options.tcp,
        )
        return HTMLResponse(html)


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status, media_type="application/json")


def _number(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise ValueError(f"'{name}' must be a whole number, 0 or more")
    return int(raw)


def _last_id(raw: str | None) -> int | None:
    if raw is None or not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        return None
    return int(raw)
