"""The chat's two ways of speaking: JSON events (protocol version 1) and plain text lines.

A client frame in JSON is an object with a `type` and flat fields (strings, integers): anything
nested or of another shape is a `bad_request`, so a "JSON bomb" costs one parse of at most
`--max-message` bytes. Server events are objects with `v` (the protocol version) and `type`;
those the history keeps carry `id` (site-wide, increasing) and `ts` (milliseconds since the epoch).
Plain clients (the course's `socket.send("My name is John")`) get each event as one line of text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from comptoir.sites.chat.history import Event

VERSION = 1
SUBPROTOCOL = "comptoir.chat.v1"
# What a JSON client may send, and the fields each takes (others are ignored).
CLIENT_TYPES = frozenset(
    {"message", "join", "leave", "nick", "dm", "typing", "history", "who", "ping", "pong"}
)


class BadFrame(ValueError):
    """A client frame the protocol cannot take (the message says why)."""


@dataclass(frozen=True)
class Request:
    """One JSON client frame, checked: its type and its flat fields."""

    type: str
    fields: dict[str, str | int | bool | None]

    def text(self, name: str, default: str | None = None) -> str:
        """A string field (BadFrame when missing without a default, or not a string)."""
        value = self.fields.get(name, default)
        if not isinstance(value, str):
            raise BadFrame(f"{self.type}: '{name}' must be a string")
        return value

    def number(self, name: str) -> int | None:
        """An integer field at least 0, or None when absent."""
        value = self.fields.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
            # SQLite's integers are 64 bits: a larger one failed inside the history's query.
            raise BadFrame(f"{self.type}: '{name}' must be a whole number, 0 to 2**63 - 1")
        return value


def parse_request(frame: str) -> Request:
    """A JSON client frame as a Request, or BadFrame."""
    try:
        data = orjson.loads(frame)
    except orjson.JSONDecodeError:
        # orjson also refuses nesting deeper than 1024 here, without recursing in Python.
        raise BadFrame("not a JSON object") from None
    if not isinstance(data, dict):
        raise BadFrame("a frame is a JSON object with a 'type'")
    kind = data.get("type")
    if not isinstance(kind, str):
        raise BadFrame("a frame is a JSON object with a 'type'")
    fields: dict[str, str | int | bool | None] = {}
    for key, value in data.items():
        if key == "type":
            continue
        if isinstance(value, dict | list | float):
            raise BadFrame(f"{kind}: '{key}' must be a string or a whole number")
        fields[key] = value
    return Request(kind, fields)


def looks_like_json(frame: str) -> bool:
    """Whether a first frame is a JSON object (the client then speaks JSON)."""
    if not frame.lstrip().startswith("{"):
        return False
    try:
        return isinstance(orjson.loads(frame), dict)
    except orjson.JSONDecodeError:
        return False


def encode(event: Event) -> str:
    """One server event as a JSON frame (with the protocol version)."""
    return orjson.dumps({"v": VERSION, **event}).decode()


def error(code: str, message: str, request: str | None = None) -> Event:
    """An error event (the connection stays open)."""
    event: Event = {"type": "error", "code": code, "message": message}
    if request is not None:
        event["request"] = request
    return event


def _indented(text: str) -> str:
    """A message's lines after its first, indented: on a plain client's screen no line of a
    message can pass for a line of another author's (`bob: hi\nalice: …`)."""
    return text.replace("\n", "\n    ")


def joined_line(room: str, members: list[str], count: Any) -> str:
    """What a line client is told on entering a room: who is there, or how many when the room
    is crowded and lists nobody (core.PRESENCE_LIVE)."""
    if members or not isinstance(count, int):
        return f"* you are in #{room} with {', '.join(members)}"
    return f"* you are in #{room}, {count:,} here (/who lists them)"


def line(event: Event) -> str | None:
    """One server event as a plain client's text line (None: plain clients skip it)."""
    kind = event["type"]
    room = event.get("room")
    where = "" if room in (None, "general") else f"#{room} "
    if kind == "message":
        return f"{where}{event['from']}: {_indented(event['text'])}"
    if kind == "dm":
        return f"(dm) {event['from']} → {event['to']}: {_indented(event['text'])}"
    if kind == "join":
        return f"* {event['from']} joined #{room}"
    if kind == "leave":
        return f"* {event['from']} left #{room}"
    if kind == "nick":
        return f"* {event['from']} is now {event['nick']}"
    if kind == "joined":
        return joined_line(str(room), event["members"], event.get("count"))
    if kind == "error":
        return f"! {event['message']}"
    if kind == "notice":
        return f"* {event['text']}"
    if kind == "truncated":
        return f"* older messages of #{room} are no longer kept: some were missed"
    return None


class Outgoing:
    """An event on its way to many connections: each form made once, when first needed."""

    __slots__ = ("_json", "_line", "event", "id", "kind", "room")

    def __init__(self, event: Event) -> None:
        self.event = event
        # Read by every connection it reaches: looked up once.
        self.kind: str = event["type"]
        self.room: str = event.get("room") or ""
        value: Any = event.get("id")
        self.id: int | None = value if isinstance(value, int) else None  # None: not kept
        self._json: str | None = None
        self._line: str | bool | None = False

    def json(self) -> str:
        """The JSON frame."""
        if self._json is None:
            self._json = encode(self.event)
        return self._json

    def text(self) -> str | None:
        """The plain line (None: not shown to plain clients)."""
        if self._line is False:
            self._line = line(self.event)
        return self._line if isinstance(self._line, str) else None
