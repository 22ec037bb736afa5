"""Chat load: a pool of WebSocket clients for the `chat` scenarios of run.py.

    python chat_load.py fanout --url ws://127.0.0.1:8000/ws --subprotocol comptoir.chat.v1
    python chat_load.py idle --url ws://127.0.0.1:8000/ws --clients 10000
    python chat_load.py slow --url ws://127.0.0.1:8000/ws --clients 50
    python chat_load.py recovery --url ws://127.0.0.1:8000/ws --subprotocol comptoir.chat.v1

Runs from the peers' venv (the `websockets` library, pinned in run.py), on uvloop when it is
there, pinned by run.py to the client CPU. Each client is the library's Sans-I/O
`ClientProtocol` driven by an `asyncio.Protocol` (see docs/decisions.md: the library's asyncio
client spends a task and a future per message and could not receive as many messages as the
servers send on one core). Messages carry `~STEP~SENT~` in their text, `SENT` the sender's
`time.monotonic_ns()` (one clock for every process of the machine): a receiver finds it in
whatever frame the server makes of the message (the bare text, a plain line, comptoir's JSON
event) and measures the delivery latency when the frame's bytes arrive.

- `fanout`: N clients connected; senders (some of them, each within --sender-rate) post at each
  rate of --rates in turn, --step seconds each, every client receiving every message; per rate:
  deliveries/s, p99 latency, messages lost, the client's own CPU use. Stops after the first rate
  whose p99 is over --p99-ms or that lost messages.
- `idle`: N clients connected --concurrency at a time (handshakes/s), held --hold seconds doing
  nothing but read, then each pinged: the value is how many answered.
- `slow`: N clients receive --rate messages/s of --size bytes for --duration seconds; then one
  client that never reads (its receive buffer --rcvbuf) joins and the same load runs again: the
  others' p99 with and without it, and what the server did with it.
- `recovery`: a client notes the last id it saw, goes away, senders post --missed messages, and
  it comes back with `?last_id=`: seconds until it has them all, checked in order, exactly once.

Output: JSON lines on stdout, `{"event": ...}`; run.py samples the server's memory at each one
and reads the last, `done`. A connection the server refuses or closes is an error, never a crash.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import resource
import socket
import sys
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

MARK = b"~"
MS = 1_000_000  # nanoseconds


# Connections from one address: clients come from 127.0.0.2, 127.0.0.3... this many each (all
# of 127/8 is this machine), as a LAN's machines would, so that a server's per-address limit
# (comptoir's --max-per-ip, 20 by default) is met without being raised; set by --per-address.
PER_ADDRESS = 20
_opened = 0


def next_source() -> str:
    """The loopback address the next connection comes from."""
    global _opened
    n = 2 + _opened // PER_ADDRESS
    _opened += 1
    return f"127.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


def emit(event: str, **fields: Any) -> None:
    """One JSON line on stdout, flushed at once (run.py reads them as they come)."""
    print(json.dumps({"event": event, **fields}), flush=True)


def raise_open_files_limit(wanted: int) -> int:
    """The soft RLIMIT_NOFILE raised toward `wanted` (within the hard limit); the new soft."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def cpu_seconds() -> float:
    """CPU time this process used so far (user + system)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile(values: list[int], share: float) -> float | None:
    """The `share` percentile of nanosecond values, in milliseconds (None when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)] / MS


def marked(step: int, seq: int, size: int) -> str:
    """A message's text: its step, its send time and sequence number, padded to `size`."""
    head = f"~{step}~{time.monotonic_ns()}~{seq}~"
    return head + "x" * max(0, size - len(head))


async def settle(stats: Stats, clients: list[Client], quiet: float, most: float) -> dict[str, Any]:
    """Wait until no frame has arrived for `quiet` s (at most `most` s): what connecting made
    (comptoir's presence: each arrival announced to everyone already in the room) is over."""
    t0 = time.monotonic()
    last = -1
    while time.monotonic() - t0 < most:
        if stats.frames == last:
            break
        last = stats.frames
        await asyncio.sleep(quiet)
    return {
        "seconds": time.monotonic() - t0,
        "frames": stats.frames,
        "bytes": stats.bytes,
        "quiet": stats.frames == last,
        "open": sum(c.open for c in clients),
        "closed": dict(stats.closed),
    }


class Stats:
    """What receivers measured, by step: deliveries and latencies (nanoseconds)."""

    def __init__(self) -> None:
        self.count: dict[int, int] = {}
        self.latency: dict[int, list[int]] = {}
        self.rate_limited = 0
        self.closed: dict[str, int] = {}  # close codes (or "reset") of connections lost
        self.frames = 0  # every text frame received
        self.bytes = 0

    def record(self, frame: bytes, now: int) -> None:
        """A text frame that arrived at `now`: a delivery if it carries a mark."""
        self.frames += 1
        self.bytes += len(frame)
        i = frame.find(MARK)
        if i < 0:
            if b"rate_limited" in frame or b"too many frames" in frame:
                self.rate_limited += 1
            return
        j = frame.find(MARK, i + 1)
        k = frame.find(MARK, j + 1)
        try:
            step = int(frame[i + 1 : j])
            sent = int(frame[j + 1 : k])
        except ValueError:
            return
        self.count[step] = self.count.get(step, 0) + 1
        lat = self.latency.get(step)
        if lat is None:
            lat = self.latency[step] = []
        lat.append(now - sent)


class Client(asyncio.Protocol):
    """One WebSocket connection: the Sans-I/O protocol of `websockets` over a transport."""

    def __init__(
        self,
        url: str,
        subprotocol: str | None,
        stats: Stats,
        on_frame: Callable[[bytes], None] | None = None,
    ) -> None:
        protocols = [Subprotocol(subprotocol)] if subprotocol else None
        self.proto = ClientProtocol(parse_uri(url), subprotocols=protocols, max_size=2**22)
        self.stats = stats
        self.on_frame = on_frame
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pongs = 0
        self.lost = False
        self.transport: asyncio.Transport | None = None
        self._parts: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        self.proto.send_request(self.proto.connect())
        self._flush()

    def _flush(self) -> None:
        assert self.transport is not None
        for data in self.proto.data_to_send():
            if data:
                self.transport.write(data)
            elif self.transport.can_write_eof():
                self.transport.write_eof()

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        proto = self.proto
        proto.receive_data(data)
        for event in proto.events_received():
            if event.__class__ is Frame:
                opcode = event.opcode
                if opcode is Opcode.TEXT or opcode is Opcode.CONT:
                    # The parser gives bytes (the type says any bytes-like, for frames made
                    # by hand); not copied.
                    payload: bytes = event.data  # type: ignore[assignment]
                    if not event.fin or self._parts:
                        self._parts.append(payload)
                        if not event.fin:
                            continue
                        frame, self._parts = b"".join(self._parts), []
                    else:
                        frame = payload
                    self.stats.record(frame, now)
                    if self.on_frame is not None:
                        self.on_frame(frame)
                elif opcode is Opcode.PONG:
                    self.pongs += 1
                elif opcode is Opcode.CLOSE:
                    self._lose(str(proto.close_rcvd.code if proto.close_rcvd else "close"))
            elif isinstance(event, Response) and not self.opened.done():
                if proto.handshake_exc is not None:
                    self.opened.set_exception(proto.handshake_exc)
                else:
                    self.opened.set_result(None)
        self._flush()

    def eof_received(self) -> bool | None:
        self.proto.receive_eof()
        self._flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed during the handshake"))
        self._lose("reset" if exc else "eof")

    def _lose(self, why: str) -> None:
        if not self.lost:
            self.lost = True
            self.stats.closed[why] = self.stats.closed.get(why, 0) + 1

    @property
    def open(self) -> bool:
        """Whether the connection is open (handshake done, no close seen)."""
        return not self.lost and self.proto.state is State.OPEN

    def send(self, text: str) -> bool:
        """Send a text frame; False when the connection is gone (nothing sent)."""
        if not self.open:
            return False
        self.proto.send_text(text.encode())
        self._flush()
        return True

    def ping(self) -> None:
        """Send a ping frame."""
        if self.open:
            self.proto.send_ping(b"bench")
            self._flush()

    def close(self) -> None:
        """Close the connection (a close frame, then the socket)."""
        with contextlib.suppress(Exception):
            if self.open:
                self.proto.send_close(1000)
                self._flush()
        self.lost = True  # by this side: not counted as closed by the server
        if self.transport is not None:
            self.transport.close()


async def open_client(
    url: str,
    subprotocol: str | None,
    stats: Stats,
    *,
    timeout: float = 30.0,
    rcvbuf: int | None = None,
    on_frame: Callable[[bytes], None] | None = None,
) -> Client:
    """One connection, handshake done (raises on refusal, error or timeout)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    loop = asyncio.get_running_loop()
    client = Client(url, subprotocol, stats, on_frame)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if host.startswith("127."):
            sock.bind((next_source(), 0))
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.wait_for(loop.sock_connect(sock, (host, port)), timeout)
        await loop.create_connection(lambda: client, sock=sock)
    except BaseException:
        sock.close()
        raise
    try:
        await asyncio.wait_for(asyncio.shield(client.opened), timeout)
    except BaseException:
        client.close()
        raise
    return client


async def open_many(
    url: str,
    subprotocol: str | None,
    stats: Stats,
    n: int,
    concurrency: int,
    timeout: float,
    deadline: float | None = None,
) -> tuple[list[Client], dict[str, int], float]:
    """`n` connections, `concurrency` handshakes at a time, all within `deadline` s: the open
    ones, the failures by kind (those still waiting at the deadline too), and the seconds it
    took."""
    clients: list[Client] = []
    failures: dict[str, int] = {}
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            try:
                clients.append(await open_client(url, subprotocol, stats, timeout=timeout))
            except Exception as exc:  # refused, reset, timeout, a 4xx/5xx answer
                why = type(exc).__name__
                if getattr(exc, "response", None) is not None:
                    why += f" {exc.response.status_code}"  # type: ignore[attr-defined]
                failures[why] = failures.get(why, 0) + 1

    t0 = time.monotonic()
    tasks = [asyncio.ensure_future(one()) for _ in range(n)]
    _, pending = await asyncio.wait(tasks, timeout=deadline)
    for task in pending:
        task.cancel()
    if pending:
        failures["not tried within the deadline"] = len(pending)
        await asyncio.wait(pending)
    return clients, failures, time.monotonic() - t0


def json_message(text: str) -> str:
    """comptoir's JSON `message` frame to the default room."""
    return json.dumps({"type": "message", "room": "general", "text": text})


def frame_of(subprotocol: str | None) -> Callable[[str], str]:
    """How a client sends a message's text: comptoir's JSON frame, or the bare text."""
    return json_message if subprotocol else (lambda text: text)


async def send_paced(
    senders: list[Client],
    rate: float,
    duration: float,
    step: int,
    size: int,
    make: Callable[[str], str],
) -> int:
    """`rate` messages/s in all, spread over the senders, for `duration` s: how many sent."""
    per = rate / len(senders)
    sent = 0

    async def one(index: int, client: Client) -> None:
        nonlocal sent
        start = time.monotonic() + index / rate  # the senders take turns
        k = 0
        while True:
            at = start + k / per
            if at >= start_all + duration:
                return
            delay = at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            sent += client.send(make(marked(step, sent, size)))
            k += 1

    start_all = time.monotonic()
    await asyncio.gather(*(one(i, c) for i, c in enumerate(senders)))
    return sent


async def drain(stats: Stats, step: int, expected: int, timeout: float) -> None:
    """Wait until `expected` deliveries of `step` arrived, or `timeout` s."""
    deadline = time.monotonic() + timeout
    while stats.count.get(step, 0) < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.02)


async def run_step(
    clients: list[Client],
    stats: Stats,
    *,
    step: int,
    rate: float,
    duration: float,
    size: int,
    sender_rate: float,
    make: Callable[[str], str],
    drain_s: float,
) -> dict[str, Any]:
    """One rate for `duration` s: deliveries/s, latency percentiles, losses, client CPU. Each
    message is expected at every client still open when the step starts (those the server
    closed before are counted apart, as `closed`)."""
    live = [c for c in clients if c.open]
    if not live:
        raise ConnectionError("the server closed every connection")
    n_senders = min(len(live), max(1, math.ceil(rate / sender_rate)))
    senders = live[:n_senders]
    limited = stats.rate_limited
    cpu0, t0 = cpu_seconds(), time.monotonic()
    sent = await send_paced(senders, rate, duration, step, size, make)
    send_s = time.monotonic() - t0
    expected = sent * len(live)
    await drain(stats, step, expected, drain_s)
    wall = time.monotonic() - t0
    cpu = cpu_seconds() - cpu0
    lat = stats.latency.get(step, [])
    delivered = stats.count.get(step, 0)
    return {
        "rate": rate,
        "senders": n_senders,
        "sent": sent,
        "expected": expected,
        "delivered": delivered,
        "lost": max(0, expected - delivered),
        # Over the sending window as asked (a step that keeps up gives rate x receivers).
        "deliveries_per_s": delivered / duration,
        "send_s": send_s,
        "p50_ms": percentile(lat, 0.50),
        "p99_ms": percentile(lat, 0.99),
        "max_ms": percentile(lat, 1.0),
        "rate_limited": stats.rate_limited - limited,
        "client_cpu": cpu / wall,
        "receivers": len(live),
        "open": sum(c.open for c in clients),
    }


async def fanout(a: argparse.Namespace) -> dict[str, Any]:
    stats = Stats()
    clients, failures, took = await open_many(
        a.url, a.subprotocol, stats, a.clients, a.concurrency, a.timeout, a.connect_max
    )
    emit("connected", clients=len(clients), failures=failures, seconds=took)
    settled = await settle(stats, clients, a.settle, a.settle_max)
    emit("settled", **settled)
    steps = []
    best = None
    make = frame_of(a.subprotocol)
    for step, rate in enumerate(a.rates, start=1):
        if not clients:
            break
        result = await run_step(
            clients,
            stats,
            step=step,
            rate=rate,
            duration=a.step,
            size=a.size,
            sender_rate=a.sender_rate,
            make=make,
            drain_s=a.drain,
        )
        result["ok"] = (
            result["p99_ms"] is not None and result["p99_ms"] <= a.p99_ms and result["lost"] == 0
        )
        steps.append(result)
        emit("step", **result)
        if not result["ok"]:
            break
        best = result
        stats.latency.pop(step, None)  # each step's latencies kept only while it runs
        await asyncio.sleep(a.pause)
    for c in clients:
        c.close()
    return {
        "clients": len(clients),
        "connect_failures": failures,
        "connect_s": took,
        "steps": steps,
        "best": best,
        "deliveries_per_s": best["deliveries_per_s"] if best else None,
        # Every rate met the bound: the figure is the last rate's, not the server's limit.
        "limit_reached": bool(steps) and not steps[-1]["ok"],
        "closed": stats.closed,
        "client_cpu_at_limit": steps[-1]["client_cpu"] if steps else None,
    }


async def idle(a: argparse.Namespace) -> dict[str, Any]:
    stats = Stats()
    clients, failures, took = await open_many(
        a.url, a.subprotocol, stats, a.clients, a.concurrency, a.timeout, a.connect_max
    )
    emit(
        "connected",
        clients=len(clients),
        failures=failures,
        seconds=took,
        handshakes_per_s=len(clients) / took if took else None,
    )
    settled = await settle(stats, clients, a.settle, a.settle_max)
    emit("settled", **settled)
    await asyncio.sleep(a.hold)
    emit("holding", open=sum(c.open for c in clients))
    for c in clients:
        c.ping()
    deadline = time.monotonic() + a.timeout
    while time.monotonic() < deadline and sum(c.pongs > 0 for c in clients) < len(clients):
        await asyncio.sleep(0.05)
    answered = sum(c.pongs > 0 and c.open for c in clients)
    for c in clients:
        c.close()
    return {
        "clients": a.clients,
        "connected": len(clients),
        "answered": answered,
        "errors": a.clients - answered,
        "connect_failures": failures,
        "connect_s": took,
        "handshakes_per_s": len(clients) / took if took else None,
        "settled": settled,
        "closed": stats.closed,
        "client_cpu_s": cpu_seconds(),
    }


async def slow(a: argparse.Namespace) -> dict[str, Any]:
    stats = Stats()
    clients, failures, took = await open_many(
        a.url, a.subprotocol, stats, a.clients, a.concurrency, a.timeout, a.connect_max
    )
    emit("connected", clients=len(clients), failures=failures, seconds=took)
    emit("settled", **await settle(stats, clients, a.settle, a.settle_max))
    make = frame_of(a.subprotocol)
    common = {
        "rate": a.rate,
        "duration": a.duration,
        "size": a.size,
        "sender_rate": a.sender_rate,
        "make": make,
        "drain_s": a.drain,
    }
    emit("phase", name="without")
    without = await run_step(clients, stats, step=1, **common)
    emit("step", name="without", **without)
    # One more client, that never reads: its socket's receive buffer small, as a phone's.
    slow_stats = Stats()
    laggard = await open_client(
        a.url, a.subprotocol, slow_stats, timeout=a.timeout, rcvbuf=a.rcvbuf
    )
    assert laggard.transport is not None
    laggard.transport.pause_reading()
    await settle(stats, clients, a.settle, a.settle_max)
    emit("phase", name="with")
    with_slow = await run_step(clients, stats, step=2, **common)
    emit("step", name="with", **with_slow)
    # What the server did with it: read what is there (bounded), see whether it was closed.
    laggard.transport.resume_reading()
    t0 = time.monotonic()
    while not laggard.lost and time.monotonic() - t0 < a.drain:
        await asyncio.sleep(0.05)
    fate = dict(slow_stats.closed)
    for c in [*clients, laggard]:
        c.close()
    return {
        "clients": len(clients),
        "connect_failures": failures,
        "without": without,
        "with": with_slow,
        "p99_ratio": (
            with_slow["p99_ms"] / without["p99_ms"]
            if with_slow["p99_ms"] and without["p99_ms"]
            else None
        ),
        "slow_client": {
            "closed_by_server": fate,
            "messages_read_after": sum(slow_stats.count.values()),
            "rcvbuf": a.rcvbuf,
        },
        "closed": stats.closed,
    }


async def recovery(a: argparse.Namespace) -> dict[str, Any]:
    """Runs of: note the last id, go away, --missed messages posted, come back with it."""
    if not a.subprotocol:
        raise SystemExit("recovery needs the JSON protocol (--subprotocol comptoir.chat.v1)")
    runs = []
    for run in range(1, a.runs + 1):
        runs.append(await _recovery_run(a, run))
        emit("run", **runs[-1])
    good = sorted(r["seconds"] for r in runs if r["ok"])
    return {
        "runs": runs,
        "seconds": good[len(good) // 2] if good else None,
        "max_s": good[-1] if good else None,
        "errors": sum(not r["ok"] for r in runs),
    }


async def _recovery_run(a: argparse.Namespace, run: int) -> dict[str, Any]:
    step = 1000 + run  # the runs' messages told apart from each other
    last_seen: list[int] = []

    def note_id(frame: bytes) -> None:
        if b'"type":"message"' in frame or b'"type": "message"' in frame:
            last_seen.append(json.loads(frame)["id"])

    stats = Stats()
    away = await open_client(a.url, a.subprotocol, stats, timeout=a.timeout, on_frame=note_id)
    away.send(json_message(f"~{step - 500}~{time.monotonic_ns()}~0~before"))
    deadline = time.monotonic() + a.timeout
    while not last_seen and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    if not last_seen:
        away.close()
        return {"run": run, "ok": False, "problem": "no message id seen before going away"}
    last_id = last_seen[-1]
    away.close()
    # The senders post the missed messages, within the rate limit, and wait to see them all.
    sender_stats = Stats()
    n_senders = max(1, math.ceil(a.missed / (a.sender_rate * 2)))
    senders, failures, _ = await open_many(
        a.url, a.subprotocol, sender_stats, n_senders, a.concurrency, a.timeout
    )
    if failures or not senders:
        return {"run": run, "ok": False, "problem": f"senders refused: {failures}"}
    seq = 0

    async def post(client: Client, count: int) -> None:
        nonlocal seq
        for _ in range(count):
            seq += 1
            client.send(json_message(f"~{step}~{time.monotonic_ns()}~{seq}~"))
            await asyncio.sleep(1 / a.sender_rate)

    shares = [a.missed // len(senders) + (i < a.missed % len(senders)) for i in range(len(senders))]
    await asyncio.gather(*(post(c, n) for c, n in zip(senders, shares, strict=True)))
    # Every sender is in the room: once each saw all of them, they are all in the history.
    await drain(sender_stats, step, a.missed * len(senders), a.timeout)
    seen_by_senders = sender_stats.count.get(step, 0)
    for c in senders:
        c.close()
    # Back, with the last id seen.
    got: list[tuple[int, int]] = []  # (id, seq) of this run's messages, as they arrive
    done = asyncio.get_running_loop().create_future()
    arrived: list[float] = []

    def collect(frame: bytes) -> None:
        if b"~%d~" % step not in frame:
            return
        event = json.loads(frame)
        got.append((event["id"], int(event["text"].split("~")[3])))
        if len(got) == a.missed and not done.done():
            arrived.append(time.monotonic())
            done.set_result(None)

    back_stats = Stats()
    t0 = time.monotonic()
    back = await open_client(
        f"{a.url}?last_id={last_id}", a.subprotocol, back_stats, timeout=a.timeout, on_frame=collect
    )
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(done), a.timeout)
    # Anything more of them (a duplicate) within a moment is an error too.
    await asyncio.sleep(0.2)
    back.close()
    ids = [i for i, _ in got]
    seqs = sorted(s for _, s in got)
    problem = None
    if seen_by_senders < a.missed * len(senders):
        problem = f"the senders saw {seen_by_senders} of {a.missed * len(senders)} deliveries"
    elif len(got) != a.missed:
        problem = f"{len(got)} messages received back, {a.missed} missed"
    elif ids != sorted(ids) or len(set(ids)) != len(ids):
        problem = "ids out of order or repeated"
    elif seqs != list(range(1, a.missed + 1)):
        problem = "not exactly the messages posted"
    elif ids[0] <= last_id:
        problem = "a message from before last_id"
    return {
        "run": run,
        "ok": problem is None,
        "problem": problem,
        "seconds": (arrived[0] - t0) if arrived else None,
        "received": len(got),
        "last_id": last_id,
        "senders": len(senders),
    }


def _rates(text: str) -> list[float]:
    rates = [float(r) for r in re.split(r"[,\s]+", text.strip()) if r]
    if not rates or min(rates) <= 0:
        raise argparse.ArgumentTypeError("rates are positive numbers, separated by commas")
    return rates


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("scenario", choices=("fanout", "idle", "slow", "recovery"))
    p.add_argument("--url", required=True, help="ws://host:port/path")
    p.add_argument("--subprotocol", help="offer this subprotocol (comptoir.chat.v1: JSON)")
    p.add_argument("--clients", type=int, default=100)
    p.add_argument("--concurrency", type=int, default=100, help="handshakes at a time")
    p.add_argument("--timeout", type=float, default=30.0, help="for one handshake, one wait")
    p.add_argument("--connect-max", type=float, default=120.0, help="s for all the handshakes")
    p.add_argument("--settle", type=float, default=0.5, help="quiet s before the load")
    p.add_argument("--settle-max", type=float, default=60.0, help="at most, s (presence storm)")
    p.add_argument("--per-address", type=int, default=PER_ADDRESS, help="connections per address")
    p.add_argument("--rates", type=_rates, default=_rates("10,20,40,80"), help="messages/s")
    p.add_argument("--step", type=float, default=2.0, help="s per rate (fanout)")
    p.add_argument("--drain", type=float, default=2.0, help="s waited for late deliveries")
    p.add_argument("--pause", type=float, default=0.5, help="s between rates")
    p.add_argument("--p99-ms", type=float, default=100.0, help="the latency a rate must meet")
    p.add_argument("--size", type=int, default=32, help="bytes of a message's text")
    p.add_argument(
        "--sender-rate", type=float, default=15.0, help="messages/s per sender (under a limit)"
    )
    p.add_argument("--hold", type=float, default=5.0, help="s connections are held (idle)")
    p.add_argument("--rate", type=float, default=50.0, help="messages/s (slow)")
    p.add_argument("--duration", type=float, default=5.0, help="s per phase (slow)")
    p.add_argument("--rcvbuf", type=int, default=65536, help="the slow client's SO_RCVBUF")
    p.add_argument("--missed", type=int, default=1000, help="messages missed (recovery)")
    p.add_argument("--runs", type=int, default=3, help="recovery runs")
    return p.parse_args(argv)


async def _main(a: argparse.Namespace) -> dict[str, Any]:
    scenario = {"fanout": fanout, "idle": idle, "slow": slow, "recovery": recovery}[a.scenario]
    return await scenario(a)


def main(argv: list[str] | None = None) -> None:
    global PER_ADDRESS
    a = parse_args(argv)
    PER_ADDRESS = max(1, a.per_address)
    limit = raise_open_files_limit(a.clients + 256)
    if limit < a.clients + 64:
        emit("error", reason=f"open-files limit {limit} is too low for {a.clients} clients")
        sys.exit(1)
    try:
        import uvloop

        run: Callable[..., Any] = uvloop.run
        loop = "uvloop"
    except ImportError:
        run, loop = asyncio.run, "asyncio"
    result = run(_main(a))
    emit("done", loop=loop, pid=os.getpid(), **result)


if __name__ == "__main__":
    main()
