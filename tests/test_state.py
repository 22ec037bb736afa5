"""The state store: expiry, counters, and expired keys that do not pile up."""

from __future__ import annotations

from pathlib import Path

from comptoir.state.store import PURGE_INTERVAL, StateStore


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def rows(store: StateStore) -> int:
    """How many keys the database holds, live or expired."""
    return int(store._db.execute("SELECT count(*) FROM kv").fetchone()[0])


def test_keys_expire_and_counters_count() -> None:
    clock = FakeClock()
    store = StateStore(clock=clock)
    store.set("a", b"1", ttl=10)
    assert store.incr("n", ttl=10) == 1
    assert store.incr("n", 2) == 3
    assert store.incr_below("n", 4) == 4
    assert store.incr_below("n", 4) is None
    clock.now += 10
    assert store.get("a") is None
    assert store.get_int("n") == 0
    assert store.keys("") == []


def test_expired_keys_never_read_again_are_purged_by_later_writes(tmp_path: Path) -> None:
    clock = FakeClock()
    store = StateStore(str(tmp_path / "state.sqlite3"), clock=clock)
    # Sessions left to expire, failed logins of clients that went away: never read again.
    for i in range(100):
        store.set(f"session:{i}", b"x", ttl=30)
        store.incr(f"login-fail:{i}", ttl=30)
    store.set("kept", b"forever")
    assert rows(store) == 201
    clock.now += 31
    store.set("one-more", b"x", ttl=3600)  # the last purge is not PURGE_INTERVAL old yet
    assert rows(store) == 202
    clock.now += PURGE_INTERVAL
    store.incr("counter")  # any write that adds a key purges once due
    assert rows(store) == 3
    assert store.get("kept") == b"forever" and store.get("one-more") == b"x"
    assert store.get_int("counter") == 1
