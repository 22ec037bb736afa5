"""HostRouter in-process: Host normalisation, exact > wildcard > default, path mounts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from comptoir.hosts import HostRouter, Route, normalize_host, normalize_mount
from comptoir.types import ASGIApp, Receive, Scope, Send


def named(name: str) -> ASGIApp:
    """An app answering its name, the path and root_path it was given."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raw = scope.get("raw_path", b"").decode()
        body = f"{name} {scope['path']} {scope.get('root_path', '')} {raw}".encode()
        headers = [(b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def route(name: str, *hosts: str, path: str = "/", default: bool = False) -> Route:
    """A route to an app called `name`, hosts normalized as app.build_app does."""
    normalized = tuple(normalize_host(h, wildcard=True) or "" for h in hosts)
    return Route(named(name), normalized, normalize_mount(path), default)


ROUTER = HostRouter(
    [
        route("a", "a.example", "Bücher.example"),
        route("a-wild", "*.a.example"),
        route("a-blog", "a.example", path="/blog"),
        route("a-blog-old", "a.example", path="/blog/old"),
        route("b-api", "b.example", path="/api"),
        route("ipv6", "[::1]"),
        route("fallback", default=True),
    ]
)


@pytest.fixture
def client(aclient: Callable[[ASGIApp], httpx.AsyncClient]) -> httpx.AsyncClient:
    """An in-process client of ROUTER."""
    return aclient(ROUTER)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("Example.COM", "example.com"),
        ("example.com:8080", "example.com"),
        ("example.com:", "example.com"),
        ("example.com.", "example.com"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("BÜCHER.example", "xn--bcher-kva.example"),
        ("XN--BCHER-KVA.example", "xn--bcher-kva.example"),
        # Non-transitional, as browsers: ß stays ß (xn--strae-oqa), it does not become "ss".
        ("straße.de", "xn--strae-oqa.de"),
        # Fullwidth "example", as some input methods type it.
        ("\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com", "example.com"),
        ("[::1]:8000", "[::1]"),
        ("[0:0::1]", "[::1]"),
        ("127.0.0.1:80", "127.0.0.1"),
        ("my_service", "my_service"),
    ],
)
def test_normalize_host(host: str, expected: str) -> None:
    assert normalize_host(host) == expected


@pytest.mark.parametrize(
    "host",
    [
        "",
        "a..b",
        "example.com..",
        "example.com:http",
        "::1",
        "[::1",
        "[::1]x",
        "[nope]",
        "a b.example",
        "a/b",
        "a@b",
        "-a.example",
        "*.example.com",
        "x" * 64 + ".example",
    ],
)
def test_normalize_host_refuses(host: str) -> None:
    assert normalize_host(host) is None


def test_wildcards_only_in_configuration_and_only_as_first_label() -> None:
    assert normalize_host("*.Example.com", wildcard=True) == "*.example.com"
    assert normalize_host("*.bücher.example", wildcard=True) == "*.xn--bcher-kva.example"
    assert normalize_host("a.*.example", wildcard=True) is None
    assert normalize_host("*", wildcard=True) is None


@pytest.mark.parametrize(
    ("host", "site"),
    [
        ("a.example", "a"),
        ("A.EXAMPLE", "a"),
        ("a.example:8000", "a"),
        ("a.example.", "a"),
        ("a.example.:8000", "a"),
        ("xn--bcher-kva.example", "a"),
        ("www.a.example", "a-wild"),
        ("WWW.A.EXAMPLE.", "a-wild"),
        # One label only, as in Caddy: two labels deep is not covered.
        ("x.www.a.example", "fallback"),
        ("example", "fallback"),
        ("unknown.example", "fallback"),
        ("127.0.0.1:9000", "fallback"),
        ("[::1]:8000", "ipv6"),
    ],
)
async def test_host_matching(client: httpx.AsyncClient, host: str, site: str) -> None:
    r = await client.get("/", headers={"Host": host})
    assert r.status_code == 200
    assert r.text.split()[0] == site


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/", "a / "),
        ("/x", "a /x "),
        ("/blog/", "a-blog / /blog"),
        ("/blog/post", "a-blog /post /blog"),
        ("/blog/old/", "a-blog-old / /blog/old"),
        ("/blog/old/1", "a-blog-old /1 /blog/old"),
        ("/blog/older", "a-blog /older /blog"),
        # Whole components only: /blogger is not under /blog.
        ("/blogger", "a /blogger "),
    ],
)
async def test_longest_prefix_wins_and_is_stripped(
    client: httpx.AsyncClient, path: str, expected: str
) -> None:
    r = await client.get(path, headers={"Host": "a.example"})
    assert r.status_code == 200
    assert r.text.rsplit(" ", 1)[0] == expected


async def test_raw_path_is_stripped_however_the_prefix_is_encoded(
    client: httpx.AsyncClient,
) -> None:
    r = await client.get("/%62log/caf%C3%A9", headers={"Host": "a.example"})
    assert r.text == "a-blog /café /blog /caf%C3%A9"


async def test_exact_prefix_redirects_to_its_slash(client: httpx.AsyncClient) -> None:
    r = await client.get("/blog?page=2", headers={"Host": "a.example"})
    assert r.status_code == 301
    assert r.headers["location"] == "/blog/?page=2"
    r = await client.post("/blog", headers={"Host": "a.example"})
    assert r.status_code == 308


async def test_path_not_mounted_on_the_host_falls_back_to_the_next_rule(
    client: httpx.AsyncClient,
) -> None:
    # b.example has only /api: its other paths go to the default site.
    r = await client.get("/api/v1", headers={"Host": "b.example"})
    assert r.text.split()[0] == "b-api"
    r = await client.get("/", headers={"Host": "b.example"})
    assert r.text.split()[0] == "fallback"


async def test_unknown_host_without_default_is_421_and_names_no_host(
    aclient: Callable[[ASGIApp], httpx.AsyncClient],
) -> None:
    client = aclient(HostRouter([route("a", "a.example"), route("b", "b.example")]))
    r = await client.get("/", headers={"Host": "c.example"})
    assert r.status_code == 421
    assert "a.example" not in r.text
    assert "b.example" not in r.text
    assert r.text == "No site is configured for this host name\n"


async def test_known_host_with_no_site_at_that_path_is_404(
    aclient: Callable[[ASGIApp], httpx.AsyncClient],
) -> None:
    client = aclient(HostRouter([route("a", "a.example", path="/app"), route("b", "b.example")]))
    r = await client.get("/other", headers={"Host": "a.example"})
    assert r.status_code == 404


async def test_malformed_host_is_400(client: httpx.AsyncClient) -> None:
    r = await client.get("/", headers={"Host": "a b"})
    assert r.status_code == 400


async def call(app: ASGIApp, scope_extra: dict[str, Any]) -> list[dict[str, Any]]:
    """Call an ASGI app with a minimal HTTP scope; return the messages it sent."""
    scope: dict[str, Any] = {
        "type": "http",
        "http_version": "1.1",
        "method": "GET",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "headers": [],
        **scope_extra,
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


@pytest.mark.parametrize(
    ("extra", "status"),
    [
        ({"headers": []}, 400),
        # granian passes a missing Host as an empty one.
        ({"headers": [(b"host", b"")]}, 400),
        ({"headers": [(b"host", b"a.example"), (b"host", b"b.example")]}, 400),
        ({"headers": [(b"host", b"\xff.example")]}, 400),
        # HTTP/1.0 may omit Host: the default site answers.
        ({"headers": [], "http_version": "1.0"}, 200),
        ({"headers": [(b"host", b"")], "http_version": "1.0"}, 200),
        # A Unicode name sent as UTF-8 by a non-browser client.
        ({"headers": [(b"host", "bücher.example".encode())]}, 200),
    ],
)
async def test_host_header_edge_cases(extra: dict[str, Any], status: int) -> None:
    sent = await call(ROUTER, extra)
    assert sent[0]["status"] == status


@pytest.mark.parametrize(
    ("extra", "status"),
    [
        ({"headers": []}, 400),
        ({"headers": [(b"host", b"")]}, 400),
        ({"headers": [(b"host", b"a.example"), (b"host", b"b.example")]}, 400),
        ({"headers": [], "http_version": "1.0"}, 200),
        ({"headers": [(b"host", b"")], "http_version": "1.0"}, 200),
        ({"headers": [], "http_version": "2"}, 200),
        # No name to match: the value reaches the site as sent.
        ({"headers": [(b"host", b"x'; <b>")]}, 200),
    ],
)
async def test_a_single_site_refuses_a_missing_or_repeated_host_too(
    extra: dict[str, Any], status: int
) -> None:
    # RFC 9112 §3.2 is for every server, not only one with virtual hosts (`comptoir serve`).
    sent = await call(HostRouter([route("only")]), extra)
    assert sent[0]["status"] == status


async def test_websocket_to_unknown_host_is_closed() -> None:
    router = HostRouter([route("a", "a.example"), route("b", "b.example")])
    sent = await call(router, {"type": "websocket", "headers": [(b"host", b"c.example")]})
    assert sent == [{"type": "websocket.close", "code": 1008}]


def test_a_single_root_site_skips_the_route_lookup() -> None:
    only = route("only")
    assert HostRouter([only]).single is only
    assert HostRouter([route("a", "a.example")]).single is None


async def test_a_single_site_answers_any_well_formed_host() -> None:
    router = HostRouter([route("only")])
    for host in (b"anything.example", b"127.0.0.1:8000", b"[::1]", "bücher.example".encode()):
        sent = await call(router, {"headers": [(b"host", host)], "path": "/x"})
        assert (sent[0]["status"], sent[1]["body"]) == (200, b"only /x  /"), host


async def test_a_single_site_refuses_a_websocket_without_host() -> None:
    sent = await call(HostRouter([route("only")]), {"type": "websocket", "headers": []})
    assert sent == [{"type": "websocket.close", "code": 1008}]


async def test_overlong_host_is_400_and_not_cached() -> None:
    from comptoir.hosts import _cached_normalize

    before = _cached_normalize.cache_info().currsize
    sent = await call(ROUTER, {"headers": [(b"host", b"a." * 200 + b"example")]})
    assert sent[0]["status"] == 400
    assert _cached_normalize.cache_info().currsize == before


@pytest.mark.parametrize(
    ("path", "raw", "expected"),
    [
        ("/blog/post", b"/blog%2Fpost", "a-blog /post /blog /post"),
        ("/blog/old/1", b"/blog%2Fold/1", "a-blog-old /1 /blog/old /1"),
        ("/blog/old/a/b", b"/blog/old/a%2Fb", "a-blog-old /a/b /blog/old /a%2Fb"),
    ],
)
async def test_encoded_slashes_around_a_prefix(path: str, raw: bytes, expected: str) -> None:
    sent = await call(ROUTER, {"path": path, "raw_path": raw, "headers": [(b"host", b"a.example")]})
    assert sent[1]["body"].decode() == expected


async def test_redirects_under_a_non_ascii_mount_are_percent_encoded(
    tmp_path: Path, aclient: Callable[[ASGIApp], httpx.AsyncClient]
) -> None:
    from comptoir.app import build_app
    from comptoir.config import Config, ServerOptions, SiteConfig
    from comptoir.sites.share import ShareOptions
    from comptoir.sites.static import StaticOptions

    (tmp_path / "d").mkdir()
    token = "T" * 22
    sites = (
        SiteConfig("static", StaticOptions(root=tmp_path), path="/文档", default=True),
        SiteConfig("share", ShareOptions(paths=(tmp_path / "d",), token=token), path="/共享"),
    )
    app = build_app(Config(server=ServerOptions(quiet=True), sites=sites))
    async with aclient(app) as c:
        r = await c.get("/文档/d")
        assert r.status_code == 301
        assert r.headers["location"] == "/%E6%96%87%E6%A1%A3/d/"
        r = await c.get(f"/共享/{token}")
        assert r.status_code in (301, 308)
        assert r.headers["location"] == f"/%E5%85%B1%E4%BA%AB/{token}/"
