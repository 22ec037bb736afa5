"""What one client may hold in a worker: requests in flight, and a request body's pace.

granian caps the connections of a worker (`--worker-connections`) and closes those that send no
request head (`--header-timeout`, server.py), but it counts no client apart and times no body: a
client could keep every request slot of a worker, or a PUT could send 3 bytes of 100,000 and hold
its connection, its part file and descriptors forever. This layer, between the worker's outer app
and the host router, sees every request the fast path did not answer:

- requests in progress are counted per client address — an IPv6 address by its /64, what one
  machine is usually given — and in all; beyond `--max-client-requests` for the address, or as
  many requests as the worker holds connections (HTTP/2 carries many on one), the request is
  answered 503 with `Retry-After` at once, and its connection closed;
- `receive()` of a request whose body is not complete waits `--body-timeout` at most for the next
  chunk, then raises `BodyTimeout` (408) to the site reading it (receive removes the part file).
  Once the body has ended, `receive()` is passed through untimed: a download waiting for the
  client's disconnect is not a stalled body.
"""

from __future__ import annotations

import asyncio
import socket

from comptoir.config import ServerOptions
from comptoir.errors import BodyTimeout, HTTPError
from comptoir.types import ASGIApp, Message, Receive, Scope, Send

# How long a refused client is asked to wait: requests of the same client end meanwhile.
RETRY_AFTER = "5"
# The first 12 bytes of an IPv4 address in an IPv6 socket (::ffff:a.b.c.d).
_V4_MAPPED = bytes(10) + b"\xff\xff"


def client_key(host: str) -> str | bytes:
    """What requests of one client are counted under: an IPv4 address, an IPv6 /64."""
    if ":" not in host:
        return host
    try:
        packed = socket.inet_pton(socket.AF_INET6, host.partition("%")[0])
    except (OSError, ValueError):
        return host
    if packed[:12] == _V4_MAPPED:
        return socket.inet_ntop(socket.AF_INET, packed[12:])
    return packed[:8]


class PacedBody:
    """A request's `receive`, raising BodyTimeout when the body stalls for `timeout` seconds."""

    __slots__ = ("_receive", "ended", "timeout")

    def __init__(self, receive: Receive, timeout: float) -> None:
        self._receive = receive
        self.timeout = timeout
        self.ended = False

    async def __call__(self) -> Message:
        """The next message: within `timeout` while the body lasts, then whenever it comes."""
        if self.ended:
            return await self._receive()
        try:
            async with asyncio.timeout(self.timeout):
                message = await self._receive()
        except TimeoutError:
            # Nothing more is read from this request: a second call fails at once too.
            self._receive = _timed_out(self.timeout)
            raise BodyTimeout(self.timeout) from None
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.ended = True
        return message


def _timed_out(seconds: float) -> Receive:
    async def receive() -> Message:
        raise BodyTimeout(seconds)

    return receive


class ClientLimits:
    """The layer counting requests per client and in all, and pacing request bodies."""

    def __init__(self, app: ASGIApp, *, per_client: int, in_all: int, body_timeout: float) -> None:
        self.app = app
        self.per_client = per_client
        self.in_all = in_all
        self.body_timeout = body_timeout
        # Requests in progress per client key (absent: none), and in all.
        self.counts: dict[str | bytes, int] = {}
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Count the request in, or refuse it (503); pass it on with a paced body."""
        client = scope.get("client")
        key = client[0] if client else ""
        if ":" in key:
            key = client_key(key)
        counts = self.counts
        held = counts.get(key, 0)
        if held >= self.per_client or self.in_flight >= self.in_all:
            # Raised, not answered here: the worker's outer app answers (an HTTP 503, or a
            # WebSocket handshake refused) and logs it.
            whom = "this client has" if held >= self.per_client else "the server has"
            raise HTTPError(
                503,
                f"Too many requests in progress: {whom} too many; try again",
                {"Retry-After": RETRY_AFTER, "Connection": "close"},
            )
        counts[key] = held + 1
        self.in_flight += 1
        try:
            if scope["type"] == "http":
                receive = PacedBody(receive, self.body_timeout)
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
            held = counts[key] - 1
            if held:
                counts[key] = held
            else:
                del counts[key]


def client_limits(app: ASGIApp, server: ServerOptions) -> ClientLimits:
    """The layer with the server's options: a client gets half a worker's connections at most."""
    per_client = min(server.max_client_requests, max(1, server.worker_connections // 2))
    return ClientLimits(
        app,
        per_client=per_client,
        in_all=server.worker_connections,
        body_timeout=server.body_timeout,
    )
