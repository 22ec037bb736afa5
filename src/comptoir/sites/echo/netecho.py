"""RFC 862 echo over TCP and UDP, run by the main process as services (services.py).

TCP: every byte a client sends comes back until it closes. Each connection is an asyncio
BufferedProtocol rather than a stream pair, so memory stays bounded whatever a client does:
- reads go into one buffer of `READ_SIZE` bytes shared by every connection (asyncio's default
  would allocate up to 256 KiB per read);
- a client that sends without reading fills our write buffer; past `HIGH_WATER` bytes we stop
  reading from it (the kernel's buffers then push back on the sender), and if it still has not
  read after `stall_timeout` seconds it is disconnected. A client thus costs at most
  `HIGH_WATER + READ_SIZE` bytes of echo held for it;
- a client silent for `idle_timeout` seconds is disconnected;
- beyond `max_connections` clients, a new connection is accepted and closed at once (the client
  sees an immediate end of stream instead of hanging in the listen backlog). The open-files limit
  is raised at start to fit them, as Go programs (Caddy) do; where the hard limit is lower, the
  service holds as many as it allows and says so once.

UDP: each datagram is answered with itself; when the socket cannot send as fast as datagrams
arrive, the excess is dropped rather than queued (UDP promises no delivery anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from typing import Any, cast

from comptoir.config import ALL_INTERFACES
from comptoir.errors import ConfigError
from comptoir.netinfo import primary_address
from comptoir.terminal import write_line

# Echoed bytes we hold for one TCP client before we stop reading from it. One read may add up to
# READ_SIZE past this mark, so a connection costs at most HIGH_WATER + READ_SIZE (48 KiB).
HIGH_WATER = 32 * 1024
READ_SIZE = 16 * 1024
# File descriptors left for everything else the main process opens (listeners, the redirect
# service's clients, pipes to the workers) when the open-files limit caps the echo clients.
FD_RESERVE = 64
# Bytes of UDP replies we hold when the socket is full; datagrams beyond are dropped.
UDP_BUFFER = 256 * 1024


def bind_listener(host: str, port: int, kind: socket.SocketKind) -> socket.socket:
    """A bound socket (TCP or UDP) on `host`; all interfaces is one dual-stack socket.

    Raises ConfigError with a one-line reason when binding is impossible.
    """
    wildcard = host in (ALL_INTERFACES, "")
    proto = "tcp" if kind == socket.SOCK_STREAM else "udp"
    addr: tuple[Any, ...]
    try:
        if wildcard:
            family, addr = _wildcard_address(port)
        else:
            infos = socket.getaddrinfo(host, port, type=kind, flags=socket.AI_PASSIVE)
            family, _, _, _, addr = infos[0]
    except socket.gaierror as exc:
        raise ConfigError(f"cannot listen on {host!r}: {exc.strerror}") from None
    except (UnicodeError, ValueError):
        # getaddrinfo's IDNA step refuses empty or over-long labels (`a..b`).
        raise ConfigError(f"cannot listen on {host!r}: not a valid host name") from None
    sock = socket.socket(family, kind)
    try:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if wildcard else 1)
        sock.bind(addr)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"{proto} echo: port {port} is already in use; try 0") from None
        if exc.errno == errno.EACCES:
            raise ConfigError(
                f"{proto} echo: permission denied for port {port} (below 1024 needs privileges)"
            ) from None
        raise ConfigError(f"{proto} echo: cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.setblocking(False)
    return sock


def _wildcard_address(port: int) -> tuple[socket.AddressFamily, tuple[Any, ...]]:
    if socket.has_ipv6:
        try:
            with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
                probe.bind(("::1", 0))
            return socket.AF_INET6, ("::", port, 0, 0)
        except OSError:
            pass
    return socket.AF_INET, ("0.0.0.0", port)


def connection_capacity(wanted: int) -> int:
    """How many TCP clients this process can hold, at most `wanted`.

    Each client is a file descriptor. The soft open-files limit (often 1024) is raised toward
    `wanted` as far as the hard limit allows, like Go's runtime does for Caddy; what remains
    below `wanted` is the real capacity.
    """
    try:
        import resource
    except ImportError:  # not a Unix: no limit to raise here
        return wanted
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = wanted + FD_RESERVE
    infinite = resource.RLIM_INFINITY
    if soft != infinite and soft < needed:
        target = needed if hard == infinite else min(hard, needed)
        # Refused (a hard limit or a sandbox): the clients that fit the current one are allowed.
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    if soft == infinite:
        return wanted
    return max(1, min(wanted, soft - FD_RESERVE))


def shown_address(scheme: str, host: str, sock: socket.socket) -> str:
    """The address to print for a listener, e.g. `tcp://127.0.0.1:7`."""
    port = sock.getsockname()[1]
    if host in (ALL_INTERFACES, "", "0.0.0.0"):
        host = primary_address() or "127.0.0.1"
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port}"


class TCPEcho:
    """The RFC 862 TCP echo service."""

    name = "tcp echo"

    def __init__(
        self,
        host: str,
        port: int,
        *,
        idle_timeout: float = 60.0,
        stall_timeout: float = 10.0,
        max_connections: int = 10_000,
        high_water: int = HIGH_WATER,
    ) -> None:
        self.host = host
        self.port = port
        self.idle_timeout = idle_timeout
        self.stall_timeout = stall_timeout
        self.max_connections = max_connections
        # Lowered at start when the open-files limit cannot hold max_connections.
        self.capacity = max_connections
        self.high_water = high_water
        self.connections: set[TCPEchoConnection] = set()
        self.refused = 0
        self.server: asyncio.Server | None = None
        # Every connection reads into this one buffer: get_buffer and buffer_updated run back to
        # back in one callback of the event loop, and the bytes are copied out before it returns.
        self.read_buffer = bytearray(READ_SIZE)

    async def start(self) -> list[str]:
        """Bind and start serving; return the address to show."""
        self.capacity = connection_capacity(self.max_connections)
        if self.capacity < self.max_connections:
            write_line(
                f"comptoir: warning: tcp echo: the open-files limit allows {self.capacity}"
                f" clients, not --max-connections {self.max_connections} (raise `ulimit -n`)"
            )
        sock = bind_listener(self.host, self.port, socket.SOCK_STREAM)
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: TCPEchoConnection(self), sock=sock, backlog=1024
        )
        return [shown_address("tcp", self.host, sock)]

    @property
    def sockets(self) -> list[socket.socket]:
        """The listening sockets (for tests and the banner)."""
        return list(self.server.sockets) if self.server else []

    async def stop(self) -> None:
        """Stop listening and drop every connection."""
        if self.server is None:
            return
        self.server.close()
        for conn in list(self.connections):
            conn.abort()
        await self.server.wait_closed()
        self.server = None


class TCPEchoConnection(asyncio.BufferedProtocol):
    """One TCP echo client."""

    def __init__(self, service: TCPEcho) -> None:
        self.service = service
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()
        self.last_activity = self.loop.time()
        self.idle_timer: asyncio.TimerHandle | None = None
        self.stall_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Take the client, or close at once when the service is full."""
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        service = self.service
        if len(service.connections) >= service.capacity:
            service.refused += 1
            transport.close()
            return
        service.connections.add(self)
        transport.set_write_buffer_limits(high=service.high_water, low=service.high_water // 4)
        self.idle_timer = self.loop.call_later(service.idle_timeout, self._check_idle)

    def get_buffer(self, sizehint: int) -> bytearray:
        """Where the next read goes: the service's shared buffer."""
        return self.service.read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        """Send the bytes just read straight back."""
        assert self.transport is not None
        self.last_activity = self.loop.time()
        # A copy: the transport may keep what it cannot send at once, and the buffer is reused.
        self.transport.write(bytes(memoryview(self.service.read_buffer)[:nbytes]))

    def eof_received(self) -> bool:
        """The client is done sending: close once its echo has been written."""
        return False

    def pause_writing(self) -> None:
        """Our buffer for this client is full: stop reading until it reads, or give up."""
        assert self.transport is not None
        self.transport.pause_reading()
        self.stall_timer = self.loop.call_later(self.service.stall_timeout, self.abort)

    def resume_writing(self) -> None:
        """The client caught up: read again."""
        assert self.transport is not None
        if self.stall_timer is not None:
            self.stall_timer.cancel()
            self.stall_timer = None
        if not self.transport.is_closing():
            self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the client."""
        self.service.connections.discard(self)
        for timer in (self.idle_timer, self.stall_timer):
            if timer is not None:
                timer.cancel()

    def _check_idle(self) -> None:
        # One timer per connection, re-armed lazily, instead of a new timer per read.
        left = self.last_activity + self.service.idle_timeout - self.loop.time()
        if left > 0:
            self.idle_timer = self.loop.call_later(left, self._check_idle)
            return
        assert self.transport is not None
        if self.transport.get_write_buffer_size():
            self.abort()
        else:
            self.transport.close()

    def abort(self) -> None:
        """Drop the connection now, discarding what was not sent."""
        if self.transport is not None:
            self.transport.abort()


class UDPEcho:
    """The RFC 862 UDP echo service."""

    name = "udp echo"

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.transport: asyncio.DatagramTransport | None = None
        self.dropped = 0

    async def start(self) -> list[str]:
        """Bind and start answering; return the address to show."""
        sock = bind_listener(self.host, self.port, socket.SOCK_DGRAM)
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(
            lambda: UDPEchoProtocol(self), sock=sock
        )
        return [shown_address("udp", self.host, sock)]

    async def stop(self) -> None:
        """Stop answering."""
        if self.transport is not None:
            self.transport.close()
            self.transport = None


# Source ports of services that answer whatever they get (echo, daytime, chargen, time...), and
# the privileged range they live in: a datagram "from" one of them, spoofed, would make two such
# services answer each other forever (RFC 862's echo/chargen loop). Clients send from high ports.
_PRIVILEGED_PORTS = 1024


def _loop_risk(source: tuple[str | int, ...], own: object) -> bool:
    """True for a datagram that must not be answered: from a low port, or from ourselves."""
    port = source[1] if len(source) > 1 else 0
    if not isinstance(port, int) or port < _PRIVILEGED_PORTS:
        return True
    # Same port as ours: ourselves (a spoofed source), or another echo on this port.
    return isinstance(own, tuple) and len(own) > 1 and port == own[1]


class UDPEchoProtocol(asyncio.DatagramProtocol):
    """Answers each datagram with itself."""

    def __init__(self, service: UDPEcho) -> None:
        self.service = service
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport."""
        # asyncio's selector datagram transport does not subclass DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        """Send the datagram back where it came from (unless that would start a loop)."""
        assert self.transport is not None
        if _loop_risk(addr, self.transport.get_extra_info("sockname")):
            self.service.dropped += 1
            return
        # asyncio's datagram transports keep what the socket could not take yet in a buffer
        # (typeshed does not declare its size method on DatagramTransport).
        buffered: int = getattr(self.transport, "get_write_buffer_size", lambda: 0)()
        if buffered > UDP_BUFFER:
            self.service.dropped += 1
            return
        self.transport.sendto(data, addr)

    def error_received(self, exc: Exception) -> None:
        """An ICMP error for an earlier reply (peer gone): nothing to do for an echo."""
