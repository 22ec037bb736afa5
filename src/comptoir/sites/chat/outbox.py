"""What a connection sends, queued with bounds, and how fast it may send (token bucket).

A chat's broadcast must never wait for one slow reader: delivering an event only puts a frame in
each connection's `Outbox`, and the connection's own writer task sends it. The queue is bounded
in frames and bytes; an event that would go past either bound marks the connection as too slow
(it is then closed) instead of growing the server's memory — unlike the `websockets` library's
`broadcast()`, which keeps writing into every buffer. The connection's own replies (history, a
recovery) wait for room in the queue instead, since only that connection waits for them.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable


class Outbox:
    """A bounded queue of text frames and the task that sends them."""

    def __init__(
        self, send: Callable[[str], Awaitable[None]], max_bytes: int, max_frames: int
    ) -> None:
        self.send = send
        self.max_bytes = max_bytes
        self.max_frames = max_frames
        self.frames: deque[str] = deque()
        self.size = 0
        self.overflowed = False
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()

    def _fits(self, frame: str) -> bool:
        # One frame larger than the bound still goes out when the queue is empty.
        if not self.frames:
            return True
        return len(self.frames) < self.max_frames and self.size + len(frame) <= self.max_bytes

    def put(self, frame: str) -> bool:
        """Queue a frame now; False (and `overflowed`) when the bounds would be passed."""
        if self.overflowed:
            return False
        if not self._fits(frame):
            self.overflowed = True
            return False
        self._append(frame)
        return True

    async def put_wait(self, frame: str) -> None:
        """Queue a frame, waiting for room first (for the connection's own replies)."""
        while not self._fits(frame):
            self._room.clear()
            await self._room.wait()
        self._append(frame)

    def _append(self, frame: str) -> None:
        self.frames.append(frame)
        self.size += len(frame)
        self._ready.set()

    async def run(self) -> None:
        """Send the queued frames, in order, until cancelled or the send fails."""
        while True:
            if not self.frames:
                self._ready.clear()
                await self._ready.wait()
                continue
            frame = self.frames.popleft()
            self.size -= len(frame)
            if self.size <= self.max_bytes // 2 and len(self.frames) <= self.max_frames // 2:
                self._room.set()
            await self.send(frame)


class TokenBucket:
    """`rate` tokens a second, at most `burst` saved: whether a frame may go now."""

    def __init__(
        self, rate: float, burst: float, now: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = max(burst, 1.0)
        self.tokens = self.burst
        self.now = now
        self.at = now()

    def take(self) -> bool:
        """Take one token if there is one."""
        t = self.now()
        self.tokens = min(self.burst, self.tokens + (t - self.at) * self.rate)
        self.at = t
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False
