"""sites/toolkit.py: the pieces static, share and receive answer with, alike for each of them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from comptoir.errors import HTTPError
from comptoir.http.client import client_label
from comptoir.sites.toolkit import (
    header,
    not_allowed,
    send_allowed,
    send_redirect,
    serve_link,
    wants_html,
)
from comptoir.types import Receive, Scope, Send
from tests.conftest import asgi_client

TOKEN = "a-token-of-some-length"


def test_header_lookup() -> None:
    headers = [(b"Host", b"example.org"), (b"accept", b"text/html"), (b"accept", b"*/*")]
    assert header(headers, b"host") == "example.org"
    assert header(headers, b"accept") == "text/html"  # the first one
    assert header(headers, b"range") is None
    assert header([(b"x", b"caf\xe9")], b"x") == "café"  # latin-1, never an error
    assert wants_html({"headers": headers})
    assert not wants_html({"headers": [(b"accept", b"application/json")]})
    assert not wants_html({"headers": []})


def test_client_label() -> None:
    assert client_label({"client": ("10.0.0.1", 5)}) == "10.0.0.1"
    assert client_label({"client": ("::1", 5)}) == "[::1]"
    assert client_label({"client": None}) == "-"
    assert client_label({}) == "-"


async def _link_site(scope: Scope, receive: Receive, send: Send) -> None:
    async def route(scope: Scope, receive: Receive, send: Send, rest: str) -> None:
        if rest == "":
            await send_redirect(scope, send, f"/{TOKEN}/", keep_query=True)
        elif rest == "/static":
            await send_redirect(scope, send, "/文档/", private=False)
        elif scope["method"] == "OPTIONS":
            await send_allowed(send, "GET, OPTIONS")
        elif rest == "/teapot":
            raise HTTPError(418, "Short and stout", {"X-Why": "tea"})
        else:
            raise not_allowed("GET, OPTIONS")

    await serve_link(scope, receive, send, TOKEN, route)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(_link_site) as c:
        yield c


LINK_HEADERS = {"referrer-policy": "no-referrer", "x-robots-tag": "noindex"}


def has_link_headers(r: httpx.Response) -> bool:
    return all(r.headers.get(k) == v for k, v in LINK_HEADERS.items())


async def test_redirects_keep_the_query_and_head_has_no_body(client: httpx.AsyncClient) -> None:
    r = await client.get(f"/{TOKEN}?archive")
    assert r.status_code == 301 and r.headers["location"] == f"/{TOKEN}/?archive"
    assert r.content == b"Moved Permanently\n" and r.headers["content-length"] == "18"
    assert r.headers["cache-control"] == "no-store" and has_link_headers(r)
    head = await client.head(f"/{TOKEN}")
    assert head.status_code == 301 and head.content == b""
    assert head.headers["content-length"] == "18"
    public = await client.get(f"/{TOKEN}/static")
    assert public.headers["location"] == "/%E6%96%87%E6%A1%A3/"
    assert "cache-control" not in public.headers


async def test_options_errors_and_wrong_tokens(client: httpx.AsyncClient) -> None:
    r = await client.options(f"/{TOKEN}/x")
    assert (r.status_code, r.headers["allow"], r.content) == (204, "GET, OPTIONS", b"")
    assert "content-length" not in r.headers and has_link_headers(r)
    r = await client.delete(f"/{TOKEN}/x")
    assert (r.status_code, r.headers["allow"]) == (405, "GET, OPTIONS") and has_link_headers(r)
    r = await client.get(f"/{TOKEN}/teapot", headers={"accept": "application/json"})
    assert r.status_code == 418 and r.json() == {"error": "Short and stout", "status": 418}
    assert r.headers["x-why"] == "tea"
    for path in ("/wrong-token-of-some-length/", "/", f"/{TOKEN}x/"):
        r = await client.get(path)
        assert (r.status_code, r.text) == (404, "Not found\n") and has_link_headers(r)
