"""Every registered kind through the same checks: the contract a site keeps whatever it does.

The suite iterates `comptoir.sites.KINDS`: a new kind inherits it by registering, with the options
and front page of each of its demo sites (`SiteKind.demo`, at least one per kind; the demo's home
page, a static site, too). Each check runs with the site at the root and mounted at `/mnt`,
in-process on `build_app`:

- HEAD answers what GET answers, headers included, without a body;
- an unknown path is a short 404, as text or as JSON (`Accept: application/json`);
- OPTIONS answers with `Allow`, and a method outside it is a 405 with the same `Allow`;
- mounted under a prefix, the front page answers there and every link or redirect stays inside;
- a WebSocket handshake is refused where the kind speaks no WebSocket (its demo site's
  `websockets` lists where it does: those are accepted, mounted too);
- the lifespan hooks a kind declares are awaited, on the app its `build` made;
- an unexpected exception raised inside the kind's code becomes a 500 with a short body and a
  traceback on the terminal, never on the wire.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from comptoir import terminal
from comptoir.app import build_app
from comptoir.config import Config, ServerOptions, SiteConfig
from comptoir.demo import SITES, DemoEntry
from comptoir.sites import KINDS, AnyKind, SiteContext
from comptoir.types import ASGIApp, Message, Receive, Scope, Send
from tests.conftest import asgi_client

MOUNTS = ["/", "/mnt"]
BASE_URL = "http://conformance.test"

# What may legitimately differ between the headers of GET and HEAD on the same resource: values
# computed per response. `date` is added by the server (granian), not by the app, but listed so
# the check holds if a kind ever sets it. comptoir's pages carry no nonce (their CSP allows 'self'
# only) and no per-response cookie without a password, so nothing else varies.
PER_RESPONSE_HEADERS = frozenset({"date"})

# Accept values that pick different representations at the same URL (share's link answers the
# content, its page or JSON by Accept).
ACCEPTS = ("*/*", "text/html,application/xhtml+xml,*/*;q=0.8", "application/json")
HTML_ACCEPT = ACCEPTS[1]

# Methods tried for a 405: the first one the front page does not allow.
UNSAFE_METHODS = ("DELETE", "PATCH", "PUT", "POST")

# Inconsistencies known and not yet fixed, by (test, kind): each names the gap and where its fix
# belongs. Strict: once fixed, the test passes, fails as XPASS, and the entry goes.
KNOWN_GAPS: dict[tuple[str, str], str] = {}


def test_every_kind_has_a_demo_site() -> None:
    # The suite borrows options and a front page from the demo: a kind without one is untested.
    assert [name for name, kind in KINDS.items() if not kind.demo] == []


@dataclass
class Site:
    """One kind's demo site, served alone by `build_app`, at the root or under a prefix."""

    kind: str
    mount: str
    config: Config
    # The front page's path as a client requests it (mount included).
    front: str
    # Where the site speaks WebSocket (paths below its mount); everywhere else it must refuse.
    websockets: tuple[str, ...] = ()

    @property
    def prefix(self) -> str:
        """The mount as a path prefix ("" at the root)."""
        return "" if self.mount == "/" else self.mount

    def url(self, path: str) -> str:
        """A path below the site's mount, as a client requests it."""
        return self.prefix + path

    # The body bytes the app sent for each request, by (method, path).
    sent: dict[tuple[str, str], bytes] = dataclasses.field(default_factory=dict)

    def app(self) -> ASGIApp:
        """A fresh worker app for the site."""
        return build_app(self.config)

    def client(self) -> httpx.AsyncClient:
        """An in-process client for a fresh worker app, recording in `sent` what it sends."""
        return asgi_client(BodyRecorder(self.app(), self.sent), BASE_URL)


class BodyRecorder:
    """Wraps an app and keeps the body bytes it sends: httpx's transport drops the body of an
    answer to HEAD before a test can see it, a server may not."""

    def __init__(self, app: ASGIApp, sent: dict[tuple[str, str], bytes]) -> None:
        self.app = app
        self.sent = sent

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app, adding up the bodies of its answer."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        key = (scope["method"], scope["path"])
        self.sent[key] = b""

        async def recording(message: Message) -> None:
            if message["type"] == "http.response.body":
                self.sent[key] += message.get("body", b"")
            await send(message)

        await self.app(scope, receive, recording)


def demo_sites_by_kind() -> list[tuple[str, DemoEntry | None]]:
    """(kind, demo site) for every registered kind and each of its demo sites (None: it has none,
    and its checks fail saying so)."""
    out: list[tuple[str, DemoEntry | None]] = []
    for kind in sorted(KINDS):
        sites = [s for s in SITES if s.kind == kind]
        out.extend((kind, s) for s in sites or [None])
    return out


@pytest.fixture(
    params=demo_sites_by_kind(),
    ids=[f"{k}-{s.name}" if s else k for k, s in demo_sites_by_kind()],
)
def demo(request: pytest.FixtureRequest) -> DemoEntry:
    """A demo site of a registered kind (every demo site of each kind: a static site with and
    without listings, for example)."""
    kind, demo = request.param
    if demo is None:
        pytest.fail(f"kind {kind!r} has no demo site (its SiteKind.demo)")
    found: DemoEntry = demo
    return found


@pytest.fixture(params=MOUNTS, ids=["root", "mounted"])
def site(demo: DemoEntry, request: pytest.FixtureRequest, tmp_path: Path) -> Site:
    """A demo site served alone, at the root or mounted at /mnt."""
    gap = KNOWN_GAPS.get((request.node.originalname, demo.kind))
    if gap is not None:
        request.applymarker(pytest.mark.xfail(reason=gap, strict=True))
    mount: str = request.param
    options = demo.options(tmp_path)
    config = Config(
        server=ServerOptions(quiet=True),
        sites=(SiteConfig(demo.kind, options, path=mount, name=demo.name),),
    )
    prefix = "" if mount == "/" else mount
    return Site(demo.kind, mount, config, prefix + demo.path(tmp_path), demo.site.websockets)


@pytest.fixture
async def client(site: Site) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client for the site."""
    async with site.client() as c:
        yield c


@pytest.fixture
def terminal_lines() -> Iterator[list[str]]:
    """What the worker writes on its terminal (tracebacks of internal errors) during the test."""
    lines: list[str] = []
    terminal.take_over(lines.append)
    try:
        yield lines
    finally:
        terminal.take_over(None)


def unknown_path(site: Site) -> str:
    """A path below the front page that no kind serves."""
    return site.front.rstrip("/") + "/no-such-path-for-conformance"


def allow_set(response: httpx.Response) -> set[str]:
    """The methods of an `Allow` header."""
    return {m.strip().upper() for m in response.headers.get("allow", "").split(",") if m.strip()}


def comparable_headers(response: httpx.Response) -> list[tuple[str, str]]:
    """A response's headers, in order, without the per-response ones."""
    return [(k, v) for k, v in response.headers.multi_items() if k not in PER_RESPONSE_HEADERS]


# --- HEAD -----------------------------------------------------------------------------------


@pytest.mark.parametrize("accept", ACCEPTS, ids=["any", "html", "json"])
async def test_head_is_get_without_the_body(
    site: Site, client: httpx.AsyncClient, accept: str
) -> None:
    for path in (site.front, unknown_path(site)):
        get = await client.get(path, headers={"accept": accept})
        head = await client.head(path, headers={"accept": accept})
        assert head.status_code == get.status_code, path
        assert site.sent[("HEAD", path)] == b"", path
        assert comparable_headers(head) == comparable_headers(get), path


async def test_head_of_a_redirect_has_no_body(site: Site, client: httpx.AsyncClient) -> None:
    # The front page without its trailing slash (a link typed by hand) redirects to it.
    if site.front == site.url("/"):
        path = site.prefix or pytest.skip("the front page is the root: nothing to redirect")
    else:
        path = site.front.rstrip("/")
    get = await client.get(path)
    head = await client.head(path)
    assert get.is_redirect, get
    assert head.status_code == get.status_code
    assert site.sent[("HEAD", path)] == b""
    assert comparable_headers(head) == comparable_headers(get)


# --- 404 ------------------------------------------------------------------------------------


async def test_unknown_path_is_a_short_404_as_text(site: Site, client: httpx.AsyncClient) -> None:
    for path in (unknown_path(site), site.url("/no-such-path-for-conformance")):
        r = await client.get(path)
        assert r.status_code == 404, path
        assert r.headers["content-type"].startswith("text/plain"), path
        assert 0 < len(r.content) < 200, path


async def test_unknown_path_is_a_404_as_json(site: Site, client: httpx.AsyncClient) -> None:
    for path in (unknown_path(site), site.url("/no-such-path-for-conformance")):
        r = await client.get(path, headers={"accept": "application/json"})
        assert r.status_code == 404, path
        assert r.headers["content-type"].startswith("application/json"), path
        assert r.json()["status"] == 404, path


# --- OPTIONS and 405 ------------------------------------------------------------------------


async def test_options_answers_allow(site: Site, client: httpx.AsyncClient) -> None:
    r = await client.options(site.front)
    assert r.status_code in (200, 204)
    allowed = allow_set(r)
    assert {"GET", "HEAD", "OPTIONS"} <= allowed, r.headers.get("allow")


@pytest.mark.parametrize("accept", ["text/plain", "application/json"], ids=["text", "json"])
async def test_a_method_not_allowed_is_405_with_allow(
    site: Site, client: httpx.AsyncClient, accept: str
) -> None:
    allowed = allow_set(await client.options(site.front))
    method = next((m for m in UNSAFE_METHODS if m not in allowed), None)
    if method is None:
        pytest.skip("the front page allows every method tried")
    r = await client.request(method, site.front, headers={"accept": accept})
    assert r.status_code == 405
    # The same methods as OPTIONS says: one decision, whichever way the client asks.
    assert allow_set(r) == allowed
    assert r.headers["content-type"].startswith(accept)
    if accept == "application/json":
        assert r.json()["status"] == 405


# --- Mounted under a prefix -----------------------------------------------------------------


class _Links(HTMLParser):
    """The URLs a page links to: href, src, action, formaction."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("href", "src", "action", "formaction") and value is not None:
                self.links.append(value)


def links_of(page: str) -> list[str]:
    """Every URL an HTML page links to, as written."""
    parser = _Links()
    parser.feed(page)
    return parser.links


def stays_inside(site: Site, page_url: str, link: str) -> bool:
    """True when `link` (on the page at `page_url`) leads under the site's mount, or elsewhere
    than this server (another origin, mailto:, data:...)."""
    target = urlsplit(urljoin(page_url, link))
    base = urlsplit(BASE_URL)
    if (target.scheme, target.netloc) != (base.scheme, base.netloc):
        return True
    return target.path.startswith(site.prefix + "/")


def comptoirs_own_page(response: httpx.Response) -> bool:
    """True for an HTML page comptoir made (its templates get the strict CSP); a user's HTML file
    is served as written, links and all."""
    return (
        response.headers.get("content-type", "").startswith("text/html")
        and "content-security-policy" in response.headers
    )


async def test_front_page_answers_under_the_mount(site: Site, client: httpx.AsyncClient) -> None:
    r = await client.get(site.front, headers={"accept": HTML_ACCEPT})
    assert r.status_code == 200
    if comptoirs_own_page(r):
        page_url = BASE_URL + site.front
        outside = [x for x in links_of(r.text) if not stays_inside(site, page_url, x)]
        assert outside == []


async def test_redirects_stay_under_the_mount(site: Site, client: httpx.AsyncClient) -> None:
    paths = [site.front.rstrip("/")] if site.front != site.url("/") else []
    if site.prefix:
        paths.append(site.prefix)
    if not paths:
        pytest.skip("the front page is the root: nothing to redirect")
    for path in paths:
        r = await client.get(path)
        assert r.is_redirect, path
        location = r.headers["location"]
        assert stays_inside(site, BASE_URL + path, location), location
        assert urlsplit(urljoin(BASE_URL + path, location)).path == path + "/"


# --- WebSocket ------------------------------------------------------------------------------


class WebSocketPeer:
    """A WebSocket client speaking ASGI to an app directly (httpx's transport has no WebSocket)."""

    def __init__(self, app: ASGIApp, path: str) -> None:
        self.incoming: asyncio.Queue[Message] = asyncio.Queue()
        self.outgoing: asyncio.Queue[Message] = asyncio.Queue()
        scope: Scope = {
            "type": "websocket",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "scheme": "ws",
            "server": ("127.0.0.1", 80),
            "client": ("127.0.0.1", 50000),
            "root_path": "",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "headers": [
                (b"host", urlsplit(BASE_URL).netloc.encode()),
                (b"connection", b"upgrade"),
                (b"upgrade", b"websocket"),
                (b"sec-websocket-version", b"13"),
                (b"sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="),
            ],
            "subprotocols": [],
            "extensions": {"websocket.http.response": {}},
            "state": {},
        }
        self.outgoing.put_nowait({"type": "websocket.connect"})
        self.task = asyncio.create_task(app(scope, self.outgoing.get, self.incoming.put))

    async def next_message(self) -> Message:
        """The next message the app sends; `{"type": "returned"}` if it returned without one
        (fails after a few seconds)."""
        message = asyncio.ensure_future(self.incoming.get())
        await asyncio.wait({message, self.task}, timeout=5, return_when=asyncio.FIRST_COMPLETED)
        if message.done():
            return message.result()
        message.cancel()
        if self.task.done():
            self.task.result()  # an exception from the app is the failure to report
            return {"type": "returned"}
        raise AssertionError("the app sent nothing within 5 s")

    async def close(self) -> None:
        """Disconnect, and wait for the app to end its connection."""
        self.outgoing.put_nowait({"type": "websocket.disconnect", "code": 1000})
        await asyncio.wait_for(self.task, 5)


async def test_websocket_is_refused_where_not_spoken(site: Site, terminal_lines: list[str]) -> None:
    app = site.app()
    for path in (site.front, unknown_path(site)):
        if path.removeprefix(site.prefix) in site.websockets:
            continue
        peer = WebSocketPeer(app, path)
        first = await peer.next_message()
        # A close before the accept is a 403 to the client; a denial response says more.
        assert first["type"] in ("websocket.close", "websocket.http.response.start"), path
        await peer.close()
    assert terminal_lines == []


async def test_websocket_is_accepted_where_spoken(site: Site, terminal_lines: list[str]) -> None:
    if not site.websockets:
        pytest.skip(f"{site.kind} speaks no WebSocket")
    app = site.app()
    for path in site.websockets:
        peer = WebSocketPeer(app, site.url(path))
        assert (await peer.next_message())["type"] == "websocket.accept", path
        await peer.close()
    assert terminal_lines == []


# --- Lifespan -------------------------------------------------------------------------------


async def run_lifespan(app: ASGIApp) -> list[str]:
    """Start and stop an app as a worker does; the message types it answered."""
    messages: asyncio.Queue[Message] = asyncio.Queue()
    for event in ("lifespan.startup", "lifespan.shutdown"):
        messages.put_nowait({"type": event})
    answers: list[str] = []

    async def send(message: Message) -> None:
        answers.append(message["type"])

    scope: Scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    await asyncio.wait_for(app(scope, messages.get, send), 10)
    return answers


async def test_lifespan_hooks_are_awaited_on_the_built_app(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    kind = KINDS[site.kind]
    built: list[Any] = []
    calls: list[tuple[str, Any]] = []

    def build(options: Any, context: SiteContext) -> Any:
        app = kind.build(options, context)
        built.append(app)
        return app

    def recording(name: str, hook: Callable[[Any], Any] | None) -> Callable[[Any], Any]:
        async def run(app: Any) -> None:
            calls.append((name, app))
            if hook is not None:
                await hook(app)

        return run

    # Hooks are recorded whether the kind declares them or not: the worker must await both, and
    # the kind's own (when it has them) must succeed.
    recorded: AnyKind = dataclasses.replace(
        kind,
        build=build,
        startup=recording("startup", kind.startup),
        shutdown=recording("shutdown", kind.shutdown),
    )
    monkeypatch.setitem(KINDS, site.kind, recorded)
    answers = await run_lifespan(site.app())
    assert answers == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    [app] = built
    assert calls == [("startup", app), ("shutdown", app)]


# --- Unexpected exceptions ------------------------------------------------------------------


class FailingSend:
    """Wraps a site's app: its first `http.response.start` raises, inside the kind's own code.

    The exception comes out of the kind's call to `send`, so it travels through whatever the kind
    does with exceptions (its error mapping, its `finally` blocks) before reaching the worker app;
    nothing reached the client yet, so a 500 is still possible and required.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the site with a `send` that fails when the answer starts."""

        async def failing(message: Message) -> None:
            if message["type"] == "http.response.start":
                raise RuntimeError("conformance: injected failure")
            await send(message)

        await self.app(scope, receive, failing)


@pytest.mark.parametrize("accept", ["text/plain", "application/json"], ids=["text", "json"])
async def test_unexpected_exception_is_a_logged_500_with_a_short_body(
    site: Site, monkeypatch: pytest.MonkeyPatch, terminal_lines: list[str], accept: str
) -> None:
    kind = KINDS[site.kind]

    def build(options: Any, context: SiteContext) -> Any:
        return FailingSend(kind.build(options, context))

    monkeypatch.setitem(KINDS, site.kind, dataclasses.replace(kind, build=build))
    async with site.client() as c:
        r = await c.get(site.front, headers={"accept": accept})
    assert r.status_code == 500
    assert len(r.content) < 100
    assert b"Traceback" not in r.content and b"injected" not in r.content
    assert r.headers["content-type"].startswith(accept)
    if accept == "application/json":
        assert json.loads(r.content)["status"] == 500
    log = "\n".join(terminal_lines)
    assert "Traceback" in log and "RuntimeError: conformance: injected failure" in log
