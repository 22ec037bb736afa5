"""sites/toolkit.py: the pieces static, share and receive answer with, alike for each of them."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from comptoir.app import build_app
from comptoir.config import Config, ServerOptions, SiteConfig
from comptoir.errors import HTTPError
from comptoir.http.client import client_label
from comptoir.sites.receive import ReceiveOptions
from comptoir.sites.share import ShareOptions
from comptoir.sites.static import StaticOptions
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


# --- the 404 page (issue 10, item 20) ---------------------------------------------------------

AS_HTML = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
HOSTILE = "/%3Cscript%3Ealert(1)%3C%2Fscript%3E%20%E2%80%AEtxt.exe"


def _one_site(kind: str, options: Any, mount: str) -> httpx.AsyncClient:
    site = SiteConfig(kind, options, name=kind, path=mount or "/")
    return asgi_client(build_app(Config(ServerOptions(quiet=True), (site,))))


def _options(kind: str, folder: Path) -> Any:
    (folder / "a.txt").write_text("a")
    if kind == "static":
        return StaticOptions(root=folder, listing=False)
    if kind == "share":
        return ShareOptions(paths=(folder / "a.txt",), token=TOKEN)
    return ReceiveOptions(root=folder, token=TOKEN)


def _stylesheet(page: str) -> list[str]:
    return re.findall(r'<link rel="stylesheet" href="([^"]*)"', page)


def _links(page: str) -> list[str]:
    return re.findall(r'<a href="([^"]*)"', page)


@pytest.mark.parametrize("mount", ["", "/mnt"])
@pytest.mark.parametrize("kind", ["static", "share", "receive"])
async def test_a_browser_gets_a_404_page_with_a_way_back(
    kind: str, mount: str, tmp_path: Path
) -> None:
    # The site's front page: the folder's root, or the page of the link (its token known).
    home = f"{mount}/" if kind == "static" else f"{mount}/{TOKEN}/"
    missing = [f"{mount}/nope.txt", f"{mount}/sub/"] if kind == "static" else []
    missing.append(f"{home}f/nope.txt" if kind == "share" else f"{home}nope.txt")
    async with _one_site(kind, _options(kind, tmp_path), mount) as c:
        for path in missing:
            r = await c.get(path, headers=AS_HTML)
            assert r.status_code == 404, path
            assert r.headers["content-type"] == "text/html; charset=utf-8"
            assert r.headers["cache-control"] == "no-store"
            # A page of comptoir's: its stylesheet, its theme switch, its strict CSP.
            assert _stylesheet(r.text) == [f"{mount}/.comptoir/comptoir.css"]
            assert "content-security-policy" in r.headers
            assert "<title>Not found</title>" in r.text
            assert home in _links(r.text), r.text
            assert "<script" not in r.text
            head = await c.head(path, headers=AS_HTML)
            assert (head.status_code, head.content) == (404, b"")
            assert head.headers["content-length"] == r.headers["content-length"]
            # Scripts and curl keep the short answers.
            r = await c.get(path, headers={"accept": "application/json"})
            assert r.status_code == 404
            assert r.json() == {"error": "Not found", "status": 404}
            r = await c.get(path)
            assert (r.status_code, r.text) == (404, "Not found\n")
            assert r.headers["content-type"] == "text/plain; charset=utf-8"


@pytest.mark.parametrize("kind", ["static", "share", "receive"])
async def test_the_404_page_shows_the_path_escaped(kind: str, tmp_path: Path) -> None:
    base = "" if kind == "static" else f"/{TOKEN}"
    async with _one_site(kind, _options(kind, tmp_path), "/mnt") as c:
        r = await c.get(f"/mnt{base}{HOSTILE}", headers=AS_HTML)
    assert r.status_code == 404
    assert "<script>" not in r.text and "</script>" not in r.text
    # Decoded for reading, escaped, a bidi override shown as a code point rather than obeyed.
    shown = f"/mnt{base}/&lt;script&gt;alert(1)&lt;/script&gt; [U+202E]txt.exe"
    assert f'<code class="path">{shown}</code>' in r.text


@pytest.mark.parametrize("kind", ["share", "receive"])
async def test_a_wrong_token_gets_a_404_page_without_the_link(kind: str, tmp_path: Path) -> None:
    async with _one_site(kind, _options(kind, tmp_path), "") as c:
        wrong = await c.get(f"/{TOKEN[:-1]}x/", headers=AS_HTML)
        root = await c.get("/", headers=AS_HTML)
        text = await c.get(f"/{TOKEN[:-1]}x/")
    for r in (wrong, root):
        assert r.status_code == 404
        assert _stylesheet(r.text) == ["/.comptoir/comptoir.css"]
        assert has_link_headers(r)
        # Nothing leads into the link: its token is not known to be right.
        assert TOKEN not in r.text
        assert [u for u in _links(r.text) if "theme?" not in u] == [
            "https://pypi.org/project/comptoir/"
        ]
        assert "ask them for a new one" in r.text
    assert (text.status_code, text.text) == (404, "Not found\n")


async def test_a_static_sites_own_404_html_still_wins(tmp_path: Path) -> None:
    (tmp_path / "404.html").write_text("<h1>lost</h1>")
    async with _one_site("static", StaticOptions(root=tmp_path), "") as c:
        r = await c.get("/nope", headers=AS_HTML)
    assert (r.status_code, r.text) == (404, "<h1>lost</h1>")
