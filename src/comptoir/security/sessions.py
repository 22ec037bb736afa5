"""Server-side sessions and the failed-login throttle, kept in the state store.

Both live in the store shared by the worker processes (state/store.py), so a session made by one
worker is good in every other, and failed logins add up whichever worker answers them.

A session cookie holds only an opaque random id (256 bits). The store keys sessions by a SHA-256 of
that id, so the state file alone does not give usable cookies. A session ends after `idle`
seconds without a request or `absolute` seconds after the login, whichever comes first.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from comptoir.state import StateStore

SESSION_ID_BYTES = 32
CSRF_BYTES = 32


@dataclass(frozen=True)
class Session:
    """A logged-in browser: when it logged in, when it was last seen, its CSRF token."""

    created: float
    last_seen: float
    csrf_token: str


def _key(session_id: str) -> str:
    return "session:" + hashlib.sha256(session_id.encode("utf-8", "surrogateescape")).hexdigest()


class Sessions:
    """Create, look up (sliding the idle expiry) and end sessions."""

    def __init__(
        self,
        store: StateStore,
        idle: float,
        absolute: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.idle = idle
        self.absolute = absolute
        self.clock = clock
        # Writing last_seen on every request would make each one a database write; a tenth of
        # the idle time (at most a minute) keeps the expiry within 10% of exact.
        self.touch_every = min(60.0, idle / 10)

    def _save(self, session_id: str, session: Session, now: float) -> None:
        remaining = min(self.idle, session.created + self.absolute - now)
        value = json.dumps(
            {"c": session.created, "s": session.last_seen, "t": session.csrf_token}
        ).encode()
        # The store expires the key too, so ended sessions do not pile up.
        self.store.set(_key(session_id), value, ttl=max(remaining, 0.001))

    def create(self) -> tuple[str, Session]:
        """A new session: (the id for the cookie, the session)."""
        now = self.clock()
        session_id = secrets.token_urlsafe(SESSION_ID_BYTES)
        session = Session(now, now, secrets.token_urlsafe(CSRF_BYTES))
        self._save(session_id, session, now)
        return session_id, session

    def get(self, session_id: str) -> Session | None:
        """The live session with this id, or None; a hit counts as activity."""
        if not session_id or len(session_id) > 128:
            return None
        raw = self.store.get(_key(session_id))
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            session = Session(float(data["c"]), float(data["s"]), str(data["t"]))
        except (ValueError, KeyError, TypeError):
            return None
        now = self.clock()
        if now - session.last_seen > self.idle or now - session.created > self.absolute:
            self.store.delete(_key(session_id))
            return None
        if now - session.last_seen >= self.touch_every:
            session = Session(session.created, now, session.csrf_token)
            self._save(session_id, session, now)
        return session

    def end(self, session_id: str) -> None:
        """End a session (logout)."""
        self.store.delete(_key(session_id))


def client_key(address: str) -> str:
    """The part of a client address the login limit counts by: an IPv4 address, an IPv6 /64.

    One IPv6 host is usually given a whole /64 and may take any address in it, so counting per
    IPv6 address would give it billions of fresh starts. An IPv4-mapped IPv6 address (a
    dual-stack socket's view of an IPv4 client) counts as that IPv4 address.
    """
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class LoginThrottle:
    """Failed logins, limited per client and for all clients together.

    Per client (`client_key`: an IPv4 address, an IPv6 /64): at most `limit` failed logins per
    `window` seconds, then that client waits `window` seconds. For all clients together: at most
    `ceiling` failed logins per `ceiling_window` seconds (one minute) — many addresses (a botnet,
    or 127.0.0.0/8 on loopback) must not add up to many guesses. Over the ceiling no password is
    checked at all for a pause of one second that doubles with every attempt refused over the
    ceiling (up to `window`), until an hour passes without one.

    An attempt counts as a failure from the moment it starts (`attempt`) until the password is
    known good (`succeeded`): a burst of parallel guesses cannot all slip in before the first
    failure is recorded.
    """

    def __init__(
        self,
        store: StateStore,
        limit: int = 5,
        window: float = 300.0,
        clock: Callable[[], float] = time.time,
        ceiling: int = 20,
        ceiling_window: float = 60.0,
    ) -> None:
        self.store = store
        self.limit = limit
        self.window = window
        self.clock = clock
        self.ceiling = ceiling
        self.ceiling_window = ceiling_window

    def _until(self, key: str) -> int:
        raw = self.store.get(key)
        if raw is None:
            return 0
        try:
            until = float(raw)
        except ValueError:
            return 0
        return max(1, math.ceil(until - self.clock()))

    def retry_after(self, client: str) -> int:
        """Seconds until `client` may try again (0: it may try now)."""
        return max(self._until(_BLOCK + client_key(client)), self._until(_PAUSE))

    def _block(self, key: str) -> int:
        until = self.clock() + self.window
        self.store.set(_BLOCK + key, repr(until).encode(), ttl=self.window)
        self.store.delete(_FAILED + key)
        return math.ceil(self.window)

    def _pause(self) -> int:
        """Refuse every password for a while: 1 s, doubled with each attempt over the ceiling."""
        strikes = self.store.incr(_STRIKES, ttl=_STRIKES_TTL)
        # Counted for an hour after the last pause, not the first.
        self.store.set(_STRIKES, str(strikes).encode(), ttl=_STRIKES_TTL)
        delay = min(2.0 ** min(strikes - 1, 32), self.window)
        self.store.set(_PAUSE, repr(self.clock() + delay).encode(), ttl=delay)
        return max(1, math.ceil(delay))

    def attempt(self, client: str) -> int:
        """Start an attempt: 0 if `client` may check a password now, else the seconds to wait."""
        wait = self.retry_after(client)
        if wait:
            return wait
        key = client_key(client)
        if self.store.incr(_FAILED + key, ttl=self.window) > self.limit:
            return self._block(key)
        if self.store.incr(_FAILED_ALL, ttl=self.ceiling_window) > self.ceiling:
            # Not this client's failure: it may try again once the pause is over.
            self.store.incr(_FAILED + key, -1)
            return self._pause()
        return 0

    def failed(self, client: str) -> int:
        """The attempt failed: the seconds `client` must now wait (0 if it may try again)."""
        key = client_key(client)
        if self.store.get_int(_FAILED + key) >= self.limit:
            return self._block(key)
        return 0

    def succeeded(self, client: str) -> None:
        """Forget the failures of `client` after a good password (and its count in the total)."""
        self.store.delete(_FAILED + client_key(client))
        if self.store.get_int(_FAILED_ALL) > 0:
            self.store.incr(_FAILED_ALL, -1, ttl=self.ceiling_window)


_FAILED = "login-fail:"
_BLOCK = "login-block:"
# Every client's failures of the current minute, the pause over the ceiling, and how many
# pauses there were in the last hour (the pause doubles with each).
_FAILED_ALL = "login-fail-all"
_PAUSE = "login-pause-all"
_STRIKES = "login-pause-strikes"
_STRIKES_TTL = 3600.0
