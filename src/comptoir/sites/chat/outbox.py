"""What a connection sends, queued with bounds, and how fast it may send (token bucket).

A chat's broadcast must never wait for one slow reader: delivering an event only puts a frame in
each connection's `Outbox`, and the connection's own writer task sends it. The queue is bounded
in frames and bytes; an event that would go past either bound marks the connection as too slow
(it is then closed) instead of growing the server's memory — unlike the `websockets` library's
`broadcast()`, which keeps writing into every buffer. The connection's own replies (history, a
recovery) wait for room in the queue instead, since only that connection waits for them.

Each send is also bounded in time. granian's `websocket.send` resolves once the frame is flushed
to the socket (`ASGIWebsocketProtocol.send_message` awaits tokio-tungstenite's `SplitSink::send`,
a write and a flush): a client that stopped reading leaves it pending once the kernel's buffers
(up to `tcp_wmem`'s 4 MiB on Linux) are full, and a trickle of events would never overflow the
queue. A send pending for `--send-timeout` marks the connection too slow as well; cancelling it
drops granian's Rust future (`future_into_py_futlike`), which frees the connection's writer.
The sends in progress are watched by one task per event loop (`_Watch`), a few times a timeout,
rather than each under its own timer: `asyncio.timeout()` around every send cost 10 µs more a
frame (uvloop), 10 ms for an event to 1,000 clients.

A cut-off client cannot take a close frame either: it waits behind the megabytes it does not
read, and granian then drops the socket with them still queued, a FIN-WAIT-1 orphan the kernel
keeps for minutes (granian's close has no timeout, and it "succeeds" once a send was dropped).
`abort_socket` finds the connection's socket in the worker (by its two addresses, Linux's /proc)
and, when more than `UNSENT_MAX` bytes are still waiting in it, resets it: the kernel frees its
buffers at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import socket
import struct
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

# How long one frame may take to reach the client's socket, unless --send-timeout says otherwise.
SEND_TIMEOUT = 10.0
# Bytes a cut-off connection's socket may still hold and be closed normally (its close frame
# among them); beyond, the client is not reading and the connection is reset.
UNSENT_MAX = 64 * 1024


class Outbox:
    """A bounded queue of text frames and the task that sends them."""

    def __init__(
        self,
        send: Callable[[str], Awaitable[None]],
        max_bytes: int,
        max_frames: int,
        timeout: float = SEND_TIMEOUT,
    ) -> None:
        self.send = send
        self.max_bytes = max_bytes
        self.max_frames = max_frames
        self.timeout = timeout
        self.frames: deque[str] = deque()
        self.size = 0
        self.overflowed = False
        self.since = 0.0  # when the send in progress began (0: none)
        self.writer: asyncio.Task[None] | None = None
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
            self._overflow()
            return False
        self._append(frame)
        return True

    async def put_wait(self, frame: str) -> None:
        """Queue a frame, waiting for room first (for the connection's own replies)."""
        while not self._fits(frame) and not self.overflowed:
            self._room.clear()
            await self._room.wait()
        if not self.overflowed:
            self._append(frame)

    def _overflow(self) -> None:
        # The frames will never be sent: their memory goes now, not when the connection ends.
        self.overflowed = True
        self.frames.clear()
        self.size = 0
        self._ready.set()  # the writer wakes up to end
        self._room.set()

    def stalled(self) -> None:
        """The send in progress took too long: the client is too slow, its writer ends."""
        self._overflow()
        if self.writer is not None:
            self.writer.cancel()

    def _append(self, frame: str) -> None:
        self.frames.append(frame)
        self.size += len(frame)
        self._ready.set()

    async def run(self) -> None:
        """Send the queued frames, in order, until cancelled or the send fails; returns, with
        `overflowed` set, when the queue overflowed or one send took longer than `timeout`."""
        self.writer = asyncio.current_task()
        watch = _Watch.of_loop()
        watch.add(self)
        try:
            while not self.overflowed:
                if not self.frames:
                    self._ready.clear()
                    await self._ready.wait()
                    continue
                frame = self.frames.popleft()
                self.size -= len(frame)
                if self.size <= self.max_bytes // 2 and len(self.frames) <= self.max_frames // 2:
                    self._room.set()
                self.since = time.monotonic()
                await self.send(frame)
                self.since = 0.0
        except asyncio.CancelledError:
            if not self.overflowed:
                raise  # cancelled by the session, not by the watch
        finally:
            watch.discard(self)
            self.writer = None


class _Watch:
    """The outboxes of one event loop, their sends in progress checked a few times a timeout."""

    _loops: ClassVar[dict[asyncio.AbstractEventLoop, _Watch]] = {}

    def __init__(self) -> None:
        self.outboxes: set[Outbox] = set()
        self.task: asyncio.Task[None] | None = None

    @classmethod
    def of_loop(cls) -> _Watch:
        loop = asyncio.get_running_loop()
        watch = cls._loops.get(loop)
        if watch is None:
            for other in [o for o in cls._loops if o.is_closed()]:
                del cls._loops[other]  # tests run many loops in one process
            watch = cls._loops[loop] = cls()
        return watch

    def add(self, outbox: Outbox) -> None:
        self.outboxes.add(outbox)
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run())

    def discard(self, outbox: Outbox) -> None:
        self.outboxes.discard(outbox)

    async def _run(self) -> None:
        # Ends with the last outbox; the next one starts it again.
        while self.outboxes:
            await asyncio.sleep(min(o.timeout for o in self.outboxes) / 4)
            now = time.monotonic()
            for outbox in list(self.outboxes):
                if outbox.since and now - outbox.since > outbox.timeout:
                    outbox.stalled()


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


def _address(value: Any) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int] | None:
    """(address, port) of a socket name or an ASGI scope's `client`/`server`, comparable."""
    if not isinstance(value, list | tuple) or len(value) < 2:
        return None
    try:
        address = ipaddress.ip_address(str(value[0]).split("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address, int(value[1])


def abort_socket(local: Any, peer: Any, unsent_max: int = UNSENT_MAX) -> bool:
    """Reset the TCP connection between `local` and `peer` (ASGI `server` and `client`) held by
    this process if more than `unsent_max` bytes wait in it: SO_LINGER 0 then shutdown, so that
    they are dropped, granian's pending writes fail at once and the close that follows sends a
    reset. Whether it was reset (False: not found — not Linux, or already gone — or the client
    reads). Each socket is compared on a duplicate of its descriptor, so the one reset is the one
    checked even if a number is reused meanwhile."""
    want = (_address(local), _address(peer))
    if None in want:
        return False
    try:
        fds = os.listdir("/proc/self/fd")
        import fcntl  # with /proc: Linux
        import termios
    except (OSError, ImportError):
        return False
    for name in fds:
        try:
            if not os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                continue
            dup = socket.socket(fileno=os.dup(int(name)))
        except (OSError, ValueError):
            continue
        with dup:
            try:
                if dup.type != socket.SOCK_STREAM:
                    continue
                if (_address(dup.getsockname()), _address(dup.getpeername())) != want:
                    continue
            except OSError:
                continue
            with contextlib.suppress(OSError):
                unsent = struct.unpack("i", fcntl.ioctl(dup, termios.TIOCOUTQ, b"\0" * 4))[0]
                if unsent <= unsent_max:
                    return False
                dup.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                dup.shutdown(socket.SHUT_RDWR)
                return True
            return False
    return False
