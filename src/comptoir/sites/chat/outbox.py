"""What a connection sends, queued with bounds, and how fast it may send (token bucket).

A chat's broadcast must never wait for one slow reader: delivering an event only puts a frame in
each connection's `Outbox`, which never waits. What waits is bounded in frames and bytes; an
event that would go past either bound marks the connection as too slow (it is then closed)
instead of growing the server's memory — unlike the `websockets` library's `broadcast()`, which
keeps writing into every buffer. The connection's own replies (history, a recovery) wait for
room instead, since only that connection waits for them.

**Two ways to send.** Under granian (the worker's app gives the server's own send: FRAMES),
`DirectOutbox` hands each frame to the server at once: granian's `websocket.send` starts the
write when it is called (a task on the worker's Rust runtime) and returns a future-like that
need not be awaited — unawaited, its completion costs no wake-up of the event loop. The frames
a connection has in flight are its queue: they complete in the order they were given (granian's
single-threaded runtime starts its tasks in the order they were spawned, and each waits for the
connection's writer behind a fair lock, `ASGIWebsocketProtocol.send_message`), so the ones done
are dropped from the front. Awaiting each send from a writer task per connection, as the ASGI
spec has it, cost twice the CPU a delivery (docs/decisions.md, chat fan-out). Under any other
server (the tests' in-process ASGI), `QueuedOutbox` keeps the frames and its writer task awaits
each send.

Each send is also bounded in time. granian's send resolves once the frame is flushed to the socket
(tokio-tungstenite's `SplitSink::send`, a write and a flush): a client that stopped reading leaves
it pending once the kernel's buffers (up to `tcp_wmem`'s 4 MiB on Linux) are full, and a trickle of
events would never overflow the queue. A connection whose oldest frame has not gone for
`--send-timeout` (seen by the watch: up to a quarter of it later) is marked too slow as well; its
sends are cancelled, which drops granian's Rust futures (`future_into_py_futlike`) and frees the
connection's writer. The outboxes are watched by one task per event loop (`_Watch`), a few times a
timeout, rather than each send under its own timer: `asyncio.timeout()` around every send cost 10 µs
more a frame (uvloop), 10 ms for an event to 1,000 clients.

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
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

from comptoir.types import Send

# How long one frame may take to reach the client's socket, unless --send-timeout says otherwise.
SEND_TIMEOUT = 10.0
# Bytes a cut-off connection's socket may still hold and be closed normally (its close frame
# among them); beyond, the client is not reading and the connection is reset.
UNSENT_MAX = 64 * 1024


class Outbox(Protocol):
    """A connection's bounded way out (see the module)."""

    max_frames: int
    overflowed: bool

    def put(self, frame: str) -> bool:
        """Send a frame now; False (and `overflowed`) when the bounds would be passed."""
        ...

    async def put_wait(self, frame: str) -> None:
        """Send a frame, waiting for room first (for the connection's own replies)."""
        ...

    async def run(self) -> None:
        """Until cancelled: returns, with `overflowed` set, once the client was found too slow."""
        ...

    def check(self, now: float) -> None:
        """Mark the client too slow if its oldest frame has waited over the timeout (the watch)."""
        ...


def make_outbox(send: Send, max_bytes: int, max_frames: int, timeout: float) -> Outbox:
    """The outbox for a connection whose frames go out through `send` (see the module)."""
    owner = getattr(send, "__self__", None)
    if type(owner).__module__.startswith("granian."):
        return DirectOutbox(send, max_bytes, max_frames, timeout)
    return QueuedOutbox(send, max_bytes, max_frames, timeout)


class _Bounded(ABC):
    """What both outboxes share: the bounds, the overflow, the wait for room, the watch."""

    def __init__(self, send: Send, max_bytes: int, max_frames: int, timeout: float) -> None:
        self.send = send
        self.max_bytes = max_bytes
        self.max_frames = max_frames
        self.timeout = timeout
        self.size = 0  # bytes waiting
        self.overflowed = False
        self._ended = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()

    @abstractmethod
    def waiting(self) -> int:
        """Frames not gone yet."""

    @abstractmethod
    def _append(self, frame: str) -> None:
        """Send `frame` (or queue it for the writer): the bounds were checked."""

    @abstractmethod
    def check(self, now: float) -> None:
        """Mark the client too slow if its oldest frame has waited over the timeout (the watch)."""

    def _fits(self, frame: str) -> bool:
        # One frame larger than the bound still goes out when nothing waits.
        count = self.waiting()
        if not count:
            return True
        return count < self.max_frames and self.size + len(frame) <= self.max_bytes

    def put(self, frame: str) -> bool:
        """Send a frame now; False (and `overflowed`) when the bounds would be passed."""
        if self.overflowed:
            return False
        self._collect()
        if not self._fits(frame):
            self._overflow()
            return False
        self._append(frame)
        return True

    async def put_wait(self, frame: str) -> None:
        """Send a frame, waiting for room first (for the connection's own replies)."""
        while not self.overflowed:
            self._collect()
            if self._fits(frame):
                self._append(frame)
                return
            self._room.clear()
            await self._wait_room()

    @abstractmethod
    def _collect(self) -> None:
        """Forget the frames already gone."""

    async def _wait_room(self) -> None:
        await self._room.wait()

    def _overflow(self) -> None:
        # What waits will never be sent: its memory goes now, not when the connection ends.
        self.overflowed = True
        self.size = 0
        self._ended.set()
        self._room.set()

    def _has_room(self) -> bool:
        return self.size <= self.max_bytes // 2 and self.waiting() <= self.max_frames // 2

    async def run(self) -> None:
        """Until cancelled: returns, with `overflowed` set, once the client was found too slow."""
        watch = _Watch.of_loop()
        watch.add(self)
        try:
            await self._serve()
        except asyncio.CancelledError:
            if not self.overflowed:
                raise  # cancelled by the session, not by the watch
        finally:
            watch.discard(self)

    async def _serve(self) -> None:
        await self._ended.wait()


class DirectOutbox(_Bounded):
    """Frames handed to granian at once; the ones in flight are the queue (see the module)."""

    def __init__(self, send: Send, max_bytes: int, max_frames: int, timeout: float) -> None:
        super().__init__(send, max_bytes, max_frames, timeout)
        # granian's future-likes of the frames in flight, and their sizes (two deques, not one
        # of pairs: a tuple per frame would be a container for the cyclic collector to follow).
        self.flying: deque[Any] = deque()
        self.sizes: deque[int] = deque()
        # Whether frames move is the watch's question, not the fan-out's: the fan-out only counts
        # the frames gone, and the watch notes when that count last changed (no clock per frame).
        self.gone = 0
        self.gone_seen = 0
        self.moved = 0.0  # when the watch last saw frames go, or none waiting (0: not yet)

    def waiting(self) -> int:
        """Frames not gone yet."""
        return len(self.flying)

    def put(self, frame: str) -> bool:
        """Send a frame now; False (and `overflowed`) when the bounds would be passed."""
        # The fan-out's path, once per connection per event: _Bounded.put, inlined.
        if self.overflowed:
            return False
        flying = self.flying
        if flying:
            if flying[0].done():
                self._collect()
            if flying and (
                len(flying) >= self.max_frames or self.size + len(frame) > self.max_bytes
            ):
                self._overflow()
                return False
        self._append(frame)
        return True

    def _append(self, frame: str) -> None:
        sent = self.send({"type": "websocket.send", "text": frame})
        if not hasattr(sent, "done"):
            # A ready-made answer (granian's empty, done or error awaitable): nothing in flight,
            # the connection is closing and its reader will see it.
            return
        self.flying.append(sent)
        self.sizes.append(len(frame))
        self.size += len(frame)

    def _collect(self) -> None:
        # (`_room` is not used here: a reply waits on the oldest frame itself, `_wait_room`.)
        flying = self.flying
        while flying and flying[0].done():
            flying.popleft()
            self.size -= self.sizes.popleft()
            self.gone += 1

    async def _wait_room(self) -> None:
        # The oldest frame's completion is awaited (one waiter: granian's future-like keeps one
        # callback), or the overflow, whichever comes first.
        oldest = self.flying[0]
        ended = asyncio.ensure_future(self._ended.wait())
        try:
            await asyncio.wait([oldest, ended], return_when=asyncio.FIRST_COMPLETED)
        finally:
            ended.cancel()

    def _overflow(self) -> None:
        # The frames still in flight are dropped: granian's Rust futures end, freeing the writer.
        for future in self.flying:
            future.cancel()
        self.flying.clear()
        self.sizes.clear()
        super()._overflow()

    def check(self, now: float) -> None:
        """Mark the client too slow if its oldest frame has waited over the timeout (the watch)."""
        if self.overflowed:
            return
        self._collect()
        if not self.flying or self.gone != self.gone_seen or not self.moved:
            self.gone_seen = self.gone
            self.moved = now
        elif now - self.moved > self.timeout:
            self._overflow()


class QueuedOutbox(_Bounded):
    """Frames kept here; the writer task (`run`) awaits each send (see the module)."""

    def __init__(self, send: Send, max_bytes: int, max_frames: int, timeout: float) -> None:
        super().__init__(send, max_bytes, max_frames, timeout)
        self.frames: deque[str] = deque()
        self.since = 0.0  # when the send in progress began (0: none)
        self.writer: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    def waiting(self) -> int:
        """Frames not gone yet."""
        return len(self.frames)

    def _collect(self) -> None:
        """Nothing to forget: a queued frame leaves the queue as its send begins."""

    def _append(self, frame: str) -> None:
        self.frames.append(frame)
        self.size += len(frame)
        self._ready.set()

    def _overflow(self) -> None:
        self.frames.clear()
        super()._overflow()
        self._ready.set()  # the writer wakes up to end

    def check(self, now: float) -> None:
        """Mark the client too slow if its send in progress has taken over the timeout."""
        if self.since and now - self.since > self.timeout and not self.overflowed:
            self._overflow()
            if self.writer is not None:
                self.writer.cancel()

    async def _serve(self) -> None:
        """Send the queued frames, in order, until the queue overflows or the send fails."""
        self.writer = asyncio.current_task()
        send = self.send
        try:
            while not self.overflowed:
                if not self.frames:
                    self._ready.clear()
                    await self._ready.wait()
                    continue
                frame = self.frames.popleft()
                self.size -= len(frame)
                if self._has_room():
                    self._room.set()
                self.since = time.monotonic()
                await send({"type": "websocket.send", "text": frame})
                self.since = 0.0
        finally:
            self.writer = None


class _Watch:
    """The outboxes of one event loop, checked a few times a timeout."""

    _loops: ClassVar[dict[asyncio.AbstractEventLoop, _Watch]] = {}

    def __init__(self) -> None:
        self.outboxes: set[_Bounded] = set()
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

    def add(self, outbox: _Bounded) -> None:
        self.outboxes.add(outbox)
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run())

    def discard(self, outbox: _Bounded) -> None:
        self.outboxes.discard(outbox)

    async def _run(self) -> None:
        # Ends with the last outbox; the next one starts it again.
        while self.outboxes:
            await asyncio.sleep(min(o.timeout for o in self.outboxes) / 4)
            now = time.monotonic()
            for outbox in list(self.outboxes):
                outbox.check(now)


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
