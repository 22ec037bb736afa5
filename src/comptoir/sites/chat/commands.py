"""Slash commands of the line clients: plain WebSocket text and raw TCP (`nc`, `telnet`).

`/nick NAME`, `/join ROOM`, `/leave [ROOM]`, `/who [ROOM]`, `/rooms`, `/dm NICK TEXT`, `/help`,
`/quit`; any other line is a message to the client's current room. One table, so both doors
answer alike.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from comptoir.sites.chat.core import ChatError
from comptoir.sites.chat.history import Event
from comptoir.sites.chat.text import check_nick, check_room, clean_text

HELP = (
    "commands: /nick NAME, /join ROOM, /leave [ROOM], /who [ROOM], /rooms, /dm NICK TEXT, "
    "/help, /quit; any other line is a message to your current room"
)


class LineClient(Protocol):
    """A client speaking lines, as the commands see it."""

    nick: str
    current: str

    async def join(self, room: str, last_id: int | None) -> None:
        """Enter a room (and make it the current one)."""
        ...

    async def leave(self, room: str) -> None:
        """Leave a room."""
        ...

    async def rename(self, wanted: str) -> None:
        """Take a nickname."""
        ...

    async def call(self, operation: str, *args: Any) -> Any:
        """Ask the chat's core (broker.call)."""
        ...

    def close(self, code: int, reason: str) -> None:
        """End the connection."""
        ...


def notice(text: str) -> Event:
    """A line for the client alone."""
    return {"type": "notice", "text": text}


Command = Callable[[LineClient, str], Awaitable[list[Event]]]


async def _nick(client: LineClient, rest: str) -> list[Event]:
    await client.rename(rest)
    return []


async def _join(client: LineClient, rest: str) -> list[Event]:
    await client.join(check_room(rest), None)
    return []


async def _leave(client: LineClient, rest: str) -> list[Event]:
    await client.leave(check_room(rest) if rest else client.current)
    return []


async def _who(client: LineClient, rest: str) -> list[Event]:
    room = check_room(rest) if rest else client.current
    members = await client.call("who", room)
    return [notice(f"in #{room}: {', '.join(members) or 'nobody'}")]


async def _rooms(client: LineClient, rest: str) -> list[Event]:
    rooms = await client.call("rooms")
    shown = ", ".join(f"#{r['name']} ({r['members']})" for r in rooms)
    return [notice(f"rooms: {shown or 'none'}")]


async def _dm(client: LineClient, rest: str) -> list[Event]:
    to, _, text = rest.partition(" ")
    text = clean_text(text)
    if not to or not text:
        return [notice("usage: /dm NICK TEXT")]
    await client.call("direct", client.nick, check_nick(to), text)
    return []


async def _help(client: LineClient, rest: str) -> list[Event]:
    return [notice(HELP)]


async def _quit(client: LineClient, rest: str) -> list[Event]:
    client.close(1000, "bye")
    return [notice("bye")]


COMMANDS: dict[str, Command] = {
    "nick": _nick,
    "join": _join,
    "leave": _leave,
    "part": _leave,
    "who": _who,
    "rooms": _rooms,
    "dm": _dm,
    "msg": _dm,
    "help": _help,
    "quit": _quit,
}


async def run_command(client: LineClient, line: str) -> list[Event]:
    """Run one `/command` line; the lines to show the client (ChatError, BadName pass up)."""
    name, _, rest = line[1:].partition(" ")
    command = COMMANDS.get(name.lower())
    if command is None:
        raise ChatError("unknown_command", f"unknown command /{name[:20]}; /help lists them")
    return await command(client, rest.strip())
