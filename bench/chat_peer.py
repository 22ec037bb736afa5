"""The chat scenarios' peer: a bare broadcast server written with the `websockets` library.

    python chat_peer.py --host 127.0.0.1 --port 8000

Every text message received is sent to every connected client, the sender included, with
`websockets.asyncio.server.broadcast` (the frame made once, written to each connection without
waiting): the fastest simple Python chat there is — no rooms, nicknames, history, limits, nor
any bound on what waits for a client that does not read (the library's documentation says so).
On uvloop when it is installed, as comptoir's workers run; permessage-deflate off, as comptoir
offers none. `GET /healthz` answers 200, so run.py can tell it is up. Runs from the peers' venv
(run.py installs the pinned `websockets` there).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

CLIENTS: set[ServerConnection] = set()


async def handler(ws: ServerConnection) -> None:
    """Hold a connection; broadcast each text message it sends."""
    CLIENTS.add(ws)
    try:
        async for message in ws:
            if isinstance(message, str):
                broadcast(CLIENTS, message)
    except ConnectionClosed:
        pass  # a client gone without a close handshake: not worth a traceback in the log
    finally:
        CLIENTS.discard(ws)


def health(connection: ServerConnection, request: Any) -> Any:
    """`GET /healthz` answered 200 without an upgrade; anything else goes on to the handshake."""
    if request.path == "/healthz":
        return connection.respond(HTTPStatus.OK, "ok\n")
    return None


async def main(host: str, port: int) -> None:
    """Serve until killed."""
    # The backlog comptoir's socket gets (server.py); asyncio's default is 100.
    async with serve(
        handler, host, port, process_request=health, compression=None, backlog=1024
    ) as server:
        await server.serve_forever()


def run() -> None:
    """Parse the flags; raise the open-files limit to the hard one, as comptoir does; serve."""
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    a = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop
    except ImportError:
        asyncio.run(main(a.host, a.port))
    else:
        uvloop.run(main(a.host, a.port))


if __name__ == "__main__":
    run()
