"""ASGI type aliases, as in starlette/types.py."""

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# A WebSocket scope's key for the server's own `send`, unwrapped (the worker's outer app puts it
# there): once the handshake is accepted, a site that sends many frames (the chat's fan-out)
# sends them with it, past the layers that only watch how an answer starts. Each layer's wrapper
# is a coroutine per frame: at 1,000 frames a message, their allocations alone set off Python's
# cyclic collector several times a message (docs/decisions.md, chat fan-out).
FRAMES = "comptoir.frames"
