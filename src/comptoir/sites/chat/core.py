"""The chat's one source of truth: nicknames, presence, rooms, and the order of messages.

`ChatCore` runs in one place only — the hub in the main process (hub.py), or the worker itself
when there is no hub (tests, `LocalBroker`) — so that "is this nickname taken?", "who is in
#general?" and "which id comes next?" each have one answer. Every event it makes goes to every
subscriber (a worker, the TCP service) in the order of its ids; subscribers pick the
connections it concerns. A subscriber that goes away takes its nicknames and presence with it.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from comptoir.sites.chat.history import Event, History
from comptoir.sites.chat.text import DEFAULT_ROOM, nick_key

if TYPE_CHECKING:
    from comptoir.sites.chat import ChatOptions

# Rooms one site may have at once (declared, with members, or with messages kept): a client
# creating rooms in a loop meets this, not the memory's end. A room left by its last member
# without a message is forgotten, so joining and leaving thousands uses none of them.
MAX_ROOMS = 1000
# How long a connection gone may be resumed (its nickname and direct messages) with its token.
RESUME_FOR = 3600.0
# Members up to which a room's arrivals and departures are announced one by one and a `joined`
# lists everyone. Beyond, each arrival would send every member a frame and the newcomer the whole
# list, n² for n people: 1,000 clients connecting made 545,707 frames (46 MB) and 10,000 never
# finished. A crowded room's members are sent its count instead, in a `presence` event at most
# every PRESENCE_EVERY seconds (with the full list again once it is back to PRESENCE_LIVE);
# `who` still lists everyone, to the one who asks.
PRESENCE_LIVE = 100
PRESENCE_EVERY = 5.0


class ChatError(Exception):
    """A request the chat refuses: a short code for programs and a sentence for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Member:
    """A nickname held by a connection of one subscriber."""

    nick: str
    subscriber: int
    client: str
    rooms: set[str] = field(default_factory=set)
    token: str | None = None  # what resumes it once gone (`token`, `resume`)
    # The last message id when it took this nickname: what came before was someone else's.
    since: int = 0


@dataclass(frozen=True)
class Limits:
    """How many connections the chat holds: in all, and from one address."""

    max_connections: int = 10_000
    max_per_ip: int = 50


Deliver = Callable[[Event], None]


class ChatCore:
    """Nicknames, presence, rooms and history, for every subscriber (see the module)."""

    def __init__(
        self,
        history: History,
        *,
        rooms: tuple[str, ...] = (DEFAULT_ROOM,),
        fixed_rooms: bool = False,
        limits: Limits = Limits(),
        now: Callable[[], float] = time.time,
    ) -> None:
        self.history = history
        self.fixed = fixed_rooms
        self.declared = tuple(dict.fromkeys(rooms))
        self.limits = limits
        self.now = now
        self.subscribers: dict[int, Deliver] = {}
        self.members: dict[str, Member] = {}  # nick_key → member
        self.presence: dict[str, dict[str, str]] = {r: {} for r in self.declared}
        self.per_client: dict[str, int] = {}
        # token → (nickname, until when, the last id when it left): connections gone that may
        # be resumed, oldest first.
        # token → (nickname, until, the ids of its time with the name: since, upto]
        self.resumable: dict[str, tuple[str, float, int, int]] = {}
        self.spoken: set[str] = set(history.rooms())  # rooms with a message
        self.known_rooms: set[str] = set(self.declared) | self.spoken
        self._ids = itertools.count(1)
        self._guests = itertools.count(1)
        # Crowded rooms (see PRESENCE_LIVE): when each may next be announced, and those whose
        # count changed since it last was.
        self.crowded: dict[str, float] = {}
        self.recounted: set[str] = set()
        # Each room's members sorted, kept until one comes, goes or is renamed: `who` from every
        # client of a crowded room would otherwise sort its thousands of names each time.
        self.listed: dict[str, list[str]] = {}

    # Subscribers --------------------------------------------------------------------------

    def subscribe(self, deliver: Deliver) -> int:
        """Receive every event from now on; the subscriber's number."""
        sub = next(self._ids)
        self.subscribers[sub] = deliver
        return sub

    def unsubscribe(self, sub: int) -> None:
        """A subscriber gone: its nicknames leave their rooms."""
        self.subscribers.pop(sub, None)
        for member in [m for m in self.members.values() if m.subscriber == sub]:
            self.disconnect(member.nick)

    def _emit(self, event: Event) -> None:
        for deliver in list(self.subscribers.values()):
            deliver(event)

    def _ts(self) -> int:
        return int(self.now() * 1000)

    # Connections and nicknames ----------------------------------------------------------

    def connect(self, sub: int, client: str) -> str:
        """A new connection from `client`: its guest nickname, or ChatError (limits)."""
        if len(self.members) >= self.limits.max_connections:
            raise ChatError("server_full", "too many connections, try again later")
        if self.per_client.get(client, 0) >= self.limits.max_per_ip:
            raise ChatError("too_many_connections", "too many connections from your address")
        while True:
            nick = f"guest{next(self._guests)}"
            if nick_key(nick) not in self.members:
                break
        self.members[nick_key(nick)] = Member(nick, sub, client, since=self.history.last_id())
        self.per_client[client] = self.per_client.get(client, 0) + 1
        return nick

    def disconnect(self, nick: str) -> None:
        """A connection gone: it leaves its rooms, its nickname is free again."""
        member = self.members.pop(nick_key(nick), None)
        if member is None:
            return
        left = self.per_client.get(member.client, 1) - 1
        if left:
            self.per_client[member.client] = left
        else:
            self.per_client.pop(member.client, None)
        for room in sorted(member.rooms):
            self._leave(member, room)
        if member.token is not None:
            now = self.now()
            gone = (member.nick, now + RESUME_FOR, member.since, self.history.last_id())
            self.resumable[member.token] = gone
            # Oldest first: the expired, then any beyond one per connection the chat holds.
            for token, (_, until, _, _) in list(self.resumable.items()):
                if until > now and len(self.resumable) <= self.limits.max_connections:
                    break
                del self.resumable[token]

    def token(self, nick: str) -> str:
        """A secret that lets this connection, once gone, be resumed (`resume`)."""
        member = self._member(nick)
        if member.token is None:
            member.token = secrets.token_urlsafe(18)
        return member.token

    def resume(self, nick: str, token: str) -> tuple[str, int, int] | None:
        """The connection `nick` is the one `token` was given to: it takes back that nickname
        (a `nick` event). (The nickname, the last ids when that connection took it and when it
        left: its direct messages are between), or None for a token unknown or expired;
        ChatError `nick_taken` when someone holds the name now."""
        found = self.resumable.get(token)
        if found is None or found[1] < self.now():
            self.resumable.pop(token, None)
            return None
        old, _, since, upto = found
        if nick_key(old) != nick_key(nick):
            self.rename(nick, old)
        del self.resumable[token]
        return old, since, upto

    def _member(self, nick: str) -> Member:
        member = self.members.get(nick_key(nick))
        if member is None:
            raise ChatError("not_connected", f"{nick} is not connected")
        return member

    def rename(self, nick: str, new: str) -> str:
        """Take the nickname `new` (checked by text.check_nick); the nickname now held."""
        member = self._member(nick)
        if nick_key(new) != nick_key(nick) and nick_key(new) in self.members:
            raise ChatError("nick_taken", f"the nickname {new} is taken")
        del self.members[nick_key(nick)]
        if nick_key(new) != nick_key(nick):
            member.since = self.history.last_id()  # another name: its past is not this one's
        member.nick = new
        self.members[nick_key(new)] = member
        for room in member.rooms:
            self.presence[room].pop(nick_key(nick), None)
            self.presence[room][nick_key(new)] = new
            self.listed.pop(room, None)
        self._emit(
            {
                "type": "nick",
                "ts": self._ts(),
                "from": nick,
                "nick": new,
                "rooms": sorted(member.rooms),
            }
        )
        return new

    def online(self, nick: str) -> bool:
        """Whether a connection holds this nickname now."""
        return nick_key(nick) in self.members

    # Rooms ---------------------------------------------------------------------------------

    def _room(self, room: str) -> None:
        """Make sure `room` exists, creating it unless the rooms are fixed."""
        if room in self.known_rooms:
            return
        if self.fixed:
            raise ChatError("no_such_room", f"no room #{room} (rooms: {', '.join(self.declared)})")
        if len(self.known_rooms) >= MAX_ROOMS:
            raise ChatError("too_many_rooms", "this chat has as many rooms as it can hold")
        self.known_rooms.add(room)

    def join(self, nick: str, room: str) -> dict[str, Any]:
        """`nick` enters `room` (a join event for the others, or a count if it is crowded); who
        is there now: `{"count": n, "members": [...]}`, the list empty in a crowded room."""
        member = self._member(nick)
        self._room(room)
        if room not in member.rooms:
            member.rooms.add(room)
            people = self.presence.setdefault(room, {})
            people[nick_key(nick)] = member.nick
            self.listed.pop(room, None)
            if room in self.crowded or len(people) > PRESENCE_LIVE:
                self._recount(room)
            else:
                self._emit({"type": "join", "ts": self._ts(), "room": room, "from": member.nick})
        people = self.presence[room]
        listed = room not in self.crowded
        return {"count": len(people), "members": self.who(room) if listed else []}

    def leave(self, nick: str, room: str) -> None:
        """`nick` leaves `room` (a leave event)."""
        member = self._member(nick)
        if room in member.rooms:
            self._leave(member, room)

    def _leave(self, member: Member, room: str) -> None:
        member.rooms.discard(room)
        people = self.presence.get(room, {})
        people.pop(nick_key(member.nick), None)
        self.listed.pop(room, None)
        if not people and room not in self.declared and room not in self.spoken:
            self.known_rooms.discard(room)
            self.presence.pop(room, None)
        if room in self.crowded:
            self._recount(room)
        else:
            self._emit({"type": "leave", "ts": self._ts(), "room": room, "from": member.nick})

    def _recount(self, room: str) -> None:
        """A crowded room's count changed: announced now if its time has come, else by `tick`."""
        now = self.now()
        if now >= self.crowded.setdefault(room, now):
            self._announce(room, now)
        else:
            self.recounted.add(room)

    def _announce(self, room: str, now: float) -> None:
        people = self.presence.get(room, {})
        event: Event = {"type": "presence", "ts": self._ts(), "room": room, "count": len(people)}
        self.recounted.discard(room)
        if len(people) > PRESENCE_LIVE:
            self.crowded[room] = now + PRESENCE_EVERY
        else:
            # Back to few: everyone listed once more, then each arrival and departure again.
            del self.crowded[room]
            event["members"] = self.who(room)
        self._emit(event)

    def tick(self) -> None:
        """Announce the crowded rooms whose count changed and whose time has come (called every
        second by whoever holds the core: keep_presence)."""
        now = self.now()
        for room in [r for r in self.recounted if now >= self.crowded.get(r, now)]:
            self._announce(room, now)

    def who(self, room: str) -> list[str]:
        """The nicknames in `room`, sorted (a copy: the sorted list is kept, see `listed`)."""
        listed = self.listed.get(room)
        if listed is None:
            people = self.presence.get(room, {})
            listed = sorted(people.values(), key=str.casefold)
            if people:
                self.listed[room] = listed
        return list(listed)

    def rooms(self) -> list[dict[str, Any]]:
        """Every room: name, members, messages kept, last message id."""
        kept = self.history.rooms()
        names = sorted(self.known_rooms | set(kept))
        return [
            {
                "name": r,
                "members": len(self.presence.get(r, {})),
                "messages": kept.get(r, (0, 0))[0],
                "last_id": kept.get(r, (0, 0))[1],
            }
            for r in names
        ]

    def users(self) -> list[dict[str, Any]]:
        """Every nickname connected now, with its rooms."""
        return [
            {"nick": m.nick, "rooms": sorted(m.rooms)}
            for m in sorted(self.members.values(), key=lambda m: m.nick.casefold())
        ]

    # Messages ------------------------------------------------------------------------------

    def post(self, nick: str, room: str, text: str) -> Event:
        """A message to a room (stored, numbered, sent to everyone in it)."""
        self._room(room)
        self.spoken.add(room)
        event = self.history.append(room, nick, text)
        self._emit(event)
        return event

    def direct(self, nick: str, to: str, text: str) -> Event:
        """A direct message to the nickname `to`, who must be connected."""
        target = self.members.get(nick_key(to))
        if target is None:
            raise ChatError("no_such_user", f"{to} is not connected")
        event = self.history.append(None, nick, text, recipient=target.nick)
        self._emit(event)
        return event

    def typing(self, nick: str, room: str) -> None:
        """`nick` is typing in `room` (sent, not stored)."""
        member = self._member(nick)
        # Not in a crowded room: a frame to every member per keystroke, for a line nobody reads.
        if room in member.rooms and room not in self.crowded:
            self._emit({"type": "typing", "ts": self._ts(), "room": room, "from": member.nick})


async def keep_presence(core: ChatCore) -> None:
    """Until cancelled: the crowded rooms' counts announced in time (`ChatCore.tick`)."""
    while True:
        await asyncio.sleep(1.0)
        core.tick()


def make_core(options: ChatOptions) -> ChatCore:
    """The chat's core over its history file (in the hub, or in the only process)."""
    from comptoir.sites.chat import history_path

    history = History(
        history_path(options), keep=options.keep, keep_for=options.keep_for, writer=True
    )
    return ChatCore(
        history,
        rooms=options.room_names(),
        fixed_rooms=options.fixed_rooms,
        limits=Limits(options.max_connections, options.max_per_ip),
    )
