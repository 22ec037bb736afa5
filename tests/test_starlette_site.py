"""sites/starlette.py: a Starlette router mounted as a site sees Starlette's convention, and its
errors are answered comptoir's way."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException, WebSocketException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route, Router, WebSocketRoute
from starlette.websockets import WebSocket

from comptoir.errors import ClientGone, HTTPError
from comptoir.hosts import HostRouter
from comptoir.hosts import Route as HostRoute
from comptoir.sites.starlette import StarletteSite, route_path, route_raw_path
from comptoir.types import ASGIApp, Message, Scope


async def where(request: Request) -> Response:
    return JSONResponse(
        {
            "path": request.scope["path"],
            "root_path": request.scope["root_path"],
            "raw_path": request.scope["raw_path"].decode("latin-1"),
            "route_path": route_path(request.scope),
            "route_raw_path": (route_raw_path(request.scope) or b"").decode("latin-1"),
            "url": str(request.url),
            "url_for": str(request.url_for("where")),
            "inner": str(request.url_for("inner", name="x")),
        }
    )


async def inner(request: Request) -> Response:
    return PlainTextResponse(request.path_params["name"])


async def go_home(request: Request) -> Response:
    return RedirectResponse(request.url_for("where"))


async def refuse(request: Request) -> Response:
    raise HTTPError(409, "taken", {"x-why": "because"})


async def starlette_refuse(request: Request) -> Response:
    raise HTTPException(418)


async def gone(request: Request) -> Response:
    raise ClientDisconnect()


async def broken(request: Request) -> Response:
    raise RuntimeError("a bug")


async def ws_refuse(ws: WebSocket) -> None:
    raise WebSocketException(4001, "not you")


ROUTES = [
    Route("/where", where, name="where"),
    Route("/home", go_home),
    Route("/refuse", refuse),
    Route("/teapot", starlette_refuse),
    Route("/gone", gone),
    Route("/broken", broken),
    Route("/thing", where, methods=["GET", "PUT"]),
    Route("/thing", where, methods=["DELETE"]),
    Mount("/sub", routes=[Route("/{name}", inner, name="inner")]),
    WebSocketRoute("/ws-refuse", ws_refuse),
]


def mounted(prefix: str) -> ASGIApp:
    """The test router as a site at `prefix` behind the host router, as build_app mounts it."""
    site = StarletteSite(Router(ROUTES))
    return HostRouter([HostRoute(site, (), prefix)])


@pytest.fixture
def client(aclient: Callable[[ASGIApp], httpx.AsyncClient]) -> Callable[[str], httpx.AsyncClient]:
    def make(prefix: str) -> httpx.AsyncClient:
        return aclient(mounted(prefix))

    return make


@pytest.mark.parametrize("prefix", ["/", "/tools", "/caf\u00e9 bar"])
async def test_a_mounted_router_sees_starlettes_convention(
    client: Callable[[str], httpx.AsyncClient], prefix: str
) -> None:
    base = "" if prefix == "/" else prefix
    r = await client(prefix).get(base + "/where")
    assert r.status_code == 200
    seen: dict[str, Any] = r.json()
    assert seen["path"] == base + "/where"
    assert seen["root_path"] == base
    assert seen["route_path"] == "/where"
    assert seen["route_raw_path"] == "/where"
    encoded = httpx.URL("http://testserver" + base + "/where").raw_path.decode()
    assert seen["raw_path"] == encoded
    # Starlette leaves non-ASCII in its URLs; compared as URLs, they are the client's.
    url = httpx.URL("http://testserver" + encoded)
    assert httpx.URL(seen["url"]) == url
    assert httpx.URL(seen["url_for"]) == url
    assert httpx.URL(seen["inner"]) == url.join("sub/x")
    # A Mount inside the router, and a redirect built by url_for, stay under the prefix.
    assert (await client(prefix).get(base + "/sub/x")).text == "x"
    r = await client(prefix).get(base + "/home")
    assert httpx.URL(r.headers["location"]) == url


async def test_the_raw_path_below_the_mount_is_as_the_client_encoded_it(
    client: Callable[[str], httpx.AsyncClient],
) -> None:
    r = await client("/tools").get("/tools/%77here")
    assert r.json()["route_raw_path"] == "/%77here"
    assert r.json()["raw_path"] == "/tools/%77here"
    # The mount too: raw_path is the client's own, whole.
    r = await client("/tools").get("/%74ools/%77here")
    assert r.json()["route_raw_path"] == "/%77here"
    assert r.json()["raw_path"] == "/%74ools/%77here"
    r = await client("/caf\u00e9 bar").get("/caf%c3%a9%20bar/where")
    assert r.json()["route_raw_path"] == "/where"
    assert r.json()["raw_path"] == "/caf%c3%a9%20bar/where"


async def test_errors_are_short_answers_as_text_or_json(
    client: Callable[[str], httpx.AsyncClient],
) -> None:
    c = client("/tools")
    r = await c.get("/tools/refuse")
    assert (r.status_code, r.text, r.headers["x-why"]) == (409, "taken\n", "because")
    r = await c.get("/tools/refuse", headers={"accept": "application/json"})
    assert r.json() == {"error": "taken", "status": 409}
    r = await c.get("/tools/teapot")
    assert (r.status_code, r.text) == (418, "I'm a teapot\n")
    r = await c.get("/tools/nowhere", headers={"accept": "application/json"})
    assert r.json() == {"error": "Not found", "status": 404}
    assert (await c.get("/tools/nowhere")).text == "Not found\n"


async def test_405_and_options_name_the_same_methods(
    client: Callable[[str], httpx.AsyncClient],
) -> None:
    c = client("/tools")
    r = await c.post("/tools/thing")
    assert r.status_code == 405
    assert r.headers["allow"] == "DELETE, GET, HEAD, OPTIONS, PUT"
    assert r.text == "Method not allowed\n"
    r = await c.options("/tools/thing")
    assert (r.status_code, r.headers["allow"]) == (204, "DELETE, GET, HEAD, OPTIONS, PUT")
    r = await c.options("/tools/sub/x")
    assert r.headers["allow"] == "GET, HEAD, OPTIONS"
    assert (await c.options("/tools/nowhere")).status_code == 404


async def test_head_answers_carry_no_body() -> None:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {
        "type": "http",
        "method": "HEAD",
        "path": "/sub/hello",
        "root_path": "",
        "raw_path": b"/sub/hello",
        "query_string": b"",
        "headers": [],
    }
    await StarletteSite(Router(ROUTES))(scope, receive, send)
    assert sent[0]["status"] == 200
    assert b"".join(m.get("body", b"") for m in sent[1:]) == b""


async def test_disconnects_become_client_gone_and_bugs_go_on() -> None:
    site = StarletteSite(Router(ROUTES))

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        raise AssertionError("nothing is sent")

    def scope(path: str) -> Scope:
        return {"type": "http", "method": "GET", "path": path, "root_path": "", "headers": []}

    with pytest.raises(ClientGone):
        await site(scope("/gone"), receive, send)
    # Unexpected exceptions are for the worker app: a logged 500 (tests/test_conformance.py).
    with pytest.raises(RuntimeError, match="a bug"):
        await site(scope("/broken"), receive, send)


async def test_websocket_refusals_close_before_the_handshake() -> None:
    site = StarletteSite(Router(ROUTES))
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(message)

    def scope(path: str) -> Scope:
        return {"type": "websocket", "path": path, "root_path": "", "headers": []}

    await site(scope("/ws-refuse"), receive, send)
    await site(scope("/where"), receive, send)
    assert [m["type"] for m in sent] == ["websocket.close", "websocket.close"]
    assert sent[0]["code"] == 4001


def test_a_starlette_application_is_refused() -> None:
    # Its ServerErrorMiddleware would answer a 500 page of its own before comptoir could.
    with pytest.raises(TypeError, match="Router"):
        StarletteSite(Starlette(routes=ROUTES))  # type: ignore[arg-type]
