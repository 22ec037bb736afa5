"""A small key-value store with expiry and atomic counters, on SQLite.

Worker processes are separate, so anything that must be shared between them (download counters,
sessions, login attempts) goes here. Each worker opens its own connection to one database file that
the main process creates before the workers start; `:memory:` gives a private store for a single
process (and for in-process tests). Operations are short transactions in WAL mode, fast enough to
call from the event loop.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable

# Expired keys are deleted when read; those never read again (a session left to expire, the
# failed logins of a client that went away) are deleted by a purge, at most this often, that
# comes with a write: only writes add keys, so a store that is written to is also kept small.
PURGE_INTERVAL = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    expires REAL
);
CREATE INDEX IF NOT EXISTS kv_expires ON kv(expires);
"""


class StateStore:
    """Key-value store with optional expiry; values are bytes, counters are integers."""

    def __init__(self, path: str = ":memory:", clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.clock = clock
        # One connection per store; the lock makes it safe from threads (to_thread callers).
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            path, timeout=10.0, isolation_level=None, check_same_thread=False
        )
        if path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._next_purge = clock() + PURGE_INTERVAL

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()

    def _live(self, key: str, now: float) -> bytes | None:
        row = self._db.execute("SELECT value, expires FROM kv WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        value, expires = row
        if expires is not None and expires <= now:
            self._db.execute("DELETE FROM kv WHERE key = ?", (key,))
            return None
        return bytes(value)

    def get(self, key: str) -> bytes | None:
        """The value of `key`, or None if absent or expired."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                return self._live(key, self.clock())
            finally:
                self._db.execute("COMMIT")

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Set `key`, expiring after `ttl` seconds (never if None)."""
        now = self.clock()
        expires = None if ttl is None else now + ttl
        with self._lock:
            self._purge_due(now)
            self._db.execute(
                "INSERT OR REPLACE INTO kv (key, value, expires) VALUES (?, ?, ?)",
                (key, value, expires),
            )

    def delete(self, key: str) -> bool:
        """Delete `key`; True if it existed."""
        with self._lock:
            cur = self._db.execute("DELETE FROM kv WHERE key = ?", (key,))
            return cur.rowcount > 0

    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        """Atomically add `amount` to the integer at `key` (0 if absent); return the new value.

        `ttl` sets the expiry when the key is created; an existing key keeps its expiry.
        """
        return self._add(key, amount, ttl, limit=None)  # type: ignore[return-value]

    def incr_below(
        self, key: str, limit: int, amount: int = 1, ttl: float | None = None
    ) -> int | None:
        """Atomically add `amount` unless the result would exceed `limit`; the new value or None.

        This is how a limited resource is taken: `incr_below(k, limit)` succeeds for exactly
        `limit` callers, whichever worker process they run in.
        """
        return self._add(key, amount, ttl, limit=limit)

    def _add(self, key: str, amount: int, ttl: float | None, limit: int | None) -> int | None:
        now = self.clock()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                raw = self._live(key, now)
                current = int(raw) if raw is not None else 0
                new = current + amount
                if limit is not None and new > limit:
                    return None
                if raw is None:
                    self._purge_due(now)
                    expires = None if ttl is None else now + ttl
                    self._db.execute(
                        "INSERT OR REPLACE INTO kv (key, value, expires) VALUES (?, ?, ?)",
                        (key, str(new).encode(), expires),
                    )
                else:
                    self._db.execute(
                        "UPDATE kv SET value = ? WHERE key = ?", (str(new).encode(), key)
                    )
                return new
            finally:
                self._db.execute("COMMIT")

    def claim(self, prefix: str, key: str, limit: int, ttl: float) -> bool:
        """Atomically set `key` (under `prefix`), expiring after `ttl`, if fewer than `limit` live
        keys start with `prefix`; True if it was set.

        A lease on one of `limit` places: its holder renews it (`expire`) while it lives, and a
        holder that died without giving it back loses it `ttl` seconds later.
        """
        now = self.clock()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                (held,) = self._db.execute(
                    "SELECT COUNT(*) FROM kv WHERE key >= ? AND key < ?"
                    " AND (expires IS NULL OR expires > ?)",
                    (prefix, prefix + "\U0010ffff", now),
                ).fetchone()
                if held >= limit:
                    return False
                self._purge_due(now)
                self._db.execute(
                    "INSERT OR REPLACE INTO kv (key, value, expires) VALUES (?, ?, ?)",
                    (key, b"1", now + ttl),
                )
                return True
            finally:
                self._db.execute("COMMIT")

    def expire(self, key: str, ttl: float | None) -> bool:
        """Make a live `key` expire `ttl` seconds from now (never if None); False if it is gone."""
        now = self.clock()
        expires = None if ttl is None else now + ttl
        with self._lock:
            cur = self._db.execute(
                "UPDATE kv SET expires = ? WHERE key = ? AND (expires IS NULL OR expires > ?)",
                (expires, key, now),
            )
            return cur.rowcount > 0

    def get_int(self, key: str) -> int:
        """The integer at `key` (0 if absent or expired)."""
        raw = self.get(key)
        return int(raw) if raw is not None else 0

    def keys(self, prefix: str) -> list[str]:
        """Live keys starting with `prefix`, sorted."""
        now = self.clock()
        with self._lock:
            rows = self._db.execute(
                "SELECT key FROM kv WHERE key >= ? AND key < ? AND (expires IS NULL OR expires > ?)"
                " ORDER BY key",
                (prefix, prefix + "\U0010ffff", now),
            ).fetchall()
        return [r[0] for r in rows]

    def _purge_due(self, now: float) -> None:
        """Delete expired keys if the last purge is PURGE_INTERVAL old (called holding the lock)."""
        if now >= self._next_purge:
            self._next_purge = now + PURGE_INTERVAL
            self._db.execute("DELETE FROM kv WHERE expires IS NOT NULL AND expires <= ?", (now,))


def open_store(path: str | None) -> StateStore:
    """Open the shared store at `path` (a file made by the main process), or a private one."""
    return StateStore(path or ":memory:")
