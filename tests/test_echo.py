"""`comptoir echo` in-process: what the differential suite cannot compare with httpbin —
comptoir's limits and refusals, go-httpbin's additions, timing, mounts under a prefix."""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import json
import re
import socket
import threading
import time
import urllib.parse
import zlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import brotli
import httpx
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from comptoir.app import build_app
from comptoir.cli import cli
from comptoir.config import Config, ServerOptions, SiteConfig
from comptoir.settings import options_from_mapping
from comptoir.sites.echo import EchoOptions
from comptoir.sites.echo.digest import parse_credentials
from comptoir.sites.echo.responses import pretty_json
from comptoir.types import ASGIApp, Message
from tests.conftest import http_scope, make_config

Echo = Callable[..., httpx.AsyncClient]


@pytest.fixture
def echo(aclient: Callable[[ASGIApp], httpx.AsyncClient]) -> Echo:
    """An in-process client for `comptoir echo [options]`."""

    def make(**options: Any) -> httpx.AsyncClient:
        return aclient(build_app(make_config("echo", EchoOptions(**options))))

    return make


@pytest.fixture
def mounted(aclient: Callable[[ASGIApp], httpx.AsyncClient]) -> httpx.AsyncClient:
    """An echo site mounted at /tools/echo, next to nothing else."""
    site = SiteConfig("echo", EchoOptions(), path="/tools/echo", name="echo")
    return aclient(build_app(Config(server=ServerOptions(quiet=True), sites=(site,))))


# --- Status codes ---------------------------------------------------------------------------


async def test_status_special_cases(echo: Echo) -> None:
    c = echo()
    r = await c.get("/status/418")
    assert r.status_code == 418
    assert "teapot" in r.text
    assert r.headers["x-more-info"].startswith("http")
    r = await c.get("/status/401")
    assert r.headers["www-authenticate"] == 'Basic realm="Fake Realm"'
    r = await c.post("/status/302")
    assert (r.status_code, r.headers["location"]) == (302, "/redirect/1")
    r = await c.get("/status/204")
    assert (r.status_code, r.content) == (204, b"")


async def test_weighted_status_picks_each_code_by_weight(echo: Echo) -> None:
    c = echo()
    seen = {(await c.get("/status/200:0.5,500:0.5")).status_code for _ in range(80)}
    assert seen == {200, 500}
    for _ in range(20):
        assert (await c.delete("/status/200:0,503:1")).status_code == 503


@pytest.mark.parametrize(
    "spec", ["99", "100", "600", "abc", "200:x", "200:0,500:0", "200:-1,500:1", "2OO", ",", ""]
)
async def test_bad_status_specs_are_400_not_500(echo: Echo, spec: str) -> None:
    r = await echo().get(f"/status/{spec}")
    assert r.status_code in (400, 404)


# --- Never a 500 for a client's mistake -----------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/delay/abc",
        "/delay/-1",
        "/delay/nan",
        "/delay/inf",
        "/drip?numbytes=abc",
        "/drip?numbytes=0",
        "/drip?duration=x",
        "/drip?code=abc",
        "/drip?code=1000",
        "/drip?code=304",
        "/bytes/10?seed=abc",
        "/stream-bytes/10?chunk_size=x",
        "/stream-bytes/10?seed=1.5",
        "/range/10?chunk_size=x",
        "/range/10?duration=x",
        "/redirect/0",
        "/relative-redirect/0",
        "/absolute-redirect/0",
        "/redirect-to",
        "/redirect-to?url=/x&status_code=abc",
        "/response-headers?bad%20name=1",
        "/response-headers?X-A=a%0D%0Ab",
        "/response-headers?Content-Length=5",
        "/cookies/set?bad%20name=1",
        "/base64/!!!!",
        "/base64/_w",
        "/sse?count=abc",
        "/sse?count=0",
        "/sse?duration=x",
        "/etag/a%0Db",
        "/image/gif",
        "/bytes/-1",
        "/links/x/0",
        "/digest-auth/auth/u/p?x=%ff",
    ],
)
async def test_client_mistakes_get_4xx_with_a_short_body(echo: Echo, url: str) -> None:
    r = await echo().get(url)
    assert 400 <= r.status_code < 500, (url, r.status_code, r.text)
    assert len(r.content) < 200


async def test_bad_bodies_are_described_or_refused_never_500(echo: Echo) -> None:
    c = echo()
    r = await c.post("/post", content=b"{broken", headers={"content-type": "application/json"})
    assert (r.status_code, r.json()["json"], r.json()["data"]) == (200, None, "{broken")
    deep = b"[" * 100_000 + b"]" * 100_000
    r = await c.post("/post", content=deep, headers={"content-type": "application/json"})
    assert (r.status_code, r.json()["json"]) == (200, None)
    bad = b"--b\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n--zz"
    r = await c.post(
        "/post", content=bad, headers={"content-type": "multipart/form-data; boundary=b"}
    )
    assert r.status_code in (200, 400)
    r = await c.post("/post", content=b"a=1", headers={"content-type": "multipart/form-data"})
    assert (r.status_code, r.json()["data"], r.json()["form"]) == (200, "a=1", {})


@pytest.mark.parametrize(("method", "path"), [("POST", "/post"), ("PUT", "/anything/x")])
async def test_a_body_the_server_cannot_read_is_400_not_500(method: str, path: str) -> None:
    # granian reports a malformed body (bad chunk size, bare-LF framing, short of its
    # Content-Length) as a disconnect before any answer: the client is still waiting for one.
    app = build_app(make_config("echo", EchoOptions()))
    headers = {"host": "testserver", "transfer-encoding": "chunked"}
    scope = {**http_scope(path, headers), "method": method}
    incoming: list[Message] = [{"type": "http.request", "body": b"abc", "more_body": True}]
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    assert sent, "no answer: granian sends its own 500"
    assert (sent[0]["type"], sent[0]["status"]) == ("http.response.start", 400)
    assert (b"connection", b"close") in sent[0]["headers"]
    assert sent[1]["body"] == b"Malformed or incomplete request body\n"


async def test_errors_answer_json_when_asked(echo: Echo) -> None:
    r = await echo().get("/delay/x", headers={"accept": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"].startswith("invalid delay")


# --- Limits ---------------------------------------------------------------------------------


async def test_body_over_max_body_is_413(echo: Echo) -> None:
    c = echo(max_body=1000)
    assert (await c.post("/post", content=b"x" * 1000)).status_code == 200
    r = await c.post("/post", content=b"x" * 1001)
    assert r.status_code == 413
    assert "1000" in r.text

    async def chunked() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"y" * 100

    # No Content-Length: the limit is enforced while reading.
    r = await c.post("/anything", content=chunked())
    assert r.status_code == 413
    r = await c.put("/dump/request", content=b"z" * 2000)
    assert r.status_code == 413


async def test_delays_beyond_max_duration_are_refused(echo: Echo) -> None:
    c = echo(max_duration=1.0)
    assert (await c.get("/delay/1.5")).status_code == 400
    assert (await c.get("/delay/11")).status_code == 400
    r = await c.get("/drip?duration=0.6&delay=0.6")
    assert (r.status_code, r.text.strip()) == (400, "Too much time")
    assert (await c.get("/sse?duration=2")).status_code == 400
    assert (await c.get("/range/10?duration=5")).status_code == 400
    # Defaults longer than the limit shrink to it instead of refusing every plain request.
    assert (await echo(max_duration=0.2).get("/sse?count=2")).status_code == 200


async def test_delay_takes_its_time_and_accepts_durations(echo: Echo) -> None:
    c = echo()
    start = time.monotonic()
    r = await c.get("/delay/250ms")
    assert r.status_code == 200
    assert 0.2 <= time.monotonic() - start < 2
    assert r.json()["url"] == "http://testserver/delay/250ms"


async def test_generated_bodies_are_clamped_or_refused_at_max_bytes(echo: Echo) -> None:
    c = echo(max_bytes=1000)
    assert len((await c.get("/bytes/5000")).content) == 1000
    assert len((await c.get("/stream-bytes/5000?chunk_size=300")).content) == 1000
    r = await c.get("/range/1001")
    assert r.status_code == 404
    assert "(0, 1000]" in r.text
    assert (await c.get("/drip?numbytes=1001&duration=0")).status_code == 400


# --- Redirects ------------------------------------------------------------------------------


async def test_redirect_chains_end_at_get(echo: Echo) -> None:
    c = echo()
    for path in ("/redirect/3", "/relative-redirect/3", "/absolute-redirect/3"):
        r = await c.get(path, follow_redirects=True)
        assert r.status_code == 200
        assert len(r.history) == 3
        assert r.json()["url"] == "http://testserver/get"
    r = await c.get("/absolute-redirect/2")
    assert r.headers["location"] == "http://testserver/absolute-redirect/1"
    r = await c.get("/redirect-to?url=https%3A%2F%2Fexample.com%2F%C3%A9%20x&status_code=308")
    assert (r.status_code, r.headers["location"]) == (308, "https://example.com/%C3%A9%20x")
    r = await c.post("/redirect-to", data={"url": "/get", "status_code": "303"})
    assert (r.status_code, r.headers["location"]) == (303, "/get")


async def test_mounted_site_links_and_locations_carry_the_prefix(
    mounted: httpx.AsyncClient,
) -> None:
    c = mounted
    assert (await c.get("/tools/echo/redirect/2")).headers["location"] == (
        "/tools/echo/relative-redirect/1"
    )
    assert (await c.get("/tools/echo/absolute-redirect/1")).headers["location"] == (
        "http://testserver/tools/echo/get"
    )
    r = await c.get("/tools/echo/get?a=1", follow_redirects=True)
    assert r.json()["url"] == "http://testserver/tools/echo/get?a=1"
    assert "/tools/echo/links/3/0" in (await c.get("/tools/echo/links/3/1")).text
    assert "Disallow: /tools/echo/deny" in (await c.get("/tools/echo/robots.txt")).text
    r = await c.get("/tools/echo/cookies/set?a=1")
    assert r.headers["location"] == "/tools/echo/cookies"
    assert r.headers["set-cookie"] == "a=1; Path=/tools/echo/"
    page = (await c.get("/tools/echo/")).text
    assert "curl -u user:passwd http://testserver/tools/echo/basic-auth/user/passwd" in page
    assert 'action="/tools/echo/post"' in (await c.get("/tools/echo/forms/post")).text


# --- Cookies --------------------------------------------------------------------------------


async def test_cookies_set_read_and_delete(echo: Echo) -> None:
    c = echo()
    r = await c.get("/cookies/set?a=1&b=x%20y&u=%C3%A9t%C3%A9", follow_redirects=True)
    assert r.json() == {"cookies": {"a": "1", "b": "x y", "u": "été"}}
    r = await c.get("/cookies/set/k/v", follow_redirects=True)
    assert r.json()["cookies"]["k"] == "v"
    r = await c.get("/cookies/delete?a&k")
    assert all("Max-Age=0" in v for v in r.headers.get_list("set-cookie"))
    r = await c.get("/cookies", follow_redirects=True)
    assert set(r.json()["cookies"]) == {"b", "u"}


# --- Authentication -------------------------------------------------------------------------


async def test_basic_and_bearer(echo: Echo) -> None:
    c = echo()
    r = await c.get("/basic-auth/ü/p:w", auth=("ü", "p:w"))
    assert r.json() == {"authenticated": True, "user": "ü"}
    assert (await c.get("/basic-auth/u/p", auth=("u", "x"))).status_code == 401
    bad = {"authorization": "Basic !!!notbase64"}
    assert (await c.get("/basic-auth/u/p", headers=bad)).status_code == 401
    assert (await c.get("/hidden-basic-auth/u/p")).status_code == 404
    r = await c.get("/bearer", headers={"authorization": "Bearer t0k3n"})
    assert r.json() == {"authenticated": True, "token": "t0k3n"}
    r = await c.get("/bearer")
    assert (r.status_code, r.headers["www-authenticate"]) == (401, "Bearer")


def _h(data: str | bytes, algorithm: str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return hashlib.new(
        {"MD5": "md5", "SHA-256": "sha256", "SHA-512": "sha512"}[algorithm], raw
    ).hexdigest()


def _digest_header(
    challenge: str,
    user: str,
    password: str,
    method: str,
    uri: str,
    *,
    qop: str | None,
    algorithm: str,
    body: bytes = b"",
) -> str:
    """A Digest Authorization header computed by hand (RFC 7616), independent of the server."""
    params = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))
    realm, nonce = params["realm"], params["nonce"]
    ha1 = _h(f"{user}:{realm}:{password}", algorithm)
    ha2 = _h(f"{method}:{uri}", algorithm)
    if qop == "auth-int":
        ha2 = _h(f"{method}:{uri}:{_h(body, algorithm)}", algorithm)
    fields = (
        f'username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", algorithm={algorithm}'
    )
    if qop is None:
        response = _h(f"{ha1}:{nonce}:{ha2}", algorithm)
        return f'Digest {fields}, response="{response}"'
    nc, cnonce = "00000001", "0a4f113b"
    response = _h(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}", algorithm)
    return f'Digest {fields}, qop={qop}, nc={nc}, cnonce="{cnonce}", response="{response}"'


@pytest.mark.parametrize(
    ("qop", "algorithm"),
    [
        ("auth", "MD5"),
        ("auth", "SHA-256"),
        ("auth-int", "SHA-256"),
        ("auth-int", "MD5"),
        (None, "MD5"),
        ("auth", "SHA-512"),
    ],
)
async def test_digest_auth_verifies_a_real_digest(
    echo: Echo, qop: str | None, algorithm: str
) -> None:
    c = echo()
    path = f"/digest-auth/{qop or 'none'}/alice/s3cr%C3%A9t/{algorithm}?x=1"
    first = await c.get(path)
    assert first.status_code == 401
    challenge = first.headers["www-authenticate"]
    assert challenge.startswith("Digest ") and f"algorithm={algorithm}" in challenge
    uri = path
    good = _digest_header(challenge, "alice", "s3crét", "GET", uri, qop=qop, algorithm=algorithm)
    c.cookies.clear()
    r = await c.get(path, headers={"authorization": good})
    assert r.status_code == 200, r.headers
    assert r.json() == {"authenticated": True, "user": "alice"}
    wrong = _digest_header(challenge, "alice", "nope", "GET", uri, qop=qop, algorithm=algorithm)
    c.cookies.clear()
    assert (await c.get(path, headers={"authorization": wrong})).status_code == 401
    other_user = _digest_header(
        challenge, "mallory", "s3crét", "GET", uri, qop=qop, algorithm=algorithm
    )
    c.cookies.clear()
    assert (await c.get(path, headers={"authorization": other_user})).status_code == 401


async def test_digest_stale_after_and_required_cookie(echo: Echo) -> None:
    c = echo()
    path = "/digest-auth/auth/u/p/MD5/1"
    challenge = (await c.get(path)).headers["www-authenticate"]
    header = _digest_header(challenge, "u", "p", "GET", path, qop="auth", algorithm="MD5")
    r = await c.get(path, headers={"authorization": header})
    assert r.status_code == 200
    assert c.cookies["stale_after"] == "0"
    r = await c.get(path, headers={"authorization": header})
    assert r.status_code == 401
    assert "stale=TRUE" in r.headers["www-authenticate"]
    c.cookies.clear()
    r = await c.get(path + "?require-cookie=1", headers={"authorization": header, "cookie": "x=1"})
    assert r.status_code == 403
    assert r.json() == {"errors": ["missing cookie set on challenge"]}


def test_digest_credentials_parsing() -> None:
    parsed = parse_credentials(
        'Digest username="a\\"b", realm="r", nonce="n", uri="/x?a=1,2", response="f", '
        'qop=auth, nc=00000001, cnonce="c"'
    )
    assert parsed is not None
    assert parsed["username"] == 'a"b'
    assert parsed["uri"] == "/x?a=1,2"
    assert parse_credentials('Digest username="a"') is None
    assert parse_credentials("Basic abc") is None
    assert parse_credentials('Digest username="a", realm') is None


# --- Dynamic data ---------------------------------------------------------------------------


async def test_stream_is_capped_at_100_lines(echo: Echo) -> None:
    c = echo()
    lines = (await c.get("/stream/3")).text.splitlines()
    assert [json.loads(line)["id"] for line in lines] == [0, 1, 2]
    assert len((await c.get("/stream/500")).text.splitlines()) == 100


async def test_bytes_are_random_unless_seeded(echo: Echo) -> None:
    c = echo()
    a, b = (await c.get("/bytes/64")).content, (await c.get("/bytes/64")).content
    assert len(a) == len(b) == 64 and a != b
    s1, s2 = (await c.get("/bytes/64?seed=5")).content, (await c.get("/bytes/64?seed=5")).content
    assert s1 == s2
    r = await c.get("/stream-bytes/1000?seed=5&chunk_size=64")
    assert r.content[:64] == s1
    assert (await c.get("/bytes/0")).content == b""


async def test_seeded_stream_bytes_are_drawn_off_the_event_loop(
    echo: Echo, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Drawing a seeded megabyte takes about a second: on the loop, it stalls every request.
    from comptoir.sites.echo import dynamic

    drawn_on: set[int] = set()
    draw = dynamic._random_bytes

    def spy(rng: Any, n: int) -> bytes:
        drawn_on.add(threading.get_ident())
        return draw(rng, n)

    monkeypatch.setattr(dynamic, "_random_bytes", spy)
    c = echo()
    r = await c.get("/stream-bytes/300000?seed=7&chunk_size=1000")
    assert drawn_on and threading.get_ident() not in drawn_on
    # Drawn in blocks, the bytes are still httpbin's for the seed, whatever the chunk size.
    assert r.content == (await c.get("/bytes/300000?seed=7")).content
    assert r.content == (await c.get("/stream-bytes/300000?seed=7&chunk_size=65537")).content
    assert r.content == (await c.get("/stream-bytes/300000?seed=7&chunk_size=1")).content


async def test_drip_spreads_bytes_over_its_duration(echo: Echo) -> None:
    c = echo()
    start = time.monotonic()
    r = await c.get("/drip?numbytes=5&duration=0.6&code=201")
    assert (r.status_code, r.headers["content-length"], r.content) == (201, "5", b"*****")
    # (When each byte arrives is checked over a real socket: tests/live/test_echo_live.py.)
    assert 0.5 <= time.monotonic() - start < 3
    # Many bytes over a short time are grouped, not one wake-up per byte.
    r = await c.get("/drip?numbytes=100000&duration=0.2")
    assert r.content == b"*" * 100000


async def test_drip_delay_comes_before_the_headers(echo: Echo) -> None:
    start = time.monotonic()
    r = await echo().get("/drip?numbytes=1&duration=0&delay=0.3")
    assert r.content == b"*"
    assert 0.25 <= time.monotonic() - start < 2


async def test_range_requests(echo: Echo) -> None:
    c = echo()
    r = await c.get("/range/26")
    assert (r.status_code, r.text) == (200, "abcdefghijklmnopqrstuvwxyz")
    r = await c.get("/range/52?chunk_size=5", headers={"range": "bytes=24-28"})
    assert (r.status_code, r.text, r.headers["content-range"]) == (206, "yzabc", "bytes 24-28/52")
    r = await c.get("/range/10", headers={"range": "bytes=20-"})
    assert (r.status_code, r.headers["content-range"]) == (416, "bytes */10")
    start = time.monotonic()
    r = await c.get("/range/10?duration=0.3")
    assert r.status_code == 200 and time.monotonic() - start >= 0.25


async def test_sse_events_are_spread_over_the_duration(echo: Echo) -> None:
    c = echo()
    start = time.monotonic()
    r = await c.get("/sse?count=3&duration=0.4")
    elapsed = time.monotonic() - start
    assert r.headers["content-type"].startswith("text/event-stream")
    events = [e for e in r.text.split("\n\n") if e]
    assert len(events) == 3
    for i, event in enumerate(events):
        name, data = event.split("\n")
        assert name == "event: ping"
        doc = json.loads(data.removeprefix("data: "))
        assert doc["id"] == i and isinstance(doc["timestamp"], int)
    assert 0.35 <= elapsed < 3


async def test_uuid_hostname_and_dump(echo: Echo) -> None:
    c = echo()
    assert re.fullmatch(r"[0-9a-f-]{36}", (await c.get("/uuid")).json()["uuid"])
    assert (await c.get("/hostname")).json() == {"hostname": "comptoir"}
    real = await echo(real_hostname=True).get("/hostname")
    assert real.json() == {"hostname": socket.gethostname()}
    r = await c.patch("/dump/request?a=1", content=b"body\x00bytes", headers={"x-test": "yes"})
    head, _, body = r.content.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "PATCH /dump/request?a=1 HTTP/1.1"
    assert "x-test: yes" in lines
    assert body == b"body\x00bytes"


async def test_base64_and_links(echo: Echo) -> None:
    c = echo()
    value = base64.urlsafe_b64encode("héllo?>".encode()).decode().rstrip("=")
    r = await c.get(f"/base64/{value}")
    assert r.text == "héllo?>"
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    r = await c.get("/links/1000/0")
    assert r.text.count("<a ") == 199
    r = await c.get("/links/4")
    assert r.headers["location"] == "/links/4/0"


# --- Caching and encodings ------------------------------------------------------------------


async def test_cache_and_etag(echo: Echo) -> None:
    c = echo()
    r = await c.get("/cache")
    assert r.status_code == 200 and r.headers["etag"] and r.headers["last-modified"]
    assert (await c.get("/cache", headers={"if-none-match": r.headers["etag"]})).status_code == 304
    r = await c.get("/etag/v1", headers={"if-none-match": 'W/"v0", "v1"'})
    assert (r.status_code, r.headers["etag"]) == (304, "v1")
    assert (await c.get("/etag/v1", headers={"if-match": '"v2"'})).status_code == 412
    assert (await c.get("/etag/v1", headers={"if-match": "*"})).status_code == 200
    assert (await c.get("/cache/30")).headers["cache-control"] == "public, max-age=30"


@pytest.mark.parametrize(
    ("path", "encoding", "decode", "flag"),
    [
        ("/gzip", "gzip", gzip.decompress, "gzipped"),
        ("/deflate", "deflate", zlib.decompress, "deflated"),
        ("/brotli", "br", brotli.decompress, "brotli"),
    ],
)
async def test_compressed_answers_decode(
    echo: Echo, path: str, encoding: str, decode: Callable[[bytes], bytes], flag: str
) -> None:
    async with echo().stream("GET", path, headers={"accept-encoding": "identity"}) as r:
        raw = b"".join([chunk async for chunk in r.aiter_raw()])
    assert r.headers["content-encoding"] == encoding
    doc = json.loads(decode(raw))
    assert doc[flag] is True and doc["method"] == "GET"


@pytest.mark.parametrize(
    ("path", "media_type", "magic"),
    [
        ("/image/png", "image/png", b"\x89PNG\r\n\x1a\n"),
        ("/image/jpeg", "image/jpeg", b"\xff\xd8\xff"),
        ("/image/webp", "image/webp", b"RIFF"),
        ("/image/svg", "image/svg+xml", b"<svg"),
    ],
)
async def test_images(echo: Echo, path: str, media_type: str, magic: bytes) -> None:
    r = await echo().get(path)
    assert r.headers["content-type"] == media_type
    assert r.content.startswith(magic)
    assert len(r.content) < 10_000


async def test_formats(echo: Echo) -> None:
    c = echo()
    assert (await c.get("/json")).json()["slideshow"]["title"] == "Sample Slide Show"
    assert "<h1>Herman Melville - Moby-Dick</h1>" in (await c.get("/html")).text
    r = await c.get("/xml")
    assert r.headers["content-type"] == "application/xml" and "<slideshow" in r.text
    r = await c.get("/encoding/utf8")
    assert r.headers["content-type"] == "text/html; charset=utf-8" and "你好" in r.text
    assert "Disallow: /deny" in (await c.get("/robots.txt")).text
    assert "SHOULDN'T" in (await c.get("/deny")).text


# --- Headers, CORS, methods -----------------------------------------------------------------


async def test_cors_allows_any_origin_without_credentials(echo: Echo) -> None:
    r = await echo().get("/get", headers={"origin": "https://evil.example"})
    assert r.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in r.headers
    r = await echo().options("/nowhere")
    assert r.status_code == 404


async def test_non_ascii_headers_are_shown_as_a_wsgi_server_shows_them(echo: Echo) -> None:
    r = await echo().get("/headers", headers={"x-name": "café".encode()})
    assert r.json()["headers"]["X-Name"] == "café".encode().decode("latin-1")
    r = await echo().get("/response-headers?X-Name=%C3%A9t%C3%A9")
    assert dict(r.headers.raw)[b"x-name"] == "été".encode()


async def test_head_is_answered_like_get(echo: Echo) -> None:
    r = await echo().head("/get")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"


# --- Index page, options, CLI ---------------------------------------------------------------


async def test_index_lists_every_endpoint_with_a_curl_line(echo: Echo) -> None:
    page = (await echo().get("/", headers={"host": "echo.test:8080"})).text
    for path in (
        "/get",
        "/post",
        "/put",
        "/patch",
        "/delete",
        "/anything",
        "/headers",
        "/ip",
        "/user-agent",
        "/uuid",
        "/status/",
        "/delay/",
        "/cookies/set",
        "/cookies/delete",
        "/basic-auth/",
        "/hidden-basic-auth/",
        "/bearer",
        "/digest-auth/",
        "/redirect/",
        "/relative-redirect/",
        "/absolute-redirect/",
        "/redirect-to",
        "/response-headers",
        "/stream/",
        "/stream-bytes/",
        "/bytes/",
        "/drip",
        "/range/",
        "/cache",
        "/etag/",
        "/gzip",
        "/deflate",
        "/brotli",
        "/base64/",
        "/json",
        "/html",
        "/xml",
        "/encoding/utf8",
        "/links/",
        "/image",
        "/forms/post",
        "/robots.txt",
        "/deny",
        "/websocket/echo",
        "/sse",
        "/dump/request",
        "/hostname",
    ):
        assert path in page, path
    assert "curl -d &#39;name=value&#39; http://echo.test:8080/post" in page
    assert "websocat ws://echo.test:8080/websocket/echo" in page
    # No inline script: the page's JS is a file (a strict CSP forbids inline code).
    assert re.findall(r"<script(?![^>]*\bsrc=)", page) == []


async def test_index_quotes_a_hostile_host(echo: Echo) -> None:
    page = (await echo().get("/", headers={"host": "x'; rm -rf ~ #<b>"})).text
    assert "<b>" not in page
    assert "rm -rf" in page and "&#39;" in page


async def test_index_shows_fixed_tcp_and_udp_ports(echo: Echo) -> None:
    page = (await echo(tcp=7007, udp=7008).get("/", headers={"host": "h.test:80"})).text
    assert "nc h.test 7007" in page and "nc -u h.test 7008" in page


def test_options_from_sites_toml_mapping() -> None:
    options = options_from_mapping(
        EchoOptions,
        {"max-body": "2M", "max-duration": "1m30s", "tcp": 0, "udp": 7, "idle-timeout": 5},
        "sites.toml [[site]] 1",
    )
    assert options.max_body == 2 * 1024 * 1024
    assert options.max_duration == 90
    assert (options.tcp, options.udp, options.idle_timeout) == (0, 7, 5)


def test_cli_echo_help_lists_the_options() -> None:
    result = CliRunner().invoke(cli, ["echo", "--help"])
    assert result.exit_code == 0
    for flag in (
        "--max-body",
        "--max-duration",
        "--max-bytes",
        "--tcp",
        "--udp",
        "--idle-timeout",
        "--max-connections",
        "--port",
    ):
        assert flag in result.output


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(), inner, max_size=4)
        | st.dictionaries(st.integers(), inner, min_size=1, max_size=2)
    ),
    max_leaves=20,
)


@given(_json_values)
def test_pretty_json_writes_what_json_dumps_writes(value: Any) -> None:
    assert pretty_json(value) == json.dumps(value, indent=2, sort_keys=True)


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/status/200:1e308,500:1e308", None, 400),  # weights finite, their sum not
        ("POST", "/post", b"[" * 900 + b"]" * 900, 400),  # parses, too deep to write back
        ("GET", "/bytes/" + "9" * 5000, None, 404),  # no number that long
        ("GET", "/links/" + "9" * 5000 + "/0", None, 404),
        ("GET", "/redirect/" + "9" * 19, None, 404),
    ],
)
async def test_client_mistakes_found_by_review_are_4xx(
    echo: Echo, method: str, path: str, body: bytes | None, status: int
) -> None:
    c = echo()
    headers = {"content-type": "application/json"}
    r = await c.request(method, path, content=body, headers=headers)
    assert r.status_code == status, r.text


async def test_digest_auth_under_a_non_ascii_mount_answers(
    aclient: Callable[[ASGIApp], httpx.AsyncClient],
) -> None:
    site = SiteConfig("echo", EchoOptions(), path="/文档", name="echo")
    c = aclient(build_app(Config(server=ServerOptions(quiet=True), sites=(site,))))
    url = "/文档/digest-auth/auth/user/passwd"
    r = await c.get(url, params={"require-cookie": "1"})
    assert r.status_code == 401
    assert "Path=/" in r.headers["set-cookie"]
    # Credentials without the cookie the challenge set: 403, and the cookie set again.
    creds = 'Digest username="user", realm="x", nonce="n", uri="/", response="r", qop=auth'
    creds += ', nc=00000001, cnonce="c"'
    r = await c.get(
        url, params={"require-cookie": "1"}, headers={"authorization": creds, "cookie": "a=b"}
    )
    assert r.status_code == 403
    assert "fake=fake_value" in r.headers["set-cookie"]


async def test_digest_auth_under_a_non_ascii_mount_verifies_the_uri_as_sent(
    aclient: Callable[[ASGIApp], httpx.AsyncClient],
) -> None:
    # The client digests the request-target it sends (percent-encoded), mount included.
    site = SiteConfig("echo", EchoOptions(), path="/文档", name="echo")
    c = aclient(build_app(Config(server=ServerOptions(quiet=True), sites=(site,))))
    uri = "/%E6%96%87%E6%A1%A3/digest-auth/auth/u/p/MD5"
    challenge = (await c.get(uri)).headers["www-authenticate"]
    good = _digest_header(challenge, "u", "p", "GET", uri, qop="auth", algorithm="MD5")
    c.cookies.clear()
    r = await c.get(uri, headers={"authorization": good})
    assert r.status_code == 200, r.text


async def test_tiny_chunks_of_a_large_body_are_capped_in_number() -> None:
    app = build_app(make_config("echo", EchoOptions()))
    for path, query in (
        (b"/range/1000000", b"chunk_size=1"),
        (b"/stream-bytes/1000000", b"chunk_size=1"),
    ):
        sizes: list[int] = []

        async def send(message: Message, sizes: list[int] = sizes) -> None:
            if message["type"] == "http.response.body" and message.get("body"):
                sizes.append(len(message["body"]))

        requested: list[bool] = []

        async def receive(requested: list[bool] = requested) -> Message:
            if requested:
                await asyncio.Event().wait()  # the client stays: no disconnect
            requested.append(True)
            return {"type": "http.request", "body": b"", "more_body": False}

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path.decode(),
            "raw_path": path,
            "query_string": query,
            "root_path": "",
            "headers": [(b"host", b"t")],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
        }
        await app(scope, receive, send)
        assert sum(sizes) == 1_000_000
        # Not a million messages of one byte: at most 10,000 of 100 bytes or more.
        assert len(sizes) <= 10_000


@pytest.mark.parametrize(
    ("mount", "target"),
    [
        ("/日本", b"/%E6%97%A5%E6%9C%AC/dump/request"),
        ("/日本", b"/%e6%97%a5%e6%9c%ac/dump/request?q=%E6%97%A5"),
        ("/café", b"/caf%C3%A9/dump/request"),
        ("/café", b"/caf%C3%A9/dump/%72equest?a=b&c"),
        ("/echo", b"/%65cho/dump/request"),
        ("/tools/echo", b"/tools/%65ch%6F/dump/request?x=%41"),
    ],
)
async def test_dump_request_under_any_mount_shows_the_request_line_as_sent(
    mount: str, target: bytes
) -> None:
    # The mount once came decoded (and re-spelled) before the raw path: a 500 under /日本 (the
    # head encoded as latin-1), a garbled line under /café, /echo for a client's /%65cho.
    site = SiteConfig("echo", EchoOptions(), path=mount, name="echo")
    app = build_app(Config(server=ServerOptions(quiet=True), sites=(site,)))
    raw, _, query = target.partition(b"?")
    sent: list[Message] = []
    requested = False

    async def receive() -> Message:
        nonlocal requested
        if requested:
            await asyncio.Event().wait()
        requested = True
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": urllib.parse.unquote(raw.decode()),
        "raw_path": raw,
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"t")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    await app(scope, receive, send)
    assert sent[0]["status"] == 200
    body = b"".join(m.get("body", b"") for m in sent[1:])
    assert body.split(b"\r\n")[0] == b"GET " + target + b" HTTP/1.1"


@pytest.mark.parametrize(
    ("mount", "url"),
    [("/日本", "/日本/dump/request"), ("/café", "/café/dump/request?é=1")],
)
async def test_dump_request_under_a_non_ascii_mount_by_a_client(
    aclient: Callable[[ASGIApp], httpx.AsyncClient], mount: str, url: str
) -> None:
    site = SiteConfig("echo", EchoOptions(), path=mount, name="echo")
    c = aclient(build_app(Config(server=ServerOptions(quiet=True), sites=(site,))))
    r = await c.get(url)
    assert r.status_code == 200
    sent = httpx.URL("http://testserver" + url).raw_path
    assert r.content.split(b"\r\n")[0] == b"GET " + sent + b" HTTP/1.1"
    assert r.content.isascii()
