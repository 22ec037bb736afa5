"""`chat`: instant messaging over WebSocket, plain or JSON, with an HTTP API and raw TCP.

The app (app.py) answers `/ws` (session.py: one connection; protocol.py: JSON events and plain
lines; outbox.py: its bounded queue and rate), the HTTP API and the front page. What must have
one answer for the whole site — nicknames, presence, the next id — is the `ChatCore` (core.py)
over the SQLite history (history.py), reached through a `Broker` (broker.py): in the process
itself, or the hub in the main process (hub.py), which every worker reaches over a Unix socket.
Names and text are cleaned by text.py; line clients' `/commands` are commands.py; the raw TCP
door (tcp.py) is a main-process service beside the hub.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from comptoir.config import ServerOptions
from comptoir.settings import parse_duration, parse_size, setting
from comptoir.sites.chat.text import BadName, check_rate, check_room
from comptoir.sites.contract import (
    DemoContext,
    DemoSite,
    Problem,
    ServiceContext,
    SiteContext,
    SiteKind,
)

if TYPE_CHECKING:
    from comptoir.services import Service
    from comptoir.sites.chat.app import ChatSite

KIB = 1024
MIB = 1024 * KIB


@dataclass(frozen=True)
class ChatOptions:
    """Options of a chat site."""

    rooms: tuple[str, ...] = setting(
        ("general",), "A room that always exists (several: repeat, or separate with commas)."
    )
    fixed_rooms: bool = setting(
        False, "Only the --rooms rooms exist: clients cannot create others.", flag_only=True
    )
    history: Path | None = setting(
        None,
        "SQLite file of the messages (made if missing).",
        default_text="chat/history.sqlite3 in the data folder ($COMPTOIR_DATA_DIR)",
    )
    keep: int = setting(10_000, "Messages kept per room (older ones are removed).", minimum=1)
    keep_for: float = setting(
        30 * 86400.0,
        "Longest time a message is kept.",
        parse=parse_duration,
        minimum=1,
        default_text="30d",
    )
    max_message: int = setting(
        4 * KIB,
        "Largest frame a client may send (larger: close 1009).",
        parse=parse_size,
        minimum=16,
        maximum=MIB,
        default_text="4K",
    )
    rate: str = setting(
        "20/s", "Frames a connection may send (token bucket: N/s, N/m, N/10s).", parse=check_rate
    )
    max_per_ip: int = setting(
        20, "Connections from one address (an IPv6 /64); more: close 1013.", minimum=1
    )
    max_connections: int = setting(
        10_000, "Connections in all (WebSocket and TCP); more: close 1013.", minimum=1
    )
    idle_timeout: float = setting(
        600.0,
        "A connection that sends nothing this long is closed (1001); JSON clients get a ping "
        "halfway.",
        parse=parse_duration,
        minimum=1,
        default_text="10m",
    )
    queue_bytes: int = setting(
        MIB,
        "Events waiting for a slow reader, in bytes; beyond, it is disconnected (1008).",
        parse=parse_size,
        minimum=16 * KIB,
        default_text="1M",
    )
    queue_messages: int = setting(
        1000,
        "Events waiting for a slow reader, in number; beyond, it is disconnected (1008).",
        minimum=10,
    )
    send_timeout: float = setting(
        10.0,
        "A client whose socket takes no event for this long is disconnected (1008).",
        parse=parse_duration,
        minimum=0.1,
        default_text="10s",
    )
    allow_origin: tuple[str, ...] = setting(
        (),
        "An origin whose pages may open the WebSocket (e.g. http://localhost:5173); the site's "
        "own always may. Repeatable.",
    )
    tcp: int | None = setting(
        None,
        "Also take line clients (nc, telnet) on this TCP port (0 picks a free one).",
        minimum=0,
        maximum=65535,
        default_text="off",
    )

    def room_names(self) -> tuple[str, ...]:
        """The declared rooms, checked and without duplicates (BadName for a bad one)."""
        names = [check_room(n) for text in self.rooms for n in text.split(",") if n.strip()]
        return tuple(dict.fromkeys(names))


def history_path(options: ChatOptions) -> Path:
    """Where the site's history is kept: `--history`, else in the data folder."""
    if options.history is not None:
        return options.history.expanduser().resolve()
    from comptoir.security.ca import data_dir

    return data_dir() / "chat" / "history.sqlite3"


def endpoint_name(options: ChatOptions) -> str:
    """The name under which the hub of this site publishes its socket (one per history file)."""
    return f"chat:{history_path(options)}"


def validate(options: ChatOptions, server: ServerOptions) -> list[Problem]:
    """Room names, origins and the history file's folder."""
    problems: list[Problem] = []
    try:
        if not options.room_names():
            problems.append(Problem("rooms", "name at least one room"))
    except BadName as exc:
        problems.append(Problem("rooms", str(exc), labelled=True))
    for origin in options.allow_origin:
        if not re.fullmatch(r"https?://[^/\s]+/?", origin, re.I):
            problems.append(
                Problem(
                    "allow_origin",
                    f"{origin!r}: write an origin, scheme and host (http://localhost:5173)",
                )
            )
    path = history_path(options)
    if path.is_dir():
        problems.append(Problem("history", f"{path} is a folder: name a file", labelled=True))
    elif options.history is not None and not path.parent.is_dir():
        problems.append(Problem("history", f"folder not found: {path.parent}", labelled=True))
    return problems


def build(options: ChatOptions, context: SiteContext) -> ChatSite:
    """Build the ASGI app of a chat site."""
    from comptoir.sites.chat.app import ChatSite

    return ChatSite(options, context)


async def startup(app: ChatSite) -> None:
    """Receive the site's events from the first moment."""
    await app.start()


async def shutdown(app: ChatSite) -> None:
    """Free this worker's nicknames."""
    await app.close()


def services(options: ChatOptions, context: ServiceContext) -> list[Service]:
    """The hub (nicknames, presence, history for every worker) and, with --tcp, line clients.

    One worker and no TCP door: no hub. The worker holds the core itself (LocalBroker), without
    a Unix-socket round trip per event and three per connection: at 32,000 deliveries/s the p99
    went from 71-96 ms to 62-68, and 10,000 clients connected at 877 a second instead of 681-760
    (docs/decisions.md)."""
    from comptoir.sites.chat.hub import ChatHub

    if context.server.workers == 1 and options.tcp is None:
        return []
    hub = ChatHub(options, context)
    out: list[Service] = [hub]
    if options.tcp is not None:
        from comptoir.sites.chat.tcp import ChatTCP

        out.append(ChatTCP(options, context, hub))
    return out


def banner(options: ChatOptions) -> list[str]:
    """Where the WebSocket is and the history goes."""
    return [f"WebSocket at /ws, history in {history_path(options)}"]


def _demo_options(demo: DemoContext) -> ChatOptions:
    return ChatOptions(
        rooms=("general", "random"),
        history=demo.folder() / "history.sqlite3",
        keep=500,
        max_per_ip=50,
    )


DEMO = (
    DemoSite(
        "chat",
        "a chat over WebSocket (`/ws`: the course's `new WebSocket(...)` works as is) with rooms, "
        "history and an HTTP API (`/api/rooms`), as `comptoir chat` does.",
        _demo_options,
        websockets=("/ws",),
    ),
)

KIND = SiteKind(
    name="chat",
    options=ChatOptions,
    build=build,
    command="chat",
    help="A chat over WebSocket (plain text or JSON), with rooms, history, an HTTP API and TCP.",
    demo=DEMO,
    validate=validate,
    startup=startup,
    shutdown=shutdown,
    services=services,
    banner=banner,
    fds_per_connection=1,  # the socket; frames only; the history is one file per worker
)
