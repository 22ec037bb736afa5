"""A worker's side of delivery: which of its connections an event concerns.

The broker hands every event of the site to `Fanout.deliver`, on the worker's event loop, in the
order of the ids. It finds the connections of the event's room (or, for a direct message, of its
two nicknames) and puts the event in each one's queue (`ChatPeer.receive`, which never waits).
"""

from __future__ import annotations

from typing import Protocol

from comptoir.sites.chat.history import Event
from comptoir.sites.chat.protocol import Outgoing
from comptoir.sites.chat.text import nick_key


class ChatPeer(Protocol):
    """A connection as the fan-out sees it."""

    nick: str

    def receive(self, out: Outgoing) -> None:
        """Take one event (queue it, or note it while a join reads the history)."""
        ...

    def close(self, code: int, reason: str) -> None:
        """End the connection."""
        ...


class Fanout:
    """This worker's connections by room and by nickname."""

    def __init__(self) -> None:
        self.rooms: dict[str, set[ChatPeer]] = {}
        self.peers: set[ChatPeer] = set()

    def add(self, peer: ChatPeer) -> None:
        """A new connection."""
        self.peers.add(peer)

    def remove(self, peer: ChatPeer) -> None:
        """A connection gone."""
        self.peers.discard(peer)
        for room in list(self.rooms):
            self.leave(peer, room)

    def enter(self, peer: ChatPeer, room: str) -> None:
        """`peer` receives `room`'s events from now on."""
        self.rooms.setdefault(room, set()).add(peer)

    def leave(self, peer: ChatPeer, room: str) -> None:
        """`peer` no longer receives `room`'s events."""
        members = self.rooms.get(room)
        if members is not None:
            members.discard(peer)
            if not members:
                del self.rooms[room]

    def deliver(self, event: Event) -> None:
        """Give one event to every connection of this worker it concerns."""
        out = Outgoing(event)
        kind = event["type"]
        if kind == "unavailable":
            for peer in list(self.peers):
                peer.close(1011, "the chat is not available")
            return
        if kind == "dm":
            names = {nick_key(event["from"]), nick_key(event["to"])}
            for peer in [p for p in self.peers if nick_key(p.nick) in names]:
                _receive(peer, out)
            return
        if kind == "nick":
            # The connection that changed its name is answered by its own session.
            targets: set[ChatPeer] = set()
            for room in event.get("rooms", ()):
                targets |= self.rooms.get(room, set())
            for peer in targets:
                if nick_key(peer.nick) != nick_key(event["from"]):
                    _receive(peer, out)
            return
        own = event["from"] if kind in ("join", "leave", "typing") else None
        for peer in list(self.rooms.get(out.room, ())):
            # A connection's own arrival, departure and typing are answered by its session.
            if own is not None and peer.nick == own:
                continue
            try:
                peer.receive(out)
            except Exception as exc:
                _failed(peer, exc)


def _receive(peer: ChatPeer, out: Outgoing) -> None:
    """Give one connection an event (see `_failed`)."""
    try:
        peer.receive(out)
    except Exception as exc:
        _failed(peer, exc)


def _failed(peer: ChatPeer, exc: Exception) -> None:
    """A connection failed to take an event: logged, and that connection alone ends. Raised
    further, it would end the worker's link to the hub, and every connection with it."""
    from comptoir.app import error_line
    from comptoir.terminal import write_line

    write_line(error_line({"type": "websocket", "path": "/ws"}, exc))
    peer.close(1011, "internal error")
