"""The engine's floor: the least an ASGI app on granian can do to answer the benchmark.

No routing, no path checks, no validators: the 1 KB file's bytes from memory, the large file by
`http.response.pathsend`, and for `/get` a fixed httpbin-like JSON body from memory (the `get` file
run.py writes, which nginx serves too) where `comptoir echo` builds its answer from the request.
comptoir cannot beat this on the same engine; its distance to nginx tells how much of comptoir's
own distance is granian's ASGI bridge rather than comptoir's code.
"""

from __future__ import annotations

import os
from typing import Any

ROOT = os.environ["FLOOR_ROOT"]
with open(os.path.join(ROOT, "1k.bin"), "rb") as f:
    SMALL = f.read()
LARGE = os.path.join(ROOT, "large.bin")
LARGE_SIZE = str(os.path.getsize(LARGE)).encode()
with open(os.path.join(ROOT, "get"), "rb") as f:
    GET = f.read()
GET_HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(GET)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answer /1k.bin, /large.bin and /get; 404 for anything else."""
    if scope["type"] == "websocket":
        await _websocket_echo(receive, send)
        return
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/1k.bin":
        headers = [(b"content-type", b"application/octet-stream"), (b"content-length", b"1024")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": SMALL})
    elif path == "/large.bin":
        headers = [(b"content-type", b"application/octet-stream"), (b"content-length", LARGE_SIZE)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.pathsend", "path": LARGE})
    elif path == "/get":
        await send({"type": "http.response.start", "status": 200, "headers": GET_HEADERS})
        await send({"type": "http.response.body", "body": GET})
    else:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def _websocket_echo(receive: Any, send: Any) -> None:
    """Echo every message back (the floor for `comptoir echo`'s /websocket/echo)."""
    while True:
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif message["type"] == "websocket.receive":
            if message.get("text") is not None:
                await send({"type": "websocket.send", "text": message["text"]})
            else:
                await send({"type": "websocket.send", "bytes": message.get("bytes")})
        else:
            return
