"""Raw TCP line clients (`nc`, `telnet`): the same rooms as the WebSocket, a line at a time.

A main-process service beside the hub, on its event loop, using its core directly. Each line the
client sends is a `/command` (commands.py) or a message to its current room; each event comes back
as one line (protocol.line). Lines are UTF-8 (invalid bytes replaced), control characters removed;
a line longer than `--max-message` is refused and skipped up to its end, and a client silent for
`--idle-timeout` is disconnected, so one that sends without newlines for minutes holds at most
one line's bytes. A line begun must also end within `--idle-timeout`: a byte now and then keeps
a connection alive, never an unfinished line. With a server password, the client must give it
first.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from typing import TYPE_CHECKING, Any

from comptoir.config import ALL_INTERFACES
from comptoir.errors import ConfigError
from comptoir.sites.chat.broker import dispatch
from comptoir.sites.chat.commands import run_command
from comptoir.sites.chat.core import ChatCore, ChatError
from comptoir.sites.chat.fanout import Fanout
from comptoir.sites.chat.history import Event
from comptoir.sites.chat.outbox import TokenBucket
from comptoir.sites.chat.protocol import Outgoing, line
from comptoir.sites.chat.text import DEFAULT_ROOM, BadName, clean_text, parse_rate

if TYPE_CHECKING:
    from comptoir.security.sessions import LoginThrottle
    from comptoir.sites.chat import ChatOptions
    from comptoir.sites.chat.hub import ChatHub
    from comptoir.sites.contract import ServiceContext

# Lines of history a client gets when it enters a room.
RECENT = 20
# Bytes of lines waiting for a client that does not read, before it is disconnected.
BACKLOG = 256 * 1024
PASSWORD_TRIES = 3


# How often a client whose lines are dropped past --rate is told so.
RATE_ERROR_EVERY = 1.0


class LineTimeout(Exception):
    """A line begun and not ended in time (the message is the client's last line)."""


class ChatTCP:
    """The TCP door of a chat site (see the module)."""

    name = "chat-tcp"

    def __init__(self, options: ChatOptions, context: ServiceContext, hub: ChatHub) -> None:
        self.options = options
        self.context = context
        self.hub = hub
        self.fanout = Fanout()
        self.server: asyncio.AbstractServer | None = None
        self.subscriber = 0
        self.clients: set[TCPClient] = set()
        self.at_prompt: dict[str, int] = {}  # client key → connections at the password prompt
        self._throttle: LoginThrottle | None = None

    def throttle(self) -> LoginThrottle:
        """The web logins' throttle, on the run's state store (made once the workers' is)."""
        if self._throttle is None:
            from comptoir.security.sessions import LoginThrottle
            from comptoir.state import open_store

            run_dir = self.context.run_dir
            path = str(run_dir / "state.sqlite3") if run_dir is not None else None
            self._throttle = LoginThrottle(open_store(path))
        return self._throttle

    @property
    def core(self) -> ChatCore:
        """The hub's core (the hub starts first)."""
        assert self.hub.core is not None
        return self.hub.core

    async def start(self) -> list[str]:
        """Listen on the server's host; the address to show."""
        self.subscriber = self.core.subscribe(self.fanout.deliver)
        host = self.context.server.host
        try:
            self.server = await asyncio.start_server(
                self._serve, None if host in ("", ALL_INTERFACES) else host, self.options.tcp
            )
        except OSError as exc:
            raise ConfigError(
                f"chat: cannot listen on TCP port {self.options.tcp}: {exc.strerror}"
            ) from None
        sockname = self.server.sockets[0].getsockname()
        shown = f"[{sockname[0]}]" if ":" in sockname[0] else sockname[0]
        return [f"tcp://{shown}:{sockname[1]}"]

    async def stop(self) -> None:
        """Close the listener and every client."""
        if self.server is not None:
            self.server.close()
        for client in list(self.clients):
            client.close(1001, "server stopping")
        self.core.unsubscribe(self.subscriber)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = TCPClient(self, reader, writer)
        self.clients.add(client)
        try:
            # The client gone, or no longer reading: `finally` cleans up.
            with contextlib.suppress(ConnectionError, TimeoutError):
                await client.run()
        except LineTimeout as exc:
            client.write(str(exc))
        finally:
            self.clients.discard(client)
            self.fanout.remove(client)
            if client.nick:
                self.core.disconnect(client.nick)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


class TCPClient:
    """One line client."""

    def __init__(
        self, door: ChatTCP, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.door = door
        self.reader = reader
        self.writer = writer
        self.nick = ""
        self.current = DEFAULT_ROOM
        self.closed = False
        self.buffer = b""
        self.line_started = 0.0  # when the first byte of the unfinished line in `buffer` came
        # --rate as on the WebSocket: each line (message or command) takes a token.
        self.bucket = TokenBucket(*parse_rate(door.options.rate))
        self.rate_said = -RATE_ERROR_EVERY

    def write(self, text: str) -> None:
        """Send one line (a client too slow to read its lines is disconnected)."""
        if self.writer.is_closing():
            return
        if self.writer.transport.get_write_buffer_size() > BACKLOG:
            self.close(1008, "too slow")
            return
        self.writer.write(text.encode("utf-8", "replace") + b"\n")

    def receive(self, out: Outgoing) -> None:
        """An event of its rooms."""
        text = out.text()
        if text is not None:
            self.write(text)

    def close(self, code: int, reason: str) -> None:
        """End the connection (at once, its unsent lines dropped, for a client too slow)."""
        if self.closed:
            return
        self.closed = True
        if code == 1008:
            # asyncio's close() would wait to flush what this client does not read, and the
            # kernel would keep its buffers after that: reset instead (outbox.py says why).
            sock = self.writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.writer.transport.abort()
            return
        # After the lines of this turn (a /quit's "bye") are written.
        asyncio.get_running_loop().call_soon(self.writer.close)

    async def call(self, operation: str, *args: Any) -> Any:
        """Ask the core."""
        return dispatch(self.door.core, self.door.subscriber, operation, args)

    async def join(self, room: str, last_id: int | None) -> None:
        """Enter a room: its recent lines, then its events."""
        self.door.fanout.enter(self, room)
        try:
            present = self.door.core.join(self.nick, room)
        except ChatError:
            self.door.fanout.leave(self, room)
            raise
        self.current = room
        self.write(line({"type": "joined", "room": room, **present}) or "")
        for event in self.door.core.history.recent(room, RECENT):
            self.write(line(event) or "")

    async def leave(self, room: str) -> None:
        """Leave a room."""
        self.door.core.leave(self.nick, room)
        self.door.fanout.leave(self, room)
        if self.current == room:
            self.current = DEFAULT_ROOM

    async def rename(self, wanted: str) -> None:
        """Take a nickname."""
        from comptoir.sites.chat.text import check_nick

        self.nick = self.door.core.rename(self.nick, check_nick(wanted))
        self.write(f"* you are now {self.nick}")

    async def readline(self) -> str | None:
        """The next line (None at the end), within the idle timeout and the line limit; a line
        begun must end within the idle timeout too (a byte now and then keeps a connection, not
        an unfinished line: LineTimeout)."""
        limit = self.door.options.max_message
        idle = self.door.options.idle_timeout
        loop = asyncio.get_running_loop()
        while True:
            end = self.buffer.find(b"\n")
            if end >= 0:
                raw, self.buffer = self.buffer[:end], self.buffer[end + 1 :]
                if len(raw) > limit:
                    self.write(f"! line longer than {limit} bytes: not sent")
                    continue
                return raw.decode("utf-8", "replace").rstrip("\r")
            if len(self.buffer) > limit:
                # Too long already: keep nothing of it, skip to its end.
                self.write(f"! line longer than {limit} bytes: not sent")
                await self._skip_line()
                continue
            wait = idle
            if self.buffer:
                wait = self.line_started + idle - loop.time()
                if wait <= 0:
                    raise LineTimeout(f"! line not finished within {idle:g} s: disconnected")
            try:
                chunk = await asyncio.wait_for(self.reader.read(64 * 1024), wait)
            except TimeoutError:
                if self.buffer:
                    continue  # the line's own deadline, said above
                raise
            if not chunk:
                return None
            if not self.buffer:
                self.line_started = loop.time()
            self.buffer += chunk

    async def _skip_line(self) -> None:
        self.buffer = b""
        idle = self.door.options.idle_timeout
        loop = asyncio.get_running_loop()
        while True:
            wait = self.line_started + idle - loop.time()
            try:
                chunk = await asyncio.wait_for(self.reader.read(64 * 1024), max(wait, 0))
            except TimeoutError:
                raise LineTimeout(f"! line not finished within {idle:g} s: disconnected") from None
            if not chunk:
                raise ConnectionError
            end = chunk.find(b"\n")
            if end >= 0:
                self.buffer = chunk[end + 1 :]
                return

    async def _password(self, host: str) -> bool:
        """Whether the client gave the server's password (asked first when there is one). Each
        try counts with the web logins' (`LoginThrottle`: per address, and for all together)."""
        from comptoir.security.passwords import verify_password

        stored = self.door.context.server.password_hash
        if stored is None:
            return True
        throttle = self.door.throttle()
        loop = asyncio.get_running_loop()
        for _ in range(PASSWORD_TRIES):
            wait = throttle.attempt(host)
            if wait:
                self.write(f"! too many wrong passwords: try again in {wait} s")
                return False
            self.write("password:")
            given = await self.readline()
            if given is None:
                return False
            if await loop.run_in_executor(None, verify_password, given, stored):
                throttle.succeeded(host)
                return True
            throttle.failed(host)
            await asyncio.sleep(1)  # a wrong password costs time: no quick guessing
            self.write("! wrong password")
        return False

    async def run(self) -> None:
        """Serve the client until it quits or goes away."""
        peer = self.writer.get_extra_info("peername")
        host = str(peer[0]) if peer else "-"
        from comptoir.clientlimits import client_key

        key = str(client_key(host))
        # Those still at the password prompt count against --max-per-ip too (they hold no
        # nickname yet, which is what the chat's own count is of).
        waiting = self.door.at_prompt
        if waiting.get(key, 0) >= self.door.options.max_per_ip:
            self.write("! too many connections from your address")
            return
        waiting[key] = waiting.get(key, 0) + 1
        try:
            if not await self._password(host):
                return
        finally:
            if waiting[key] > 1:
                waiting[key] -= 1
            else:
                del waiting[key]
        try:
            self.nick = self.door.core.connect(self.door.subscriber, key)
        except ChatError as exc:
            self.write(f"! {exc.message}")
            return
        self.door.fanout.add(self)
        self.write(f"* welcome, you are {self.nick}; /nick NAME to change it, /help for more")
        await self.join(DEFAULT_ROOM, None)
        while not self.closed:
            text = await self.readline()
            if text is None:
                return
            await self.handle(text)

    async def handle(self, text: str) -> None:
        """One line: a command or a message (dropped past --rate, said once a second)."""
        if not self.bucket.take():
            now = time.monotonic()
            if now - self.rate_said >= RATE_ERROR_EVERY:
                self.rate_said = now
                self.write("! too many lines: this one was dropped, slow down")
            return
        try:
            if text.startswith("/"):
                events: list[Event] = await run_command(self, text)
                for event in events:
                    self.write(line(event) or "")
                return
            cleaned = clean_text(text)
            if cleaned:
                self.door.core.post(self.nick, self.current, cleaned)
        except (ChatError, BadName) as exc:
            self.write(f"! {exc}")
