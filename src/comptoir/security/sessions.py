"""Server-side sessions and the failed-login throttle, kept in the state store.

Both live in the store shared by the worker processes (state/store.py), so a session made by one
worker is good in every other, and failed logins add up whichever worker answers them.

A session cookie holds only an opaque random id (256 bits). The store keys sessions by a SHA-256 of
that id, so the state file alone does not give usable cookies. A session ends after `idle`
seconds without a request or `absolute` seconds after the login, whichever comes first.
"""

from __future__ import annotations

import hashlib
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


class LoginThrottle:
    """At most `limit` failed logins per client address per `window` seconds, then a pause.

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
    ) -> None:
        self.store = store
        self.limit = limit
        self.window = window
        self.clock = clock

    def retry_after(self, client: str) -> int:
        """Seconds until `client` may try again (0: it may try now)."""
        raw = self.store.get("login-block:" + client)
        if raw is None:
            return 0
        try:
            until = float(raw)
        except ValueError:
            return 0
        return max(1, math.ceil(until - self.clock()))

    def _block(self, client: str) -> int:
        until = self.clock() + self.window
        self.store.set("login-block:" + client, repr(until).encode(), ttl=self.window)
        self.store.delete("login-fail:" + client)
        return math.ceil(self.window)

    def attempt(self, client: str) -> int:
        """Start an attempt: 0 if `client` may check a password now, else the seconds to wait."""
        wait = self.retry_after(client)
        if wait:
            return wait
        if self.store.incr("login-fail:" + client, ttl=self.window) > self.limit:
            return self._block(client)
        return 0

    def failed(self, client: str) -> int:
        """The attempt failed: the seconds `client` must now wait (0 if it may try again)."""
        if self.store.get_int("login-fail:" + client) >= self.limit:
            return self._block(client)
        return 0

    def succeeded(self, client: str) -> None:
        """Forget the failures of `client` after a good password."""
        self.store.delete("login-fail:" + client)
