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


def test_claims_are_leases_on_a_limited_number_of_places(tmp_path: Path) -> None:
    clock = FakeClock()
    store = StateStore(str(tmp_path / "state.db"), clock=clock)
    other = StateStore(str(tmp_path / "state.db"), clock=clock)  # another worker's connection
    assert store.claim("slots:", "slots:a", 2, ttl=30)
    assert other.claim("slots:", "slots:b", 2, ttl=30)
    assert not store.claim("slots:", "slots:c", 2, ttl=30)
    # Keys of other prefixes do not count.
    assert store.claim("other:", "other:x", 1, ttl=30)
    # a completes (kept for good), b is renewed, then its holder dies and stops renewing.
    assert store.expire("slots:a", None)
    clock.now += 20
    assert other.expire("slots:b", 30)
    clock.now += 29
    assert not store.claim("slots:", "slots:c", 2, ttl=30)
    clock.now += 2
    assert not store.expire("slots:b", 30)  # gone: too late to renew
    assert store.claim("slots:", "slots:c", 2, ttl=30)
    assert store.delete("slots:c")  # given back
    assert other.claim("slots:", "slots:d", 2, ttl=30)
    assert store.keys("slots:") == ["slots:a", "slots:d"]
