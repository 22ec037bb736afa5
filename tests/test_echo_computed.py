"""Echo's computed answers (/get, /headers, /ip, /user-agent) from the outer fast path.

The site answers these paths with `computed.py`'s functions, before Starlette's router, and the
fast path calls the same functions with the scope the worker received, without the host router,
the security layers or the site in between. Whatever request comes, the client must see what the
endpoints of `endpoints.py` answer through the whole stack: hypothesis sends the same requests —
odd headers, forwarding headers, queries, escaped paths, a mount — to an app with the fast path
(primed for that host and path) and to one built without computed answers at all, and compares
status, headers and body byte for byte.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from comptoir.app import build_app
from comptoir.config import Config, ServerOptions, SiteConfig
from comptoir.sites.echo import EchoOptions, computed
from comptoir.sites.static import StaticOptions
from comptoir.types import ASGIApp, Message


def _config(tmp: Path) -> Config:
    (tmp / "index.html").write_text("home")
    sites = (
        SiteConfig(kind="echo", options=EchoOptions(), name="echo", hosts=("echo.test",)),
        SiteConfig(kind="static", options=StaticOptions(root=tmp), name="www", hosts=("www.test",)),
        SiteConfig(
            kind="echo", options=EchoOptions(), name="tools", hosts=("www.test",), path="/tools"
        ),
    )
    return Config(server=ServerOptions(), sites=sites)


def _scope(
    raw_path: bytes,
    headers: list[tuple[bytes, bytes]],
    *,
    query: bytes = b"",
    method: str = "GET",
    scheme: str = "http",
    client: tuple[str, int] | None = ("127.0.0.1", 50000),
) -> dict[str, Any]:
    from urllib.parse import unquote_to_bytes

    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": scheme,
        "path": unquote_to_bytes(raw_path).decode("utf-8", "surrogateescape"),
        "raw_path": raw_path,
        "query_string": query,
        "root_path": "",
        "headers": headers,
        "client": client,
        "server": ("127.0.0.1", 8000),
        "extensions": {},
    }


async def _ask(app: ASGIApp, scope: dict[str, Any], body: bytes = b"") -> tuple[int, list, bytes]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(dict(scope, headers=list(scope["headers"])), receive, send)
    start = sent[0]
    data = b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], [tuple(h) for h in start["headers"]], data


class Apps:
    def __init__(self, tmp: Path) -> None:
        config = _config(tmp)
        self.fast = build_app(config, fast_path=True, log_write=lambda line: None)
        # The reference: the echo site as it is without computed answers (its Starlette routes).
        with patch.dict(computed.DESCRIBE, clear=True):
            self.full = build_app(config, fast_path=False, log_write=lambda line: None)

    @property
    def computed(self) -> dict[tuple[bytes, bytes], Any]:
        return self.fast.fast_path.computed  # type: ignore[attr-defined,no-any-return]

    async def prime(self, host: bytes, raw_path: bytes) -> None:
        await _ask(self.fast, _scope(raw_path, [(b"host", host)]))

    async def same(self, scope: dict[str, Any]) -> tuple[int, list, bytes]:
        fast = await _ask(self.fast, scope)
        full = await _ask(self.full, scope)
        assert fast == full
        return fast


@pytest.fixture
def apps(tmp_path: Path) -> Apps:
    return Apps(tmp_path)


async def test_a_get_is_kept_and_then_answered_without_the_stack(apps: Apps) -> None:
    await apps.prime(b"echo.test", b"/get")
    assert set(apps.computed) == {(b"echo.test", b"/get")}
    # Nothing below the worker's outer app answers now: the fast path does, for any query and
    # headers, with the site's headers and the security layer's.
    apps.fast.app = None  # type: ignore[attr-defined]
    scope = _scope(b"/get", [(b"host", b"echo.test"), (b"x-a", b"1")], query=b"q=%C3%A9&q=2")
    status, headers, body = await _ask(apps.fast, scope)
    assert status == 200
    assert (b"access-control-allow-origin", b"*") in headers
    assert (b"x-content-type-options", b"nosniff") in headers
    assert (b"content-length", str(len(body)).encode()) in headers
    assert body == (
        b'{\n  "args": {\n    "q": [\n      "\\u00e9",\n      "2"\n    ]\n  },\n'
        b'  "headers": {\n    "Host": "echo.test",\n    "X-A": "1"\n  },\n'
        b'  "origin": "127.0.0.1",\n  "url": "http://echo.test/get?q=\\u00e9&q=2"\n}\n'
    )


async def test_the_mounted_site_is_kept_under_its_full_path(apps: Apps) -> None:
    await apps.prime(b"www.test", b"/tools/get")
    assert (b"www.test", b"/tools/get") in apps.computed
    scope = _scope(b"/tools/get", [(b"host", b"www.test")], query=b"a=b")
    status, _, body = await apps.same(scope)
    assert status == 200
    assert b'"url": "http://www.test/tools/get?a=b"' in body


async def test_what_the_stack_must_decide_still_goes_through_it(apps: Apps) -> None:
    await apps.prime(b"echo.test", b"/get")
    host = (b"host", b"echo.test")
    # A declared body larger than the site's limit: 413 from the site, not a computed 200.
    big = str(EchoOptions().max_body + 1).encode()
    status, _, _ = await apps.same(_scope(b"/get", [host, (b"content-length", big)]))
    assert status == 413
    # HEAD, other methods, two Host headers: the full stack's answers.
    assert (await apps.same(_scope(b"/get", [host], method="HEAD")))[0] == 200
    assert (await apps.same(_scope(b"/get", [host], method="POST")))[0] == 405
    assert (await apps.same(_scope(b"/get", [host, host])))[0] == 400
    # Another host name is another route: not the kept one.
    assert (await apps.same(_scope(b"/get", [(b"host", b"www.test")])))[0] == 404


async def test_no_computed_answer_with_a_password(tmp_path: Path) -> None:
    from comptoir.security.passwords import hash_password

    config = _config(tmp_path)
    server = ServerOptions(password_hash=hash_password("secret"))
    app = build_app(Config(server=server, sites=config.sites), log_write=lambda line: None)
    assert app.fast_path is None  # type: ignore[attr-defined]
    status, _, _ = await _ask(app, _scope(b"/get", [(b"host", b"echo.test")]))
    assert status in (302, 303, 401)


_TOKENS = st.sampled_from(
    [
        "Host",
        "User-Agent",
        "X-Forwarded-For",
        "X-Forwarded-Proto",
        "X-Forwarded-Protocol",
        "X-Forwarded-Ssl",
        "X-Real-Ip",
        "Via",
        "Cookie",
        "Accept",
        "x_under_score",
        "Content-Length",
        "Transfer-Encoding",
        "If-None-Match",
        "Range",
    ]
)
_VALUES = st.one_of(
    st.sampled_from(["on", "https", "1.2.3.4, 5.6.7.8", "0", "chunked", "a=b; c=d", "bytes=0-1"]),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=12),
)
_HOSTS = st.sampled_from(
    [b"echo.test", b"echo.test:80", b"echo.test:443", b"ECHO.test:8000", b"www.test"]
)
_PATHS = st.sampled_from(
    [
        *(b"/get", b"/headers", b"/ip", b"/user-agent", b"/g%65t", b"//get", b"/get/", b"/%E9"),
        *(b"/tools/get", b"/tools/headers", b"/tools/user-agent", b"/to%6Fls/get", b"/tools//ip"),
    ]
)
_QUERIES = st.one_of(
    st.sampled_from([b"", b"show_env=1", b"a=1&a=2&b", b"x=%FF%C3%A9+y", b"%zz=&=", b"q=a%2Fb"]),
    st.binary(max_size=16).map(lambda b: b.replace(b"#", b"")),
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    host=_HOSTS,
    path=_PATHS,
    query=_QUERIES,
    headers=st.lists(st.tuples(_TOKENS, _VALUES), max_size=5),
    scheme=st.sampled_from(["http", "https"]),
    client=st.sampled_from([("127.0.0.1", 1), ("::1", 2), None]),
)
async def test_computed_answers_are_the_stacks_byte_for_byte(
    tmp_path: Path,
    host: bytes,
    path: bytes,
    query: bytes,
    headers: list[tuple[str, str]],
    scheme: str,
    client: tuple[str, int] | None,
) -> None:
    apps = _APPS.setdefault("apps", Apps(tmp_path))
    await apps.prime(host, path)
    raw = [(b"host", host)] + [
        (k.lower().encode(), v.encode("latin-1")) for k, v in headers if k != "Host"
    ]
    await apps.same(_scope(path, raw, query=query, scheme=scheme, client=client))


# One pair of apps for every example (building them is the slow part); the test never writes.
_APPS: dict[str, Apps] = {}


PLAIN = [
    (b"echo.test", "http", []),
    (b"echo.test:80", "http", []),
    (b"echo.test:443", "http", []),
    (b"echo.test:443", "https", []),
    (b"echo.test:80", "https", []),
    (b"ECHO.test:8000", "http", [(b"user-agent", b"curl/8.0"), (b"accept", b"*/*")]),
    (b"echo.test", "http", [(b"x_under", b"1"), (b"x-quote", b'"\\\x7f\xe9')]),
    (b"echo.test", "http", [(b"accept", b"a"), (b"accept", b"b")]),  # repeated: folded
    (b"echo.test", "http", [(b"cookie", b"a=1; comptoir_session_x=s")]),
    (b"echo.test", "https", [(b"x-forwarded-proto", b"http")]),
]


@pytest.mark.parametrize(("host", "scheme", "headers"), PLAIN)
@pytest.mark.parametrize("path", [b"/get", b"//get", b"/g%65t"])
async def test_the_usual_get_is_the_stacks_byte_for_byte(
    apps: Apps, host: bytes, scheme: str, headers: list[tuple[bytes, bytes]], path: bytes
) -> None:
    # The plain /get (computed.plain_get: one pass, no query) is what load tests and most clients
    # send: every spelling of it the random test above rarely draws.
    await apps.prime(host, path)
    await apps.same(_scope(path, [(b"host", host), *headers], scheme=scheme))
