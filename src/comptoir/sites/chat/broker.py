"""The seam between a worker's connections and the chat's one `ChatCore`: `Broker`.

A worker asks its broker for what only the core can decide (a nickname, a place in a room, the
next id) and receives every event through the `deliver` it gave to `start`. `LocalBroker` holds
the core in the same process (one process: tests, or a run without the hub); `HubBroker`
(hub.py) reaches the core in the main process over a Unix socket, so that every worker sees every
event. A broker across machines (Redis) would be a third class of this shape.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from comptoir.sites.chat.core import ChatCore, keep_presence
from comptoir.sites.chat.history import Event

Deliver = Callable[[Event], None]

# The core's methods a broker may call, by name (the hub's requests name them too).
OPERATIONS = frozenset(
    {
        "connect",
        "disconnect",
        "rename",
        "join",
        "leave",
        "post",
        "direct",
        "typing",
        "who",
        "rooms",
        "users",
        "online",
        "token",
        "resume",
    }
)


class Broker(Protocol):
    """What a worker needs from the chat's core (see the module)."""

    async def start(self, deliver: Deliver) -> None:
        """Receive every event from now on through `deliver` (called on the event loop)."""
        ...

    async def close(self) -> None:
        """Stop; the nicknames this worker held are freed."""
        ...

    async def call(self, operation: str, *args: Any) -> Any:
        """Run one of the core's `OPERATIONS`; its result, or the ChatError it raised."""
        ...


class LocalBroker:
    """The core in this very process."""

    def __init__(self, core: ChatCore) -> None:
        self.core = core
        self.subscriber: int | None = None
        self.ticker: asyncio.Task[None] | None = None

    async def start(self, deliver: Deliver) -> None:
        """Subscribe to the core; keep its crowded rooms' counts announced."""
        self.subscriber = self.core.subscribe(deliver)
        self.ticker = asyncio.create_task(keep_presence(self.core))

    async def close(self) -> None:
        """Unsubscribe (this worker's nicknames leave their rooms)."""
        if self.ticker is not None:
            self.ticker.cancel()
            self.ticker = None
        if self.subscriber is not None:
            self.core.unsubscribe(self.subscriber)
            self.subscriber = None

    async def call(self, operation: str, *args: Any) -> Any:
        """Call the core directly."""
        return dispatch(self.core, self.subscriber or 0, operation, args)


def dispatch(core: ChatCore, subscriber: int, operation: str, args: Any) -> Any:
    """Run one operation on the core for a subscriber (ValueError for an unknown one)."""
    if operation not in OPERATIONS or not isinstance(args, list | tuple):
        raise ValueError(f"unknown operation {operation!r}")
    if operation == "connect":
        return core.connect(subscriber, *args)
    method: Callable[..., Any] = getattr(core, operation)
    return method(*args)
