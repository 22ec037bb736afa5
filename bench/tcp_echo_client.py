"""Hold many TCP echo connections at once: the client of run.py's `tcp` scenario.

    python bench/tcp_echo_client.py --port 7007 --connections 5000 --hold 3

Opens `--connections` connections (at most `--concurrency` connecting at a time, so the server's
listen backlog is not what is measured), sends a line on each and reads it back, keeps them all
open for `--hold` seconds, then does a second round trip on each, and closes them. It prints two
JSON lines on stdout: `{"event": "holding", ...}` when every connection is open (run.py counts the
server's sockets then) and `{"event": "done", ...}` with the counts, errors by kind and timings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from collections import Counter

# Seconds one connect or one round trip may take before it counts as an error.
STEP_TIMEOUT = 10.0
# What makes one connection fail (TimeoutError, from wait_for, is an OSError).
FAILURES = (OSError, asyncio.IncompleteReadError, ValueError)
# Descriptors beyond the connections: stdio, the event loop's own, some slack.
FD_RESERVE = 64

Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def raise_open_files_limit(wanted: int) -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to `wanted` (and the hard one if allowed); the new limits."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            try:  # root may raise the hard limit too
                resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            except (ValueError, OSError):
                resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        else:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def emit(event: str, **fields: object) -> None:
    """One JSON line on stdout, flushed at once (run.py reads them as they come)."""
    print(json.dumps({"event": event, **fields}), flush=True)


async def round_trip(stream: Stream, line: bytes) -> None:
    """Send a line and read exactly it back; raise ValueError when something else comes."""
    reader, writer = stream
    writer.write(line)
    await writer.drain()
    got = await reader.readexactly(len(line))
    if got != line:
        raise ValueError("echo differs from what was sent")


async def run(host: str, port: int, connections: int, hold: float, concurrency: int) -> int:
    """The whole exchange; returns the exit code (0, also when some connections failed)."""
    errors: Counter[str] = Counter()
    gate = asyncio.Semaphore(concurrency)

    def failed(step: str, exc: BaseException) -> None:
        errors[f"{step}: {type(exc).__name__}"] += 1

    async def open_one(i: int) -> Stream | None:
        async with gate:
            try:
                stream = await asyncio.wait_for(asyncio.open_connection(host, port), STEP_TIMEOUT)
            except OSError as exc:
                failed("connect", exc)
                return None
            try:
                line = f"hello {i}\n".encode()
                await asyncio.wait_for(round_trip(stream, line), STEP_TIMEOUT)
                return stream
            except FAILURES as exc:
                failed("first echo", exc)
                stream[1].close()
                return None

    async def second(i: int, stream: Stream) -> bool:
        async with gate:
            try:
                line = f"again {i}\n".encode()
                await asyncio.wait_for(round_trip(stream, line), STEP_TIMEOUT)
                return True
            except FAILURES as exc:
                failed("second echo", exc)
                return False

    t0 = time.monotonic()
    opened = await asyncio.gather(*(open_one(i) for i in range(connections)))
    held = {i: s for i, s in enumerate(opened) if s is not None}
    open_seconds = time.monotonic() - t0
    emit("holding", open=len(held), open_seconds=round(open_seconds, 3))
    await asyncio.sleep(hold)
    t1 = time.monotonic()
    answered = await asyncio.gather(*(second(i, s) for i, s in held.items()))
    second_seconds = time.monotonic() - t1
    for _, writer in held.values():
        writer.close()
    await asyncio.gather(*(w.wait_closed() for _, w in held.values()), return_exceptions=True)
    emit(
        "done",
        connections=connections,
        held=len(held),
        ok=sum(answered),
        errors=dict(errors),
        open_seconds=round(open_seconds, 3),
        second_seconds=round(second_seconds, 3),
        hold_seconds=hold,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the flags, raise the open-files limit, run."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--connections", type=int, default=5000)
    p.add_argument("--hold", type=float, default=3.0, help="seconds all stay open")
    p.add_argument("--concurrency", type=int, default=200, help="connects/round trips at once")
    a = p.parse_args(argv)
    soft, _ = raise_open_files_limit(a.connections + FD_RESERVE)
    if soft != resource.RLIM_INFINITY and soft < a.connections + FD_RESERVE:
        emit("error", reason=f"open-files limit {soft} is below {a.connections + FD_RESERVE}")
        return 1
    return asyncio.run(run(a.host, a.port, a.connections, a.hold, a.concurrency))


if __name__ == "__main__":
    sys.exit(main())
