"""One WebSocket connection of the chat: its mode, its rooms, its queue, its limits.

A connection starts in plain mode (each event a text line, each text frame a message to its
room) unless it negotiated the `comptoir.chat.v1` subprotocol; a first frame that is a JSON
object turns it to JSON for good. It is put in `#general` at once, with the room's recent history
or, given `?last_id=N`, exactly what came after N.

**Joining without a gap or a duplicate.** The connection is registered for the room's live
events *before* the history is read: events arriving meanwhile wait in `pending`. Once the
history is sent, the pending events with an id above the last one sent follow; later events
with an id already seen are dropped. Every event is in the history before it is delivered (the
core writes, then fans out), so what the read missed arrives live, and what arrives twice is
sent once.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from comptoir.sites.chat.core import ChatError
from comptoir.sites.chat.history import Event
from comptoir.sites.chat.outbox import TokenBucket, abort_socket, make_outbox
from comptoir.sites.chat.protocol import (
    SUBPROTOCOL,
    VERSION,
    BadFrame,
    Outgoing,
    Request,
    encode,
    error,
    line,
    looks_like_json,
    parse_request,
)
from comptoir.sites.chat.text import DEFAULT_ROOM, BadName, check_nick, check_room, clean_text
from comptoir.types import FRAMES

if TYPE_CHECKING:
    from comptoir.sites.chat.app import ChatRuntime

# Close codes (RFC 6455 §7.4.1), each with its reason.
GOING_AWAY = 1001  # idle timeout
UNSUPPORTED = 1003  # a binary frame
POLICY = 1008  # a client too slow to read its events
TOO_BIG = 1009  # a frame over --max-message
TRY_LATER = 1013  # --max-connections / --max-per-ip
INTERNAL = 1011  # the hub is gone

# History a join sends without `last_id`, and the most a `history` request or a recovery gives.
RECENT = 50
HISTORY_MAX = 500
RECOVER_MAX = 5000
# Rooms one connection may be in.
ROOMS_PER_CONNECTION = 50
# Rate-limit errors said at most this often (each refused frame is dropped either way).
RATE_ERROR_EVERY = 1.0
# How long a close frame may take to go out before the connection is reset instead.
CLOSE_WAIT = 1.0
TOO_SLOW = "too slow: events were not read"


@dataclass
class RoomState:
    """What a connection has of one room: the last id it was sent, events held while joining."""

    seen: int = 0
    pending: list[Outgoing] | None = field(default_factory=list)


class ChatSession:
    """One WebSocket client (see the module)."""

    def __init__(self, runtime: ChatRuntime, ws: WebSocket, nick: str, json_mode: bool) -> None:
        self.runtime = runtime
        self.ws = ws
        self.nick = nick
        self.json = json_mode
        self.rooms: dict[str, RoomState] = {}
        self.current = DEFAULT_ROOM  # where a plain client's lines go
        self.dm_seen = 0
        self.dm_pending: list[Outgoing] | None = None  # direct messages held while recovering
        self.token: str | None = None  # what resumes this connection once gone (`welcome`)
        # The ids of the resumed connection's time with its nickname: (since, upto].
        self.resumed_since = self.resumed_upto = 0
        options = runtime.options
        # The server's own send when the worker's app gave it (FRAMES), else Starlette's.
        send = ws.scope.get(FRAMES) or ws.send
        self.outbox = make_outbox(
            send, options.queue_bytes, options.queue_messages, options.send_timeout
        )
        self.bucket = TokenBucket(*runtime.rate, now=runtime.monotonic)
        self.rate_said = -RATE_ERROR_EVERY
        self.closing: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()

    # Sending ---------------------------------------------------------------------------------

    def _frame(self, out: Outgoing) -> str | None:
        return out.json() if self.json else out.text()

    def _push(self, out: Outgoing) -> None:
        frame = self._frame(out)
        if frame is not None and not self.outbox.put(frame):
            self.close(POLICY, TOO_SLOW)

    async def reply(self, event: Event) -> None:
        """Send this connection an event of its own (waits for room in its queue)."""
        frame = encode(event) if self.json else line(event)
        if frame is not None:
            await self.outbox.put_wait(frame)

    def receive(self, out: Outgoing) -> None:
        """An event of the site for this connection (from the fan-out; never waits)."""
        kind = out.kind
        if kind == "dm":
            if self.dm_pending is not None:
                if len(self.dm_pending) >= self.outbox.max_frames:
                    self.close(POLICY, TOO_SLOW)
                    return
                self.dm_pending.append(out)
                return
            if out.id is not None and out.id <= self.dm_seen:
                return
            self.dm_seen = out.id or self.dm_seen
            self._push(out)
            return
        state = self.rooms.get(out.room)
        if state is None:
            if kind == "nick":
                self._push(out)
            return
        if state.pending is not None:
            if len(state.pending) >= self.outbox.max_frames:
                self.close(POLICY, TOO_SLOW)
                return
            state.pending.append(out)
            return
        if out.id is not None:
            if out.id <= state.seen:
                return  # sent already, from the history
            state.seen = out.id
        self._push(out)

    def close(self, code: int, reason: str) -> None:
        """End the connection with this close code (the first reason given wins)."""
        if not self.closing.done():
            self.closing.set_result((code, reason))

    # The connection's life -----------------------------------------------------------------

    async def run(self, last_id: int | None) -> None:
        """Serve the connection until it closes (the handshake was accepted)."""
        runtime = self.runtime
        runtime.fanout.add(self)
        writer = asyncio.create_task(self.outbox.run())
        reader = asyncio.create_task(self._read(last_id))
        try:
            waits: list[asyncio.Future[Any]] = [reader, writer, self.closing]
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            runtime.fanout.remove(self)
            for task in (reader, writer):
                task.cancel()
            for task in (reader, writer):
                with contextlib.suppress(BaseException):
                    await task
            with contextlib.suppress(ChatError, ConnectionError):
                await runtime.broker.call("disconnect", self.nick)
        if self.outbox.overflowed:
            self.close(POLICY, TOO_SLOW)  # a send that took too long: the watch ended the writer
        if self.closing.done():
            code, reason = self.closing.result()
            if code == POLICY:
                # A close frame would wait behind what the client does not read: the connection
                # is reset, or its unsent megabytes would stay in the kernel (outbox.py). Before
                # any close: granian's drops the socket when it is cancelled.
                scope = self.ws.scope
                server, client = scope.get("server"), scope.get("client")
                if await asyncio.to_thread(abort_socket, server, client):
                    return
            with contextlib.suppress(Exception):  # the client may be gone meanwhile
                await asyncio.wait_for(self.ws.close(code, reason), CLOSE_WAIT)

    async def _read(self, last_id: int | None) -> None:
        token = self.ws.query_params.get("resume")
        problem = await self._resume(token[:64]) if token else None
        if self.json:
            await self._welcome()
        if token:
            if problem is not None:
                await self.reply(problem)
            await self._recover_direct(last_id if problem is None else None)
        await self.join(DEFAULT_ROOM, last_id)
        first = True
        idle = self.runtime.options.idle_timeout
        pinged = False
        while True:
            try:
                message = await asyncio.wait_for(
                    self.ws.receive(), idle / 2 if self.json and not pinged else idle
                )
            except TimeoutError:
                if self.json and not pinged:
                    pinged = True
                    await self.reply({"type": "ping"})
                    continue
                self.close(GOING_AWAY, "idle timeout")
                return
            except WebSocketDisconnect:
                return
            pinged = False
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                self.close(UNSUPPORTED, "binary frames are not accepted: send text")
                return
            if len(text) > self.runtime.options.max_message or (
                len(text.encode("utf-8", "surrogatepass")) > self.runtime.options.max_message
            ):
                self.close(TOO_BIG, f"message larger than {self.runtime.options.max_message} bytes")
                return
            if first and not self.json and looks_like_json(text):
                self.json = True
                await self._welcome()
            first = False
            if not text.strip():
                continue  # an empty frame keeps the connection alive
            if not self._allowed(text):
                continue
            try:
                if self.json:
                    await self.handle(parse_request(text))
                else:
                    await self.plain(text)
            except (BadFrame, BadName) as exc:
                await self.reply(error("bad_request", str(exc)))
            except ChatError as exc:
                await self.reply(error(exc.code, exc.message))

    def _allowed(self, text: str) -> bool:
        if self.bucket.take():
            return True
        now = self.runtime.monotonic()
        if now - self.rate_said >= RATE_ERROR_EVERY:
            self.rate_said = now
            self._push(
                Outgoing(error("rate_limited", "too many frames: this one was dropped, slow down"))
            )
        return False

    async def _welcome(self) -> None:
        if self.token is None:
            self.token = await self.runtime.broker.call("token", self.nick)
        await self.reply(self.welcome())

    async def _resume(self, token: str) -> Event | None:
        """Take back the nickname of the connection `token` was given to (`?resume=`); None, or
        the error event saying why not. Direct messages wait meanwhile (`_recover_direct`)."""
        self.dm_pending = []
        try:
            found = await self.runtime.broker.call("resume", self.nick, token)
        except ChatError as exc:  # its nickname is someone else's now
            return error(exc.code, f"cannot resume: {exc.message}")
        if found is None:
            return error("bad_resume", "cannot resume: unknown or expired token")
        self.nick, self.resumed_since, self.resumed_upto = found
        return None

    async def _recover_direct(self, last_id: int | None) -> None:
        """The direct messages to or from this nickname after `last_id`, then those that came
        while they were read, each once."""
        if last_id is not None:
            # Never before it took the name: a free nickname's earlier holders' messages are
            # theirs, whoever takes it next.
            since = max(last_id, self.resumed_since)
            for event in self.runtime.history.direct_after(self.nick, since, RECOVER_MAX):
                if event["id"] > self.resumed_upto:
                    break  # to whoever held the nickname after that connection left
                await self.reply(event)
                self.dm_seen = max(self.dm_seen, event["id"])
        pending, self.dm_pending = self.dm_pending or [], None
        for out in pending:
            self.receive(out)

    def welcome(self) -> Event:
        """The first JSON event: who the connection is, what it may send, how to resume it."""
        options = self.runtime.options
        return {
            "type": "welcome",
            "nick": self.nick,
            "resume": self.token,
            "protocol": SUBPROTOCOL,
            "version": VERSION,
            "rooms": sorted(self.rooms) or [DEFAULT_ROOM],
            "max_message": options.max_message,
            "rate": options.rate,
        }

    # Requests --------------------------------------------------------------------------------

    async def handle(self, request: Request) -> None:
        """Answer one JSON request."""
        call = self.runtime.broker.call
        kind = request.type
        if kind == "message":
            room = check_room(request.text("room", self.current))
            if room not in self.rooms:
                raise ChatError("not_joined", f"join #{room} before writing there")
            await call("post", self.nick, room, self._text(request.text("text")))
        elif kind == "join":
            await self.join(check_room(request.text("room")), request.number("last_id"))
        elif kind == "leave":
            room = check_room(request.text("room"))
            await self.leave(room)
        elif kind == "nick":
            await self.rename(request.text("nick"))
        elif kind == "dm":
            await call(
                "direct",
                self.nick,
                check_nick(request.text("to")),
                self._text(request.text("text")),
            )
        elif kind == "typing":
            room = check_room(request.text("room", self.current))
            if room in self.rooms:
                await call("typing", self.nick, room)
        elif kind == "history":
            await self.history(request)
        elif kind == "who":
            room = check_room(request.text("room", self.current))
            await self.reply({"type": "who", "room": room, "members": await call("who", room)})
        elif kind == "ping":
            await self.reply({"type": "pong"})
        elif kind != "pong":  # a pong answers the idle ping: the frame itself was all it had to be
            await self.reply(
                error("unknown_type", f"unknown type {kind[:40]!r}", request=kind[:40])
            )

    def _text(self, text: str) -> str:
        cleaned = clean_text(text)
        if not cleaned:
            raise ChatError("empty", "the message is empty")
        return cleaned

    async def join(self, room: str, last_id: int | None) -> None:
        """Enter `room`: its members, then its recent history or what came after `last_id`."""
        runtime = self.runtime
        if room not in self.rooms and len(self.rooms) >= ROOMS_PER_CONNECTION:
            raise ChatError("too_many_rooms", f"at most {ROOMS_PER_CONNECTION} rooms at once")
        state = self.rooms.get(room)
        if state is None:
            state = self.rooms[room] = RoomState()
        else:
            state.pending = []
        runtime.fanout.enter(self, room)
        try:
            present = await runtime.broker.call("join", self.nick, room)
        except ChatError:
            self.rooms.pop(room, None)
            runtime.fanout.leave(self, room)
            raise
        self.current = room
        history = runtime.history
        events: list[Event]
        truncated = False
        if last_id is None:
            events = history.recent(room, RECENT)
        else:
            truncated = last_id < history.pruned_upto(room) or last_id > history.last_id()
            events = history.after(room, last_id, RECOVER_MAX + 1)
            if len(events) > RECOVER_MAX:
                truncated = True
            if truncated:
                events = history.recent(room, RECENT)
        members, count = present["members"], present["count"]
        await self.reply({"type": "joined", "room": room, "members": members, "count": count})
        if truncated:
            first = events[0]["id"] if events else None
            await self.reply(
                {"type": "truncated", "room": room, "last_id": last_id, "first_id": first}
            )
        # A join asks for this history again, even of a room already joined.
        seen = 0 if truncated else last_id or 0
        for event in events:
            if event["id"] > seen:
                await self.reply(event)
                seen = event["id"]
        # What arrived while the history was read: only what the history did not have.
        pending, state.pending = state.pending or [], None
        state.seen = seen
        for out in pending:
            if out.id is not None:
                if out.id <= state.seen:
                    continue
                state.seen = out.id
            self._push(out)

    async def leave(self, room: str) -> None:
        """Leave `room`."""
        if room not in self.rooms:
            raise ChatError("not_joined", f"not in #{room}")
        del self.rooms[room]
        self.runtime.fanout.leave(self, room)
        await self.runtime.broker.call("leave", self.nick, room)
        await self.reply({"type": "left", "room": room})
        if self.current == room:
            self.current = next(iter(self.rooms), DEFAULT_ROOM)

    async def rename(self, wanted: str) -> None:
        """Take a new nickname (an error event when taken or against the rules)."""
        old = self.nick
        self.nick = await self.runtime.broker.call("rename", old, check_nick(wanted))
        await self.reply({"type": "nick", "from": old, "nick": self.nick})

    async def history(self, request: Request) -> None:
        """Answer a `history` request: a page of a room's messages."""
        room = check_room(request.text("room", self.current))
        limit = min(request.number("limit") or RECENT, HISTORY_MAX)
        before, after = request.number("before"), request.number("after")
        history = self.runtime.history
        if after is not None:
            events = history.after(room, after, limit)
        elif before is not None:
            events = history.before(room, before, limit)
        else:
            events = history.recent(room, limit)
        await self.reply({"type": "history", "room": room, "messages": events})

    # Plain clients -------------------------------------------------------------------------

    async def plain(self, text: str) -> None:
        """A plain client's line: a /command, or a message to its room."""
        from comptoir.sites.chat.commands import run_command

        if text.startswith("/"):
            for event in await run_command(self, text):
                await self.reply(event)
            return
        await self.runtime.broker.call("post", self.nick, self.current, self._text(text))

    async def call(self, operation: str, *args: Any) -> Any:
        """Ask the chat's core (for the slash commands)."""
        return await self.runtime.broker.call(operation, *args)
