"""Passwords, sessions, CSRF, the login limit, the theme switch and security headers, in-process."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from comptoir.app import build_app
from comptoir.config import ServerOptions
from comptoir.errors import ConfigError
from comptoir.security import secure_site
from comptoir.security.auth import (
    LOGIN_PATH,
    LOGOUT_PATH,
    AuthSettings,
    PasswordGate,
    peek_form_token,
)
from comptoir.security.headers import CSP, SecurityHeaders, hsts_applies
from comptoir.security.passwords import (
    PASSWORD_ENV,
    check_hash,
    hash_password,
    resolve_password,
    verify_password,
)
from comptoir.security.sessions import client_key
from comptoir.sites.echo import EchoOptions
from comptoir.sites.receive import ReceiveOptions
from comptoir.sites.share import ShareOptions
from comptoir.sites.static import StaticOptions
from comptoir.state import StateStore
from comptoir.types import Message, Receive, Scope, Send
from comptoir.web import render
from comptoir.web.assets import Assets
from comptoir.web.theme import ThemeSwitch, safe_next
from tests.conftest import asgi_client, make_config

# Cheap scrypt parameters: the tests check behaviour, not cost.
HASH = hash_password("secret", n=16, r=1, p=1)
TOKEN = "Cap4bIlItYtOkEn-0123456"
SESSION_ATTRS = "Path=/; HttpOnly; SameSite=Lax"


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Site:
    """A tiny site: `/<TOKEN>/…` exists (capability), the rest 404s; records what it saw."""

    def __init__(self) -> None:
        self.scopes: list[Scope] = []
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": 1000})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.scopes.append(scope)
        self.bodies.append(body)
        found = scope["path"].startswith(f"/{TOKEN}/")
        page = (
            render(
                "listing.html",
                crumbs=[],
                display_path="/",
                parent_url=None,
                entries=[],
                dirs=0,
                files=0,
            )
            if scope["path"].endswith("/page")
            else "ok"
        )
        status = 200 if found or scope["path"] in ("/", "/page") else 404
        ctype = b"text/html; charset=utf-8" if page != "ok" else b"text/plain"
        await send(
            {"type": "http.response.start", "status": status, "headers": [(b"content-type", ctype)]}
        )
        await send({"type": "http.response.body", "body": page.encode()})


def stack(
    site: Any,
    *,
    clock: Callable[[], float] | None = None,
    secure: bool = False,
    hsts: bool = False,
    **settings: Any,
) -> Any:
    """The security middlewares around `site`, as secure_site builds them, with a clock."""
    store = StateStore(clock=clock) if clock else StateStore()
    gate = PasswordGate(
        site,
        AuthSettings(password_hash=HASH, secure=secure, **settings),
        store,
        **({"clock": clock} if clock else {}),
    )
    front = ThemeSwitch(gate, secure=secure, assets=Assets(), passed=(LOGIN_PATH, LOGOUT_PATH))
    return SecurityHeaders(front, hsts=hsts)


def client(app: Any, base_url: str = "http://testserver") -> httpx.AsyncClient:
    """An in-process client."""
    return asgi_client(app, base_url)


def form_token(html: str) -> str:
    """The csrf_token of the first form of a page."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


async def login(
    c: httpx.AsyncClient, password: str = "secret", next_url: str = "/", **headers: str
) -> httpx.Response:
    """Fill in the login form as a browser would."""
    page = await c.get("/.comptoir/login", params={"next": next_url})
    assert page.status_code == 200
    return await c.post(
        "/.comptoir/login",
        data={"csrf_token": form_token(page.text), "next": next_url, "password": password},
        headers=headers,
    )


# --- password hashes -------------------------------------------------------------------------


def test_hash_and_verify() -> None:
    stored = hash_password("pässword", n=16, r=1, p=1)
    assert stored.startswith("scrypt$16$1$1$")
    assert verify_password("pässword", stored)
    assert not verify_password("password", stored)
    # A random salt: the same password never gives the same hash.
    assert hash_password("x", n=16, r=1, p=1) != hash_password("x", n=16, r=1, p=1)
    default = hash_password("x")
    assert default.startswith("scrypt$32768$8$1$")
    for bad in ("", "md5$x", "scrypt$3$8$1$aa$bb", "scrypt$16$0$1$aa$bb"):
        with pytest.raises(ValueError):
            check_hash(bad)


def test_resolve_password_from_each_source(tmp_path: Path) -> None:
    env = {PASSWORD_ENV: "from-env", "OTHER": "1"}
    resolved = resolve_password(ServerOptions(), env)
    assert resolved.password_hash and verify_password("from-env", resolved.password_hash)
    # The plain text does not stay in the environment the workers inherit.
    assert env == {"OTHER": "1"}

    file = tmp_path / "pw"
    file.write_text("from-file\nignored\n")
    resolved = resolve_password(ServerOptions(password_file=file), {})
    assert resolved.password_file is None
    assert resolved.password_hash and verify_password("from-file", resolved.password_hash)

    resolved = resolve_password(ServerOptions(password=True), {}, prompt=lambda: "typed")
    assert resolved.password is False
    assert resolved.password_hash and verify_password("typed", resolved.password_hash)

    # --password with the variable set: the variable answers, nothing is asked.
    def no_prompt() -> str:
        raise AssertionError("asked")

    env = {PASSWORD_ENV: "scripted"}
    resolved = resolve_password(ServerOptions(password=True), env, prompt=no_prompt)
    assert resolved.password_hash and verify_password("scripted", resolved.password_hash)
    assert env == {}

    assert resolve_password(ServerOptions(), {}) == ServerOptions()
    given = ServerOptions(password_hash=HASH)
    assert resolve_password(given, {}) == given


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (ServerOptions(password=True, password_file=Path("x")), "one way only"),
        (ServerOptions(password_hash="nope"), "password-hash: not a comptoir password hash"),
        (ServerOptions(password_file=Path("/nonexistent/pw")), "cannot read --password-file"),
        (ServerOptions(password=True), "must not be empty"),
    ],
)
def test_resolve_password_errors(options: ServerOptions, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_password(options, {}, prompt=lambda: "")


# --- login, sessions, logout -----------------------------------------------------------------


async def test_without_credentials_browsers_get_the_login_page_scripts_a_401() -> None:
    async with client(stack(Site())) as c:
        r = await c.get(f"/{TOKEN}/a?b=1", headers={"Accept": "text/html"})
        assert r.status_code == 303
        assert r.headers["location"] == f"/.comptoir/login?next=/{TOKEN}/a%3Fb%3D1"
        r = await c.get("/x")
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == 'Basic realm="comptoir", charset="UTF-8"'
        r = await c.post("/x", content=b"data", headers={"Accept": "text/html"})
        assert r.status_code == 401
        # The shared CSS/JS stays public: the login page needs it.
        assert (await c.get("/.comptoir/comptoir.css")).status_code != 401


async def test_login_page_keeps_next_and_sets_a_login_cookie() -> None:
    async with client(stack(Site())) as c:
        r = await c.get("/.comptoir/login", params={"next": "/a/b?c=d"})
        assert r.status_code == 200
        assert 'name="next" value="/a/b?c=d"' in r.text
        token = form_token(r.text)
        assert r.headers["set-cookie"] == (
            f"comptoir_login={token}; Path=/.comptoir/login; Max-Age=3600; HttpOnly; SameSite=Lax"
        )
        assert r.headers["content-security-policy"] == CSP.decode()
        assert r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["cache-control"] == "no-store"
        # An open redirect is not possible through `next`.
        r = await c.get("/.comptoir/login", params={"next": "//evil.example/"})
        assert 'name="next" value="/"' in r.text
        # The same login token is reused (two tabs both work).
        assert form_token(r.text) == token


async def test_login_sets_the_session_cookie_exactly_and_lets_requests_in() -> None:
    site = Site()
    async with client(stack(site)) as c:
        r = await login(c, next_url=f"/{TOKEN}/x")
        assert r.status_code == 303
        assert r.headers["location"] == f"/{TOKEN}/x"
        cookies = r.headers.get_list("set-cookie")
        session_id = c.cookies.get("comptoir_session")
        assert session_id and len(session_id) == 43
        assert f"comptoir_session={session_id}; {SESSION_ATTRS}" in cookies
        assert (
            "comptoir_login=; Path=/.comptoir/login; Max-Age=0; HttpOnly; SameSite=Lax" in cookies
        )
        r = await c.get(f"/{TOKEN}/x")
        assert r.status_code == 200
        scope = site.scopes[-1]
        assert scope["comptoir.auth"] == "session"
        csrf = scope["comptoir.csrf"]
        assert len(csrf) == 43 and scope["state"]["csrf_token"] == csrf
        # Pages show the token to scripts and offer a logout form.
        page = await c.get("/page")
        assert f'<meta name="csrf-token" content="{csrf}">' in page.text
        assert 'action="/.comptoir/logout"' in page.text
        # Once logged in, the login page sends the browser on.
        r = await c.get("/.comptoir/login", params={"next": "/page"})
        assert (r.status_code, r.headers["location"]) == (303, "/page")


async def test_a_planted_session_cookie_sent_first_does_not_lock_the_user_out() -> None:
    # A sibling site of the host (an echo's /cookies/set, a script) can plant a cookie of the
    # same name with a longer path: browsers send it first. The real session must still count.
    site = Site()
    async with client(stack(site)) as c:
        await login(c)
        real = c.cookies.get("comptoir_session")
        c.cookies.clear()
        both = {"cookie": f"comptoir_session=planted; comptoir_session={real}"}
        r = await c.get(f"/{TOKEN}/x", headers=both)
        assert r.status_code == 200 and site.scopes[-1]["comptoir.auth"] == "session"
        r = await c.get("/.comptoir/login", headers=both)
        assert r.status_code == 303
        # Planted values alone are no session, however many.
        many = "; ".join(f"comptoir_session=planted{i}" for i in range(20))
        assert (await c.get(f"/{TOKEN}/x", headers={"cookie": many})).status_code != 200


async def test_session_cookie_is_secure_under_tls() -> None:
    async with client(stack(Site(), secure=True), "https://testserver") as c:
        r = await login(c)
        session_id = c.cookies.get("comptoir_session")
        assert f"comptoir_session={session_id}; Path=/; HttpOnly; Secure; SameSite=Lax" in (
            r.headers.get_list("set-cookie")
        )


async def test_wrong_password_and_the_login_limit() -> None:
    async with client(stack(Site())) as c:
        for _ in range(4):
            r = await login(c, password="guess")
            assert r.status_code == 403
            assert "Wrong password." in r.text
            assert "comptoir_session" not in c.cookies
        r = await login(c, password="guess")
        assert r.status_code == 429
        assert r.headers["retry-after"] == "300"
        # Blocked: even the right password waits.
        r = await login(c)
        assert r.status_code == 429
        assert 0 < int(r.headers["retry-after"]) <= 300
        # Basic auth from the same address is blocked too.
        r = await c.get("/", auth=("u", "secret"))
        assert r.status_code == 429 and "retry-after" in r.headers


async def test_login_limit_is_per_client_and_ends() -> None:
    clock = FakeClock()
    app = stack(Site(), clock=clock)
    async with client(app) as c:
        # Known good (and remembered without scrypt), yet refused while the address is blocked.
        assert (await c.get("/", auth=("u", "secret"))).status_code == 200
        for _ in range(5):
            await c.get("/", auth=("u", "wrong"))
        assert (await c.get("/", auth=("u", "secret"))).status_code == 429
        other = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("10.0.0.2", 1234)),
            base_url="http://testserver",
        )
        async with other:
            assert (await other.get("/", auth=("u", "secret"))).status_code == 200
        clock.now += 301
        assert (await c.get("/", auth=("u", "secret"))).status_code == 200


def from_address(app: Any, address: str) -> httpx.AsyncClient:
    """An in-process client whose requests come from `address`."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(address, 1234)),
        base_url="http://testserver",
    )


async def basic_status(app: Any, address: str, password: str) -> httpx.Response:
    """One request with Basic credentials from `address`."""
    async with from_address(app, address) as c:
        return await c.get("/", auth=("u", password))


def test_client_key_is_the_ipv4_address_or_the_ipv6_64() -> None:
    assert client_key("10.0.0.7") == "10.0.0.7"
    assert client_key("::ffff:10.0.0.7") == "10.0.0.7"
    assert client_key("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert client_key("2001:DB8:1:2::ffff") == "2001:db8:1:2::/64"
    assert client_key("fe80::1%eth0") == "fe80::/64"
    assert client_key("-") == "-"


async def test_login_limit_counts_an_ipv6_64_as_one_client() -> None:
    app = stack(Site(), clock=FakeClock())
    # Five addresses of one /64, one guess each: the fifth blocks the whole /64.
    statuses = [
        (await basic_status(app, f"2001:db8:1:2::{i}", "guess")).status_code for i in range(1, 6)
    ]
    assert statuses == [401, 401, 401, 401, 429]
    assert (await basic_status(app, "2001:db8:1:2:ffff::9", "secret")).status_code == 429
    # Another /64 is another client.
    assert (await basic_status(app, "2001:db8:1:3::1", "secret")).status_code == 200
    # An IPv4 client seen through a dual-stack socket is that IPv4 address.
    for _ in range(5):
        await basic_status(app, "::ffff:10.0.0.1", "guess")
    assert (await basic_status(app, "10.0.0.1", "secret")).status_code == 429
    assert (await basic_status(app, "10.0.0.2", "secret")).status_code == 200


async def test_failed_logins_of_all_clients_have_a_ceiling_per_minute() -> None:
    clock = FakeClock()
    app = stack(Site(), clock=clock)
    # Rotating loopback sources, four guesses each (under the limit of one address): the
    # 21st failure in the minute is refused, whoever sends it.
    statuses = []
    for i in range(24):
        r = await basic_status(app, f"127.0.0.{i // 4 + 1}", "guess")
        statuses.append(r.status_code)
    assert statuses == [401] * 20 + [429] * 4
    r = await basic_status(app, "10.9.9.9", "secret")
    assert r.status_code == 429 and r.headers["retry-after"] == "1"
    # The pause doubles with each attempt over the ceiling, the right password's too.
    clock.now += 1
    r = await basic_status(app, "10.9.9.9", "secret")
    assert r.status_code == 429 and r.headers["retry-after"] == "2"
    clock.now += 2
    r = await basic_status(app, "10.9.9.9", "guess")
    assert r.status_code == 429 and r.headers["retry-after"] == "4"
    # A new minute: the password is checked again; a good one does not count as a failure.
    clock.now += 60
    assert (await basic_status(app, "10.9.9.9", "secret")).status_code == 200
    # The refusals did not count against the addresses that sent them.
    assert (await basic_status(app, "127.0.0.6", "secret")).status_code == 200
    # Over the ceiling again within the hour: the pause goes on doubling.
    for i in range(20):
        await basic_status(app, f"127.0.1.{i // 4 + 1}", "guess")
    r = await basic_status(app, "10.9.9.9", "guess")
    assert r.status_code == 429 and r.headers["retry-after"] == "8"
    # Known good and remembered, yet refused during a pause.
    assert (await basic_status(app, "10.9.9.9", "secret")).status_code == 429
    # An hour without a pause brings it back to one second.
    clock.now += 3601
    for i in range(20):
        await basic_status(app, f"127.0.2.{i // 4 + 1}", "guess")
    r = await basic_status(app, "10.9.9.9", "guess")
    assert r.status_code == 429 and r.headers["retry-after"] == "1"


async def test_the_login_form_meets_the_ceiling_too() -> None:
    app = stack(Site(), clock=FakeClock(), login_ceiling=3)
    for i in range(3):
        async with from_address(app, f"127.0.0.{i + 1}") as c:
            assert (await login(c, password="guess")).status_code == 403
    async with from_address(app, "127.0.0.9") as c:
        r = await login(c)
        assert r.status_code == 429 and r.headers["retry-after"] == "1"
        assert "comptoir_session" not in c.cookies


async def test_login_form_needs_its_csrf_token_and_the_same_origin() -> None:
    async with client(stack(Site())) as c:
        page = await c.get("/.comptoir/login")
        token = form_token(page.text)
        data = {"csrf_token": token, "password": "secret"}
        r = await c.post("/.comptoir/login", data={**data, "csrf_token": "x" * 43})
        assert r.status_code == 403
        assert "expired" in r.text
        r = await c.post("/.comptoir/login", data=data, headers={"Sec-Fetch-Site": "cross-site"})
        assert r.status_code == 403
        r = await c.post("/.comptoir/login", data=data, headers={"Origin": "http://evil.example"})
        assert r.status_code == 403
        c.cookies.clear()
        r = await c.post("/.comptoir/login", data=data)
        assert r.status_code == 403
        assert "comptoir_session" not in c.cookies


async def test_session_idle_expiry() -> None:
    clock = FakeClock()
    async with client(stack(Site(), clock=clock, idle=60.0, absolute=3600.0)) as c:
        await login(c)
        for _ in range(3):
            clock.now += 50
            assert (await c.get("/")).status_code == 200
        clock.now += 61
        r = await c.get("/", headers={"Accept": "text/html"})
        assert r.status_code == 303 and r.headers["location"].startswith("/.comptoir/login")


async def test_session_absolute_expiry() -> None:
    clock = FakeClock()
    async with client(stack(Site(), clock=clock, idle=60.0, absolute=200.0)) as c:
        await login(c)
        for _ in range(4):
            clock.now += 45
            assert (await c.get("/")).status_code == 200
        clock.now += 45  # 225 s after the login, though active every 45 s
        assert (await c.get("/")).status_code == 401


async def test_logout_needs_the_token_and_ends_the_session() -> None:
    site = Site()
    async with client(stack(site)) as c:
        await login(c)
        await c.get("/")
        csrf = site.scopes[-1]["comptoir.csrf"]
        session_id = c.cookies.get("comptoir_session")
        r = await c.post("/.comptoir/logout", data={"csrf_token": "wrong"})
        assert r.status_code == 403
        assert (await c.get("/.comptoir/logout")).status_code == 405
        r = await c.post("/.comptoir/logout", data={"csrf_token": csrf})
        assert r.status_code == 303
        assert r.headers["location"] == "/.comptoir/login"
        assert r.headers["set-cookie"] == (
            "comptoir_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"
        )
        # The old cookie is worthless now, even if a browser kept it.
        c.cookies.set("comptoir_session", str(session_id))
        assert (await c.get("/")).status_code == 401


# --- CSRF on the sites' own forms --------------------------------------------------------------


async def test_unsafe_requests_with_a_session_need_the_csrf_token() -> None:
    site = Site()
    async with client(stack(site)) as c:
        await login(c)
        await c.get("/")
        csrf = site.scopes[-1]["comptoir.csrf"]
        r = await c.post("/upload", content=b"data")
        assert r.status_code == 403
        assert r.text == "Missing or wrong CSRF token\n"
        r = await c.post("/upload", content=b"data", headers={"X-CSRF-Token": "x" * 43})
        assert r.status_code == 403
        r = await c.delete("/thing")
        assert r.status_code == 403
        r = await c.post("/upload", content=b"data", headers={"X-CSRF-Token": csrf})
        assert r.status_code == 404 and site.bodies[-1] == b"data"
        # Same origin only, whatever the token.
        for headers in ({"Sec-Fetch-Site": "same-site"}, {"Origin": "http://other:1"}):
            r = await c.post("/u", content=b"d", headers={"X-CSRF-Token": csrf, **headers})
            assert r.status_code == 403
            assert r.text == "Cross-site request refused\n"
        ok = {"Sec-Fetch-Site": "same-origin", "Origin": "http://testserver"}
        r = await c.post("/u", content=b"d", headers={"X-CSRF-Token": csrf, **ok})
        assert r.status_code == 404


async def test_csrf_token_as_the_first_form_field_and_body_is_replayed() -> None:
    site = Site()
    async with client(stack(site)) as c:
        await login(c)
        await c.get("/")
        csrf = site.scopes[-1]["comptoir.csrf"]
        r = await c.post("/f", data={"csrf_token": csrf, "name": "x"})
        assert r.status_code == 404
        assert site.bodies[-1] == f"csrf_token={csrf}&name=x".encode()
        # multipart, as a browser sends an upload form (token field first)
        boundary = "----b0undary"
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n'
            f'{csrf}\r\n--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="a.txt"\r\nContent-Type: text/plain\r\n\r\n'
            + "x" * 100_000
            + f"\r\n--{boundary}--\r\n"
        ).encode()
        ctype = f"multipart/form-data; boundary={boundary}"
        r = await c.post("/f", content=body, headers={"Content-Type": ctype})
        assert r.status_code == 404
        assert site.bodies[-1] == body
        wrong = body.replace(csrf.encode(), b"y" * 43)
        r = await c.post("/f", content=wrong, headers={"Content-Type": ctype})
        assert r.status_code == 403
        # A token that is not the first field is not looked for.
        r = await c.post("/f", data={"name": "x", "csrf_token": csrf})
        assert r.status_code == 403


async def test_peek_form_token_in_small_chunks() -> None:
    body = b'--B\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\nTOKEN\r\n--B--\r\n'
    chunks = [body[i : i + 7] for i in range(0, len(body), 7)]
    messages: list[Message] = [
        {"type": "http.request", "body": ch, "more_body": i < len(chunks) - 1}
        for i, ch in enumerate(chunks)
    ]
    queue = list(messages)

    async def receive() -> Message:
        return queue.pop(0)

    scope = {"headers": [(b"content-type", b"multipart/form-data; boundary=B")]}
    token, replay = await peek_form_token(scope, receive)
    assert token == b"TOKEN"
    seen = b""
    while True:
        m = await replay()
        seen += m["body"]
        if not m["more_body"]:
            break
    assert seen == body


async def test_basic_auth_for_scripts_needs_no_csrf_token() -> None:
    site = Site()
    async with client(stack(site)) as c:
        r = await c.post("/upload", content=b"data", auth=("anyone", "secret"))
        assert r.status_code == 404 and site.bodies[-1] == b"data"
        assert site.scopes[-1]["comptoir.auth"] == "basic"
        assert (await c.get("/", auth=("anyone", "nope"))).status_code == 401
        r = await c.get("/", headers={"Authorization": "Basic !!!"})
        assert r.status_code == 400
        # A password that is not UTF-8 is a wrong password, not a server error.
        not_utf8 = base64.b64encode(b"anyone:\xff").decode()
        assert (await c.get("/", headers={"Authorization": f"Basic {not_utf8}"})).status_code == 401


async def test_capability_token_is_a_second_factor() -> None:
    async with client(stack(Site())) as c:
        html = {"Accept": "text/html"}
        right = await c.get(f"/{TOKEN}/f", headers=html)
        wrong = await c.get("/WrongToken00000000000/f", headers=html)
        # Before the login, a right and a wrong token look the same.
        assert right.status_code == wrong.status_code == 303
        assert right.headers["location"].startswith("/.comptoir/login?next=")
        await login(c, next_url="/WrongToken00000000000/f")
        assert (await c.get("/WrongToken00000000000/f")).status_code == 404
        assert (await c.get(f"/{TOKEN}/f")).status_code == 200


async def test_websockets_need_a_session_from_this_origin() -> None:
    app = stack(Site())

    async def handshake(headers: list[tuple[bytes, bytes]]) -> list[Message]:
        sent: list[Message] = []
        inbox: list[Message] = [{"type": "websocket.connect"}]

        async def receive() -> Message:
            return inbox.pop(0) if inbox else {"type": "websocket.disconnect"}

        async def send(message: Message) -> None:
            sent.append(message)

        scope = {
            "type": "websocket",
            "path": "/ws",
            "raw_path": b"/ws",
            "headers": headers,
            "scheme": "ws",
            "client": ("127.0.0.1", 1),
        }
        await app(scope, receive, send)
        return sent

    assert (await handshake([]))[0] == {"type": "websocket.close", "code": 1008}
    async with client(app) as c:
        await login(c)
        cookie = f"comptoir_session={c.cookies.get('comptoir_session')}".encode()
    host = [(b"host", b"testserver"), (b"cookie", cookie)]
    accepted = await handshake([*host, (b"origin", b"http://testserver")])
    assert accepted[0]["type"] == "websocket.accept"
    refused = await handshake([*host, (b"origin", b"http://evil.example")])
    assert refused[0] == {"type": "websocket.close", "code": 1008}


async def test_build_app_protects_every_site_with_the_password(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a")
    config = make_config("static", StaticOptions(root=tmp_path), password_hash=HASH)
    async with client(build_app(config)) as c:
        assert (await c.get("/a.txt")).status_code == 401
        assert (await c.get("/a.txt", auth=("", "secret"))).text == "a"
        await login(c, next_url="/a.txt")
        assert (await c.get("/a.txt")).text == "a"


@pytest.mark.parametrize("kind", ["share", "receive"])
async def test_password_is_a_second_factor_on_real_share_and_receive_links(
    tmp_path: Path, kind: str
) -> None:
    (tmp_path / "f.txt").write_text("shared\n")
    options: Any = (
        ShareOptions(paths=(tmp_path / "f.txt",), token=TOKEN)
        if kind == "share"
        else ReceiveOptions(root=tmp_path, token=TOKEN)
    )
    app = build_app(make_config(kind, options, password_hash=HASH))
    async with client(app) as c:
        html = {"Accept": "text/html"}
        right = await c.get(f"/{TOKEN}/", headers=html)
        wrong = await c.get("/WrongToken00000000000/", headers=html)
        # Before the password, the right link and a wrong one get the same answer.
        assert right.status_code == wrong.status_code == 303
        assert right.headers["location"] == f"/.comptoir/login?next=/{TOKEN}/"
        assert (await c.get(f"/{TOKEN}/")).status_code == 401
        # The password alone opens nothing: the link is still needed.
        await login(c, next_url=f"/{TOKEN}/")
        assert (await c.get("/WrongToken00000000000/", headers=html)).status_code == 404
        page = await c.get(f"/{TOKEN}/", headers=html)
        assert page.status_code == 200
        # Both factors with Basic too (scripts).
        c.cookies.clear()
        assert (await c.get("/WrongToken00000000000/", auth=("", "secret"))).status_code == 404
        assert (await c.get(f"/{TOKEN}/", auth=("", "wrong"))).status_code == 401


async def test_echo_form_posts_with_its_csrf_token_under_a_password() -> None:
    app = build_app(make_config("echo", EchoOptions(), password_hash=HASH))
    async with client(app) as c:
        await login(c, next_url="/forms/post")
        form = await c.get("/forms/post")
        token = form_token(form.text)
        # The hidden field comes first, as the gate requires.
        assert form.text.index('name="csrf_token"') < form.text.index('name="custname"')
        r = await c.post("/post", data={"csrf_token": token, "custname": "Ana"})
        assert r.status_code == 200
        assert r.json()["form"] == {"csrf_token": token, "custname": "Ana"}
        r = await c.post("/post", data={"custname": "Ana"})
        assert r.status_code == 403


# --- theme and headers -------------------------------------------------------------------------


async def test_theme_switch_sets_the_preference_cookie(tmp_path: Path) -> None:
    config = make_config("static", StaticOptions(root=tmp_path))
    async with client(build_app(config)) as c:
        r = await c.get("/.comptoir/theme", params={"set": "dark", "next": "/sub/?x=1"})
        assert r.status_code == 303
        assert r.headers["location"] == "/sub/?x=1"
        assert r.headers["set-cookie"] == (
            "comptoir_theme=dark; Path=/; Max-Age=31536000; SameSite=Lax"
        )
        page = await c.get("/")
        assert '<html lang="en" data-theme="dark">' in page.text
        assert '<a href="/.comptoir/theme?set=dark&amp;next=/" aria-current="true">' in page.text
        r = await c.get("/.comptoir/theme", params={"set": "auto", "next": "/"})
        assert r.headers["set-cookie"] == "comptoir_theme=; Path=/; Max-Age=0; SameSite=Lax"
        c.cookies.clear()
        assert 'data-theme="auto"' in (await c.get("/")).text
        assert (await c.get("/.comptoir/theme", params={"set": "pink"})).status_code == 400
        r = await c.get("/.comptoir/theme", params={"set": "light", "next": "https://evil/"})
        assert r.headers["location"] == "/"
        c.cookies.clear()
        c.cookies.set("comptoir_theme", "<script>")
        assert 'data-theme="auto"' in (await c.get("/")).text


async def test_theme_cookie_is_secure_under_tls(tmp_path: Path) -> None:
    config = make_config("static", StaticOptions(root=tmp_path), tls=True)
    async with client(build_app(config), "https://testserver") as c:
        r = await c.get("/.comptoir/theme", params={"set": "light"})
        assert r.headers["set-cookie"] == (
            "comptoir_theme=light; Path=/; Max-Age=31536000; Secure; SameSite=Lax"
        )


def test_safe_next() -> None:
    assert safe_next("/a/b?c") == "/a/b?c"
    for bad in (None, "", "//evil", "/\\evil", "http://evil/", "/a b", "/\x00"):
        assert safe_next(bad, "/mount") == "/mount/"


async def test_csp_only_on_pages_comptoir_renders(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "index.html").write_text("<script>alert(1)</script>")
    (tmp_path / "a.txt").write_text("a")
    config = make_config("static", StaticOptions(root=tmp_path))
    async with client(build_app(config)) as c:
        listing = await c.get("/sub/")
        assert listing.headers["content-type"].startswith("text/html")
        assert listing.headers["content-security-policy"] == CSP.decode()
        assert listing.headers["referrer-policy"] == "no-referrer"
        assert listing.headers["x-content-type-options"] == "nosniff"
        own = await c.get("/")
        assert own.text.startswith("<script>")
        assert "content-security-policy" not in own.headers
        assert own.headers["x-content-type-options"] == "nosniff"
        # Still no path (a share's token) in the Referer other sites get from a user's page.
        assert own.headers["referrer-policy"] == "strict-origin-when-cross-origin"
        assert "referrer-policy" not in (await c.get("/a.txt")).headers
        assert "content-security-policy" not in (await c.get("/a.txt")).headers
        assert "strict-transport-security" not in listing.headers


async def test_hsts_only_with_a_users_certificate_and_a_host_name(tmp_path: Path) -> None:
    user_cert = make_config("static", StaticOptions(root=tmp_path), cert=Path("c.pem"))
    local_ca = make_config("static", StaticOptions(root=tmp_path), tls=True)
    async with client(build_app(user_cert), "https://example.com") as c:
        r = await c.get("/")
        assert r.headers["strict-transport-security"] == "max-age=31536000"
        for host in ("localhost:8443", "app.localhost", "127.0.0.1:8443", "[::1]:8443"):
            assert (
                "strict-transport-security"
                not in (await c.get("/", headers={"Host": host})).headers
            )
    async with client(build_app(local_ca), "https://example.com") as c:
        assert "strict-transport-security" not in (await c.get("/")).headers
    assert hsts_applies(b"Example.COM:443") and not hsts_applies(None)


async def test_no_password_means_no_gate_but_headers_and_theme(tmp_path: Path) -> None:
    app = secure_site(Site(), ServerOptions(), StateStore())
    async with client(app) as c:
        assert (await c.get("/")).status_code == 200
        r = await c.get("/page")
        assert "csrf-token" not in r.text and "logout" not in r.text
        assert r.headers["content-security-policy"] == CSP.decode()


def test_password_from_a_pipe(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from comptoir.security import passwords

    monkeypatch.setattr("sys.stdin", io.StringIO("piped secret\n"))
    assert passwords._prompt_terminal() == "piped secret"


async def test_no_path_under_comptoir_passes_the_gate_without_the_password() -> None:
    # The shared assets are answered in front of the gate; a site's own `.comptoir/` files
    # (a --hidden static site) stay behind the password like everything else.
    site = Site()
    gate = PasswordGate(site, AuthSettings(password_hash=HASH), StateStore())
    async with client(gate) as c:
        for path in ("/.comptoir/notes.txt", "/.comptoir/comptoir.css", "/.comptoir/"):
            r = await c.get(path, headers={"accept": "text/plain"})
            assert r.status_code == 401, path
    assert site.scopes == []
