"""--count and --expire: how many complete downloads each file (and the archive) may have, and until
when the share answers.

How downloads count (the README says the same):

- A request that would send the **last byte** of a file or archive — a whole download, or a Range
  reaching the end (`curl -C -`, the last segment of a parallel download) — takes a slot when it
  starts. If that last byte is sent, the download is complete and the slot stays used; if the
  transfer is cut, the slot is given back, so the download can be resumed and counts once when
  it completes.
- A Range ending before the last byte (`curl -r 0-999`, the other segments of a parallel
  download) takes no slot and completes nothing; it is answered while the file still has a
  complete download left.
- HEAD, 304 Not Modified, 412 and 416 answers send no body and count for nothing.
- An archive answers a request for several ranges with all of itself (it is remade up to each
  range, so it offers no multipart answers): that answer sends the last byte, and counts.

Which of these an answer is, is decided once by http/plan.py: the share takes its slot from the
very plan it then sends (download.py), so what counts and what reaches the client cannot differ.

Slots live in the state store shared by the worker processes, as leases (`StateStore.claim`): a
download that would complete takes one only while fewer than `count` are held (in flight or
completed), so concurrent downloads race correctly for the last one: with `--count 1`, of five
simultaneous downloads exactly one gets the file and the others `410 Gone`. Once all are held, the
file answers 410 until a transfer that did not complete gives its slot back.

A slot in flight is a lease of LEASE_TTL seconds that its worker renews while the transfer lives
(download.py), and a completed download's slot is kept for good. So a worker that dies in the
middle of a transfer (killed, crashed) gives its slots back by itself, LEASE_TTL later; and a
transfer that makes no progress for the share's stall timeout is cut, which gives its slot back
too (download.py): a client that stops reading cannot hold a `--once` link.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from comptoir.errors import HTTPError
from comptoir.state import StateStore


@dataclass(frozen=True)
class Availability:
    """Why a download may not start, for the 410 page: expired or used up."""

    ok: bool
    reason: str = ""


# How long a download's slot stays held after its worker last renewed it (download.py renews it
# every third of that): what a dead worker's transfer keeps a slot for.
LEASE_TTL = 30.0

AVAILABLE = Availability(True)
EXPIRED = Availability(False, "This link has expired.")
USED_UP = Availability(False, "This has already been downloaded as many times as allowed.")


class Gone(HTTPError):
    """410: the link expired, or what was asked for has no complete download left."""

    def __init__(self, availability: Availability) -> None:
        super().__init__(410, availability.reason)


class DownloadSlots:
    """Complete-download counts per file or archive, and the share's expiry, across workers."""

    def __init__(
        self,
        store: StateStore,
        share_id: str,
        count: int | None,
        expire: float | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.key = f"share:{share_id}:"
        self.count = count
        self.clock = clock
        self.deadline = self._deadline(expire) if expire is not None else None

    def _deadline(self, expire: float) -> float:
        """When the share expires: fixed by the first worker to start, read by the others."""
        key = self.key + "deadline"
        raw = self.store.get(key)
        if raw is not None:
            return float(raw)
        deadline = self.clock() + expire
        self.store.set(key, repr(deadline).encode())
        return deadline

    def _unit_key(self, kind: str, unit: str) -> str:
        # Names may hold anything (even undecodable bytes): the store sees a digest.
        digest = hashlib.sha256(unit.encode("utf-8", "surrogateescape")).hexdigest()[:32]
        return f"{self.key}{kind}:{digest}"

    def expired(self) -> bool:
        """True once --expire has passed."""
        return self.deadline is not None and self.clock() >= self.deadline

    def seconds_left(self) -> float | None:
        """Seconds until expiry (None without --expire)."""
        return None if self.deadline is None else max(0.0, self.deadline - self.clock())

    def completed(self, unit: str) -> int:
        """Complete downloads of `unit` so far (all workers)."""
        return self.store.get_int(self._unit_key("done", unit))

    def left(self, unit: str) -> int | None:
        """Complete downloads `unit` may still have (None: unlimited)."""
        if self.count is None:
            return None
        return max(0, self.count - self.completed(unit))

    def used_up(self, unit: str) -> bool:
        """True when `unit` has had all its complete downloads."""
        return self.count is not None and self.completed(unit) >= self.count

    def check(self, unit: str) -> Availability:
        """May a request for `unit` be answered at all (expiry, complete downloads left)?"""
        if self.expired():
            return EXPIRED
        if self.used_up(unit):
            return USED_UP
        return AVAILABLE

    def take(self, unit: str) -> str | None:
        """Take a slot for a download that would complete `unit`: the slot's key to renew, give
        back or complete (None without --count); Gone when none is left."""
        available = self.check(unit)
        if not available.ok:
            raise Gone(available)
        if self.count is None:
            return None
        prefix = self._unit_key("slots", unit) + ":"
        slot = prefix + secrets.token_hex(8)
        if not self.store.claim(prefix, slot, self.count, LEASE_TTL):
            raise Gone(USED_UP)
        return slot

    def renew(self, slot: str) -> None:
        """Keep the slot of a download in flight for another LEASE_TTL."""
        self.store.expire(slot, LEASE_TTL)

    def give_back(self, slot: str) -> None:
        """Return the slot of a download that did not complete."""
        self.store.delete(slot)

    def complete(self, unit: str, slot: str | None) -> int:
        """Record a complete download of `unit` (its slot is kept for good); the new total."""
        if slot is not None:
            self.store.expire(slot, None)
        return self.store.incr(self._unit_key("done", unit))
