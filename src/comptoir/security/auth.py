"""Password protection: login page, sessions, HTTP Basic, CSRF checks and the failed-login limits.

`PasswordGate` wraps each site (inside the host router, so it sees the site's own paths) when a
password is set. For every request it decides, in this order:

- `/.comptoir/login` (GET: the form, POST: check the password) and `/.comptoir/logout` (POST) are
  answered here. The shared CSS/JS (the login page's styles) never reach the gate: the layer in
  front of it answers them (web/theme.py), and no other path passes without the password.
- A valid session cookie lets the request through. Unsafe methods (anything but GET, HEAD,
  OPTIONS, TRACE) must then come from this origin (`Sec-Fetch-Site`/`Origin` when the browser sends
  them) and carry the session's CSRF token: header `X-CSRF-Token`, or a form field `csrf_token`
  placed *first* in a urlencoded or multipart body (read here, then replayed to the site untouched).
- `Authorization: Basic` with the right password (user name ignored) lets scripts in: no cookie,
  hence no CSRF risk and no token needed.
- Anything else: a browser asking for a page is sent to the login page (`?next=` keeps where it was
  going); other clients get 401 with a Basic challenge; WebSockets are refused.

For sites, the API is the scope: `scope["comptoir.csrf"]` holds the session's token (also in
`scope["state"]["csrf_token"]`, i.e. Starlette's `request.state.csrf_token`) and
`scope["comptoir.auth"]` says how the request got in ("session" or "basic"). Templates get the token
from `page_state().csrf_token`; base.html puts it in `<meta name="csrf-token">` for scripts.

Capability URLs stay a second factor: the gate asks for the password on any path, whether its
token is right or not, and the site answers 404 for a wrong token only after the login.

Each site has its own session cookie, named after the site (`session_cookie_name`) and scoped to
its mount path: a browser sends it to that site only, not to the other sites of the host name
(an echo site under /echo would show it), and a login to one site is not a login to another.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, quote, unquote_plus

from comptoir.http.cookies import (
    delete_cookie,
    request_cookie,
    request_cookie_values,
    set_cookie,
)
from comptoir.http.errors import send_error
from comptoir.http.paths import location_value
from comptoir.security.passwords import verify_password
from comptoir.security.sessions import LoginThrottle, Session, Sessions
from comptoir.state import StateStore
from comptoir.types import ASGIApp, Message, Receive, Scope, Send
from comptoir.web import render
from comptoir.web.page import current_page
from comptoir.web.theme import safe_next

LOGIN_PATH = b"/.comptoir/login"
LOGOUT_PATH = b"/.comptoir/logout"
SESSION_COOKIE = "comptoir_session"
LOGIN_COOKIE = "comptoir_login"
LOGIN_COOKIE_MAX_AGE = 3600
CSRF_HEADER = b"x-csrf-token"
CSRF_FIELD = "csrf_token"
SCOPE_CSRF = "comptoir.csrf"
SCOPE_AUTH = "comptoir.auth"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
# The login and logout forms are a few fields; anything bigger is not them.
FORM_LIMIT = 8 * 1024
# How far into a body the CSRF field is looked for (it must come first).
PEEK_LIMIT = 64 * 1024
# A password accepted once is remembered (as an HMAC, per worker) for this long, so scripts using
# Basic auth do not pay for scrypt on every request.
ACCEPTED_TTL = 300.0
_ACCEPTED_MAX = 1024


@dataclass(frozen=True)
class AuthSettings:
    """How the gate behaves: the password's hash, cookie security, session and login limits."""

    password_hash: str
    # Under TLS every cookie is marked Secure.
    secure: bool = False
    idle: float = 2 * 3600.0
    absolute: float = 7 * 24 * 3600.0
    # Failed logins per client (an IPv4 address, an IPv6 /64) and window, then a block.
    login_limit: int = 5
    login_window: float = 300.0
    # Failed logins of all clients together per window, then pauses (security/sessions.py).
    login_ceiling: int = 20
    login_ceiling_window: float = 60.0
    # The site the gate guards (its name in the config): its session cookie is named after it.
    site: str = ""


def session_cookie_name(site: str) -> str:
    """The session cookie of a site: `comptoir_session_<site>` (a digest of the name when it is
    not a plain token), `comptoir_session` for a gate with no site name."""
    if not site:
        return SESSION_COOKIE
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", site):
        site = hashlib.sha256(site.encode()).hexdigest()[:12]
    return f"{SESSION_COOKIE}_{site}"


def _cookie_path(scope: Scope) -> str:
    """The path a site's session cookie is scoped to: its mount ("/" at the root)."""
    return str(scope.get("root_path", "")) or "/"


def _header(scope: Scope, name: bytes) -> bytes | None:
    for k, v in scope.get("headers", ()):
        if k == name:
            return bytes(v)
    return None


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "-"


def _tokens_match(given: str | bytes | None, expected: str) -> bool:
    if not given or not expected:
        return False
    if isinstance(given, str):
        given = given.encode("utf-8", "surrogateescape")
    return hmac.compare_digest(given, expected.encode())


def same_origin(scope: Scope) -> bool:
    """False when the browser says the request comes from another site or origin."""
    fetch_site = _header(scope, b"sec-fetch-site")
    if fetch_site is not None:
        # "none" is the user's own navigation (address bar, bookmark); "same-site" is not enough:
        # another port of localhost is the same site.
        return fetch_site in (b"same-origin", b"none")
    origin = _header(scope, b"origin")
    if origin is None:
        # An older browser or a script: the CSRF token alone decides.
        return True
    host = _header(scope, b"host")
    if host is None:
        return False
    scheme = str(scope.get("scheme", "http"))
    # A WebSocket handshake's Origin is the page's: http(s), not ws(s).
    scheme = {"ws": "http", "wss": "https"}.get(scheme, scheme)
    expected = f"{scheme}://".encode() + host
    return origin.lower() == expected.lower()


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None if it is larger than `limit`."""
    body = b""
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return body
        body += bytes(message.get("body", b""))
        if len(body) > limit:
            return None
        if not message.get("more_body", False):
            return body


_WAIT = object()
_NAME = re.compile(rb'\bname="([^"]*)"', re.IGNORECASE)


def _first_urlencoded(body: bytes, complete: bool) -> object:
    end = body.find(b"&")
    if end == -1:
        if not complete:
            return _WAIT
        end = len(body)
    name, _, value = body[:end].partition(b"=")
    if unquote_plus(name.decode("latin-1")) != CSRF_FIELD:
        return None
    return unquote_plus(value.decode("latin-1"), encoding="latin-1").encode("latin-1")


def _first_multipart(body: bytes, complete: bool, boundary: bytes) -> object:
    delimiter = b"--" + boundary
    start = body.find(delimiter + b"\r\n")
    if start == -1:
        return None if complete or len(body) > len(delimiter) + 2 else _WAIT
    head_start = start + len(delimiter) + 2
    head_end = body.find(b"\r\n\r\n", head_start)
    if head_end == -1:
        return None if complete else _WAIT
    match = _NAME.search(body[head_start:head_end])
    if match is None or match.group(1) != CSRF_FIELD.encode():
        return None
    value_end = body.find(b"\r\n" + delimiter, head_end + 4)
    if value_end == -1:
        return None if complete else _WAIT
    return body[head_end + 4 : value_end]


def _boundary(content_type: bytes) -> bytes | None:
    for param in content_type.split(b";")[1:]:
        name, _, value = param.strip().partition(b"=")
        if name.lower() == b"boundary" and value:
            return value.strip(b'"')
    return None


async def peek_form_token(scope: Scope, receive: Receive) -> tuple[bytes | None, Receive]:
    """The `csrf_token` field at the start of a form body, and a `receive` replaying the body."""
    ctype = (_header(scope, b"content-type") or b"").lower()
    boundary = None
    if ctype.startswith(b"multipart/form-data"):
        boundary = _boundary(_header(scope, b"content-type") or b"")
        if boundary is None:
            return None, receive
    elif not ctype.startswith(b"application/x-www-form-urlencoded"):
        return None, receive
    buffered: list[Message] = []
    body = b""
    complete = False
    while True:
        if boundary is not None:
            found = _first_multipart(body, complete, boundary)
        else:
            found = _first_urlencoded(body, complete)
        if found is not _WAIT or complete or len(body) > PEEK_LIMIT:
            break
        message = await receive()
        buffered.append(message)
        if message["type"] != "http.request":
            complete = True
            continue
        body += message.get("body", b"")
        complete = not message.get("more_body", False)
    token = found if isinstance(found, bytes) else None

    async def replay() -> Message:
        if buffered:
            return buffered.pop(0)
        return await receive()

    return token, replay


class PasswordGate:
    """The middleware asking for the password (see the module docstring for the rules)."""

    def __init__(
        self,
        app: ASGIApp,
        settings: AuthSettings,
        store: StateStore,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.settings = settings
        self.sessions = Sessions(store, settings.idle, settings.absolute, clock)
        self.throttle = LoginThrottle(
            store,
            settings.login_limit,
            settings.login_window,
            clock,
            ceiling=settings.login_ceiling,
            ceiling_window=settings.login_ceiling_window,
        )
        self.clock = clock
        self.cookie = session_cookie_name(settings.site)
        self._mac_key = secrets.token_bytes(32)
        self._accepted: dict[bytes, float] = {}
        self._pending: dict[bytes, asyncio.Future[bool]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer login/logout, or let the request through, or ask for the password."""
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        raw = scope.get("raw_path") or scope["path"].encode()
        if kind == "http":
            if raw == LOGIN_PATH:
                await self._login(scope, receive, send)
                return
            if raw == LOGOUT_PATH:
                await self._logout(scope, receive, send)
                return
        _, session = self._session(scope)
        if session is not None:
            await self._with_session(scope, receive, send, session)
            return
        authorization = _header(scope, b"authorization")
        if authorization is not None and authorization[:6].lower() == b"basic ":
            await self._with_basic(scope, receive, send, authorization[6:])
            return
        await self._ask(scope, send)

    async def _with_session(
        self, scope: Scope, receive: Receive, send: Send, session: Session
    ) -> None:
        if scope["type"] == "websocket":
            # Cookies ride along on cross-site WebSocket handshakes: only this origin may open one.
            if not same_origin(scope):
                await send({"type": "websocket.close", "code": 1008})
                return
        elif scope["method"] not in SAFE_METHODS:
            if not same_origin(scope):
                await send_error(scope, send, 403, "Cross-site request refused")
                return
            given = _header(scope, CSRF_HEADER)
            if given is None:
                given, receive = await peek_form_token(scope, receive)
            if not _tokens_match(given, session.csrf_token):
                await send_error(scope, send, 403, "Missing or wrong CSRF token")
                return
        page = current_page()
        page.csrf_token = session.csrf_token
        page.logged_in = True
        child = dict(scope)
        child[SCOPE_CSRF] = session.csrf_token
        child[SCOPE_AUTH] = "session"
        child["state"] = {**scope.get("state", {}), "csrf_token": session.csrf_token}
        await self.app(child, receive, send)

    async def _with_basic(self, scope: Scope, receive: Receive, send: Send, encoded: bytes) -> None:
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            await send_error(scope, send, 400, "Malformed Authorization header")
            return
        text = decoded.decode("utf-8", "surrogateescape")
        _, sep, password = text.partition(":")
        ok, wait = await self.check_password(_client(scope), password if sep else "")
        if wait:
            await self._too_many(scope, send, wait)
            return
        if not ok:
            await self._ask(scope, send)
            return
        child = dict(scope)
        child[SCOPE_AUTH] = "basic"
        await self.app(child, receive, send)

    async def check_password(self, client: str, password: str) -> tuple[bool, int]:
        """(accepted, seconds to wait before trying again) for one password from `client`.

        Failures count in the store per client (an IPv4 address, an IPv6 /64) and for all
        clients together (`LoginThrottle`); a password accepted recently is known without
        scrypt, and identical attempts in flight share one check (a script's parallel first
        requests are one attempt, not a burst of failures).
        """
        mac = hmac.new(
            self._mac_key, password.encode("utf-8", "surrogateescape"), hashlib.sha256
        ).digest()
        # A blocked address may not test passwords at all, not even ones known to be good.
        blocked = self.throttle.retry_after(client)
        if blocked:
            return False, blocked
        if self._accepted.get(mac, 0.0) > time.monotonic():
            return True, 0
        pending = self._pending.get(mac)
        initiator = pending is None
        if pending is None:
            wait = self.throttle.attempt(client)
            if wait:
                return False, wait
            loop = asyncio.get_running_loop()
            pending = loop.run_in_executor(
                None, verify_password, password, self.settings.password_hash
            )
            self._pending[mac] = pending
            pending.add_done_callback(lambda _: self._pending.pop(mac, None))
        ok = await asyncio.shield(pending)
        if ok:
            self.throttle.succeeded(client)
            if len(self._accepted) >= _ACCEPTED_MAX:
                self._accepted.clear()
            self._accepted[mac] = time.monotonic() + ACCEPTED_TTL
            return True, 0
        if initiator:
            return False, self.throttle.failed(client)
        return False, self.throttle.retry_after(client)

    async def _ask(self, scope: Scope, send: Send) -> None:
        """The answer to a request without credentials."""
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        accept = _header(scope, b"accept") or b""
        if scope["method"] in ("GET", "HEAD") and b"text/html" in accept:
            target = current_page().here
            location = self._login_url(scope) + "?next=" + quote(target, safe="/")
            await _send_redirect(send, location)
            return
        await send_error(
            scope,
            send,
            401,
            "Password required",
            {"WWW-Authenticate": 'Basic realm="comptoir", charset="UTF-8"'},
        )

    async def _too_many(self, scope: Scope, send: Send, wait: int) -> None:
        await send_error(
            scope,
            send,
            429,
            f"Too many failed logins; try again in {_minutes(wait)}",
            {"Retry-After": str(wait)},
        )

    def _session(self, scope: Scope) -> tuple[str | None, Session | None]:
        """The request's valid session and its id, if any of its session cookies holds one.

        Each value is checked, not just the first: a cookie of the same name that another site of
        the host planted with a longer path comes first, and must not lock the user out.
        """
        for session_id in request_cookie_values(scope, self.cookie):
            session = self.sessions.get(session_id) if session_id else None
            if session is not None:
                return session_id, session
        return None, None

    def _login_url(self, scope: Scope) -> str:
        return str(scope.get("root_path", "")) + LOGIN_PATH.decode()

    async def _login(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        prefix = str(scope.get("root_path", ""))
        if method in ("GET", "HEAD"):
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"), encoding="latin-1")
            next_url = safe_next((query.get("next") or [""])[0], prefix)
            if self._session(scope)[1] is not None:
                await _send_redirect(send, next_url)
                return
            await self._login_page(scope, send, next_url, 200)
            return
        if method != "POST":
            await send_error(scope, send, 405, "Method not allowed", {"Allow": "GET, HEAD, POST"})
            return
        body = await _read_body(receive, FORM_LIMIT)
        if body is None:
            await send_error(scope, send, 413, "Login form too large")
            return
        form = parse_qs(body.decode("latin-1"), keep_blank_values=True, encoding="utf-8")
        next_url = safe_next((form.get("next") or [""])[0], prefix)
        if not same_origin(scope):
            await send_error(scope, send, 403, "Cross-site request refused")
            return
        cookie_token = request_cookie(scope, LOGIN_COOKIE)
        field_token = (form.get(CSRF_FIELD) or [""])[0]
        if cookie_token is None or not _tokens_match(field_token, cookie_token):
            await self._login_page(
                scope, send, next_url, 403, "The login form had expired; please try again."
            )
            return
        password = (form.get("password") or [""])[0]
        ok, wait = await self.check_password(_client(scope), password)
        if wait:
            message = f"Too many failed attempts; try again in {_minutes(wait)}."
            await self._login_page(scope, send, next_url, 429, message, {"retry-after": str(wait)})
            return
        if not ok:
            await self._login_page(scope, send, next_url, 403, "Wrong password.")
            return
        session_id, _ = self.sessions.create()
        headers = [
            set_cookie(
                self.cookie, session_id, secure=self.settings.secure, path=_cookie_path(scope)
            ),
            delete_cookie(LOGIN_COOKIE, secure=self.settings.secure, path=self._login_url(scope)),
        ]
        await _send_redirect(send, next_url, headers)

    async def _login_page(
        self,
        scope: Scope,
        send: Send,
        next_url: str,
        status: int,
        error: str = "",
        extra: dict[str, str] | None = None,
    ) -> None:
        token = request_cookie(scope, LOGIN_COOKIE)
        # Keep the token of an earlier visit: two login tabs must both work.
        if not token or len(token) != 43 or not re.fullmatch(r"[A-Za-z0-9_-]+", token):
            token = secrets.token_urlsafe(32)
        body = render(
            "login.html",
            # Under a mount path, the page's CSS is the site's /.comptoir/ too (base.html).
            prefix=scope.get("root_path", ""),
            action=self._login_url(scope),
            next_url=next_url,
            csrf=token,
            error=error,
        ).encode()
        headers = [
            (b"content-type", b"text/html; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
            set_cookie(
                LOGIN_COOKIE,
                token,
                max_age=LOGIN_COOKIE_MAX_AGE,
                secure=self.settings.secure,
                path=self._login_url(scope),
            ),
        ]
        headers.extend((k.encode(), v.encode("latin-1")) for k, v in (extra or {}).items())
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send(
            {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body}
        )

    async def _logout(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            await send_error(scope, send, 405, "Method not allowed", {"Allow": "POST"})
            return
        session_id, session = self._session(scope)
        if session is not None and session_id:
            # Logging someone out is a state change too: same origin and token, like any form.
            if not same_origin(scope):
                await send_error(scope, send, 403, "Cross-site request refused")
                return
            given = _header(scope, CSRF_HEADER)
            if given is None:
                body = await _read_body(receive, FORM_LIMIT)
                form = parse_qs((body or b"").decode("latin-1"), encoding="latin-1")
                given = (form.get(CSRF_FIELD) or [""])[0].encode("latin-1")
            if not _tokens_match(given, session.csrf_token):
                await send_error(scope, send, 403, "Missing or wrong CSRF token")
                return
            self.sessions.end(session_id)
        path = _cookie_path(scope)
        headers = [delete_cookie(self.cookie, secure=self.settings.secure, path=path)]
        await _send_redirect(send, self._login_url(scope), headers)


def _minutes(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds} seconds"
    return f"{round(seconds / 60)} minutes"


async def _send_redirect(
    send: Send, location: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """303 See Other to `location` (a path on this site)."""
    all_headers = [
        (b"location", location_value(location)),
        (b"content-length", b"0"),
        (b"cache-control", b"no-store"),
        *(headers or []),
    ]
    await send({"type": "http.response.start", "status": 303, "headers": all_headers})
    await send({"type": "http.response.body", "body": b""})
