"""Answers that take time or are made up on the spot: delays, drips, streams, random bytes,
ranges, server-sent events, WebSocket echo, the raw request dump, uuid and hostname.

Every duration is bounded by the site's `max_duration` and every generated body by `max_bytes`;
beyond them the request is refused with 400, as go-httpbin does (httpbin's /bytes and
/stream-bytes clamp instead, and so do these, to `max_bytes`).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import time
import uuid
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from comptoir.errors import HTTPError
from comptoir.http.cookies import without_own_cookies
from comptoir.settings import parse_duration
from comptoir.sites.echo.context import EchoContext, echo_context
from comptoir.sites.echo.endpoints import ALL_METHODS, GET_KEYS
from comptoir.sites.echo.inspection import (
    describe,
    header,
    query_int,
    query_value,
    raw_request_target,
    read_body,
)
from comptoir.sites.echo.responses import json_response, parse_status, text_response

OCTETS = "application/octet-stream"
# Below this pause between writes, bytes are grouped: the drip keeps its pace without one
# event-loop wake-up per byte.
MIN_PAUSE = 0.01


def parse_seconds(text: str, what: str) -> float:
    """Seconds from `1.5` or a duration such as `1500ms`, `2s`; HTTPError 400 otherwise."""
    try:
        value = parse_duration(text)
    except ValueError:
        raise HTTPError(400, f"invalid {what}: not a duration") from None
    return value


def query_seconds(request: Request, name: str, default: float) -> float:
    """A duration from the query string, bounded by the site's max duration."""
    raw = query_value(request, name)
    value = default if raw is None else parse_seconds(raw, name)
    return echo_context(request).check_duration(value, name)


async def delay(request: Request) -> Response:
    """/delay/{seconds}: wait, then answer like /post (at most `max_duration`)."""
    ctx = echo_context(request)
    seconds = ctx.check_duration(parse_seconds(request.path_params["delay"], "delay"), "delay")
    await asyncio.sleep(seconds)
    return json_response(
        await describe(request, "url", "args", "form", "data", "origin", "headers", "files")
    )


async def drip(request: Request) -> Response:
    """/drip?numbytes=&duration=&delay=&code=: bytes spread over a duration, after a delay."""
    ctx = echo_context(request)
    duration = query_seconds(request, "duration", min(2.0, ctx.options.max_duration))
    wait = query_seconds(request, "delay", 0.0)
    numbytes = query_int(request, "numbytes", 10)
    code_text = query_value(request, "code")
    code = 200 if code_text is None else parse_status(code_text)
    if code in (204, 304):
        raise HTTPError(400, f"invalid code: a {code} answer cannot carry the dripped bytes")
    if numbytes <= 0:
        raise HTTPError(400, "number of bytes must be positive")
    if numbytes > ctx.options.max_bytes:
        raise HTTPError(400, f"numbytes must be at most {ctx.options.max_bytes}")
    if duration + wait > ctx.options.max_duration:
        raise HTTPError(400, "Too much time")
    if wait > 0:
        await asyncio.sleep(wait)
    writes = numbytes if duration / numbytes >= MIN_PAUSE else max(1, int(duration / MIN_PAUSE))
    headers = {"content-length": str(numbytes)}
    return StreamingResponse(
        _paced(numbytes, writes, duration), code, headers=headers, media_type=OCTETS
    )


async def _paced(numbytes: int, writes: int, duration: float) -> AsyncIterator[bytes]:
    """`numbytes` asterisks in `writes` writes spread over `duration` (no pause after the last)."""
    start = time.monotonic()
    sent = 0
    for i in range(writes):
        size = (numbytes * (i + 1)) // writes - sent
        sent += size
        yield b"*" * size
        if i < writes - 1:
            due = start + duration * (i + 1) / (writes - 1)
            await asyncio.sleep(max(0.0, due - time.monotonic()))


async def stream(request: Request) -> Response:
    """/stream/{n}: n lines (at most 100) of JSON describing the request, each with its id."""
    n = min(request.path_params["n"], 100)
    doc = await describe(request, *GET_KEYS)

    async def lines() -> AsyncIterator[bytes]:
        for i in range(n):
            doc["id"] = i
            yield (json.dumps(doc) + "\n").encode()

    return StreamingResponse(lines(), media_type="application/json")


def _rng(request: Request) -> random.Random | None:
    """A generator seeded as httpbin seeds it (same bytes for the same seed), or None."""
    seed = query_value(request, "seed")
    if seed is None:
        return None
    try:
        return random.Random(int(seed))
    except ValueError:
        raise HTTPError(400, "invalid seed: not a whole number") from None


def _random_bytes(rng: random.Random | None, n: int) -> bytes:
    if rng is None:
        return os.urandom(n)
    # httpbin draws randint(0, 255) per byte: the same draws give the same bytes for a seed.
    return bytes(rng.randint(0, 255) for _ in range(n))


async def random_bytes(request: Request) -> Response:
    """/bytes/{n}: n random bytes (at most `max_bytes`), reproducible with ?seed=."""
    n = min(request.path_params["n"], echo_context(request).options.max_bytes)
    rng = _rng(request)
    # A seeded megabyte takes a while to draw: keep the event loop free meanwhile.
    data = await asyncio.to_thread(_random_bytes, rng, n) if rng else os.urandom(n)
    return Response(data, media_type=OCTETS)


# A body is sent in at most this many chunks: `chunk_size=1` on a megabyte would otherwise cost
# seconds of CPU (a message per byte). Small bodies keep chunks as small as asked.
MAX_CHUNKS = 10_000


# Seeded bytes are drawn off the event loop this many at a time (whole chunks, at least one).
SEEDED_BLOCK = 64 * 1024


def _chunk_size(request: Request, n: int) -> int:
    """?chunk_size= (default 10 KiB), at least 1 and large enough for MAX_CHUNKS chunks."""
    asked = max(1, query_int(request, "chunk_size", 10 * 1024))
    return max(asked, -(-n // MAX_CHUNKS))


async def stream_bytes(request: Request) -> Response:
    """/stream-bytes/{n}: n random bytes in chunks of ?chunk_size= (default 10 KiB)."""
    n = min(request.path_params["n"], echo_context(request).options.max_bytes)
    rng = _rng(request)
    chunk_size = _chunk_size(request, n)

    async def chunks() -> AsyncIterator[bytes]:
        left = n
        while left > 0:
            if rng is None:
                size = min(chunk_size, left)
                left -= size
                yield os.urandom(size)
                await asyncio.sleep(0)
                continue
            # Seeded bytes are drawn one by one (about 1 s a megabyte): off the event loop, as
            # for /bytes, a block of whole chunks at a time (the same draws, so the same bytes).
            block_size = min(left, max(chunk_size, SEEDED_BLOCK) // chunk_size * chunk_size)
            left -= block_size
            block = await asyncio.to_thread(_random_bytes, rng, block_size)
            for start in range(0, block_size, chunk_size):
                yield block[start : start + chunk_size]
                await asyncio.sleep(0)

    return StreamingResponse(chunks(), media_type=OCTETS)


def _byte_range(value: str | None, size: int) -> tuple[int, int]:
    """First and last byte of a Range header, read as loosely as httpbin reads it."""
    first: int | None = None
    last: int | None = None
    text = (value or "").strip()
    parts = text.split("=")
    if text.startswith("bytes") and len(parts) == 2:
        ends = parts[1].split("-")
        try:
            last = int(ends[1])
        except (ValueError, IndexError):
            last = None
        try:
            first = int(ends[0])
        except ValueError:
            first = None
    if first is None and last is None:
        return 0, size - 1
    if first is None:
        assert last is not None
        return max(0, size - last), size - 1
    if last is None:
        return first, size - 1
    return first, last


async def byte_range(request: Request) -> Response:
    """/range/{n}: n bytes `abc…z` repeating, honouring Range (206, 416), ?chunk_size, ?duration."""
    ctx = echo_context(request)
    n: int = request.path_params["n"]
    tags = {"etag": f"range{n}", "accept-ranges": "bytes"}
    limit = ctx.options.max_bytes
    if n <= 0 or n > limit:
        message = f"number of bytes must be in the range (0, {limit}]"
        return text_response(message, 404, headers=tags)
    chunk_size = _chunk_size(request, n)
    duration = query_seconds(request, "duration", 0.0)
    first, last = _byte_range(header(request, "range"), n)
    if first > last or not 0 <= first < n or not 0 <= last < n:
        return Response(b"", 416, {**tags, "content-range": f"bytes */{n}"})
    pause = duration / n

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(first, last + 1, chunk_size):
            end = min(start + chunk_size, last + 1)
            await asyncio.sleep(pause * (end - start))
            yield bytes(97 + i % 26 for i in range(start, end))

    headers = {
        **tags,
        "content-length": str(last - first + 1),
        "content-range": f"bytes {first}-{last}/{n}",
    }
    code = 200 if (first, last) == (0, n - 1) else 206
    return StreamingResponse(chunks(), code, headers=headers, media_type=OCTETS)


async def sse(request: Request) -> Response:
    """/sse?count=&duration=&delay=: `ping` server-sent events spread over a duration."""
    ctx = echo_context(request)
    count = query_int(request, "count", 10)
    # Each event is about 60 bytes: the count is bounded as any generated body is.
    most = max(1, ctx.options.max_bytes // 64)
    if not 1 <= count <= most:
        raise HTTPError(400, f"invalid count: must be in range [1, {most}]")
    duration = query_seconds(request, "duration", min(5.0, ctx.options.max_duration))
    wait = query_seconds(request, "delay", 0.0)
    if duration + wait > ctx.options.max_duration:
        raise HTTPError(400, "Too much time")
    if wait > 0:
        await asyncio.sleep(wait)

    async def events() -> AsyncIterator[bytes]:
        start = time.monotonic()
        for i in range(count):
            if i:
                due = start + duration * i / (count - 1)
                await asyncio.sleep(max(0.0, due - time.monotonic()))
            event = {"id": i, "timestamp": int(time.time() * 1000)}
            data = json.dumps(event, separators=(",", ":"))
            yield f"event: ping\ndata: {data}\n\n".encode()

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"cache-control": "no-cache"}
    )


async def websocket_echo(ws: WebSocket) -> None:
    """/websocket/echo: every text or binary message sent back, until close or max duration."""
    ctx: EchoContext = echo_context(ws)
    limit = ctx.options.max_body
    raw = query_value(ws, "max_message_size")
    if raw is not None:
        try:
            limit = int(raw)
        except ValueError:
            limit = 0
        if not 1 <= limit <= ctx.options.max_body:
            await ws.close(1008)
            return
    await ws.accept()
    try:
        async with asyncio.timeout(ctx.options.max_duration):
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                text, data = message.get("text"), message.get("bytes")
                size = len(text.encode()) if text is not None else len(data or b"")
                if size > limit:
                    await ws.close(1009, "message too big")
                    return
                if text is not None:
                    await ws.send_text(text)
                else:
                    await ws.send_bytes(data or b"")
    except TimeoutError:
        await ws.close(1000, "max duration reached")
    except WebSocketDisconnect:
        return


async def dump_request(request: Request) -> Response:
    """/dump/request: the request as received (request line, headers, body), as text."""
    body = await read_body(request, echo_context(request).options.max_body)
    version = request.scope.get("http_version", "1.1")
    # In bytes throughout, as they came: nothing to decode, nothing that fails to encode.
    start = f"{request.method} ".encode("latin-1", "replace")
    lines = [start + raw_request_target(request) + f" HTTP/{version}".encode("latin-1", "replace")]
    for k, v in request.scope["headers"]:
        # comptoir's own cookies (a session) are never shown back.
        shown = without_own_cookies(v) if k.lower() == b"cookie" else v
        if shown is not None:
            lines.append(k + b": " + shown)
    head = b"\r\n".join(lines) + b"\r\n\r\n"
    return Response(head + body, media_type="text/plain; charset=utf-8")


async def uuid4(request: Request) -> Response:
    """/uuid: a fresh UUID4."""
    return json_response({"uuid": str(uuid.uuid4())})


async def hostname(request: Request) -> Response:
    """/hostname: the machine's name with --real-hostname, else `comptoir`."""
    real = echo_context(request).options.real_hostname
    return json_response({"hostname": socket.gethostname() if real else "comptoir"})


ROUTES: list[BaseRoute] = [
    Route("/delay/{delay}", delay, methods=ALL_METHODS),
    Route("/drip", drip, methods=["GET"]),
    Route("/stream/{n:count}", stream, methods=["GET"]),
    Route("/bytes/{n:count}", random_bytes, methods=["GET"]),
    Route("/stream-bytes/{n:count}", stream_bytes, methods=["GET"]),
    Route("/range/{n:count}", byte_range, methods=["GET"]),
    Route("/sse", sse, methods=["GET"]),
    Route("/dump/request", dump_request, methods=[*ALL_METHODS, "HEAD"]),
    Route("/uuid", uuid4, methods=["GET"]),
    Route("/hostname", hostname, methods=["GET"]),
    WebSocketRoute("/websocket/echo", websocket_echo),
]
