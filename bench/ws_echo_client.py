"""WebSocket echo load: C connections, each sending small messages one after the other.

    python ws_echo_client.py --url ws://127.0.0.1:8000/websocket/echo --connections 32 --duration 5

Runs from the peers' venv (run.py installs the `websockets` library there: a client nobody here
wrote). Each connection sends a 32-byte text message and waits for it to come back before the
next, for --duration seconds; prints one JSON line: messages echoed per second, and errors
(a wrong echo, a connection that failed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from websockets.asyncio.client import connect

MESSAGE = "x" * 32


async def _one(url: str, deadline: float, counts: list[int]) -> None:
    try:
        async with connect(url, max_size=2**20, compression=None) as ws:
            while time.monotonic() < deadline:
                await ws.send(MESSAGE)
                if await ws.recv() != MESSAGE:
                    counts[1] += 1
                    return
                counts[0] += 1
    except (OSError, Exception):
        counts[1] += 1


async def _main(url: str, connections: int, duration: float) -> dict[str, float]:
    counts = [0, 0]
    start = time.monotonic()
    deadline = start + duration
    await asyncio.wait_for(
        asyncio.gather(*(_one(url, deadline, counts) for _ in range(connections))),
        timeout=duration + 30,
    )
    took = time.monotonic() - start
    return {"messages": counts[0], "errors": counts[1], "messages_per_s": counts[0] / took}


def main() -> None:
    """Parse the flags, run the load, print the result as JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--duration", type=float, default=5.0)
    a = p.parse_args()
    print(json.dumps(asyncio.run(_main(a.url, a.connections, a.duration))), flush=True)


if __name__ == "__main__":
    main()
