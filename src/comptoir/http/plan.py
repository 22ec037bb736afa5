"""What to answer for a representation: the one decision behind every body comptoir sends.

A file (http/files.py), a body held in memory, a share's archive of known size or of unknown size
(sites/share): each is described as a `Representation` (length and validators), and `plan()`
decides the answer from the request's preconditions and Range (RFC 9110 §13, §14): its status
(200, 206, 304, 412, 416), its byte ranges, whether a body goes out at all, and whether that body
reaches the representation's last byte. `send_plan()` then frames exactly that answer.

The decision lives here only. A share counts a download as complete when it sends the last byte
(sites/share/limits.py): it takes its slot from the same `Plan` it sends, so what is counted and
what reaches the client cannot disagree. (They once did: three modules each took this decision,
and a multi-range request got a whole archive that nobody counted.)
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass

from comptoir.http import conditional
from comptoir.http.ranges import Unsatisfiable, parse_range
from comptoir.http.responses import send_empty
from comptoir.types import Send

Headers = list[tuple[bytes, bytes]]
# The bytes start..end (inclusive) of a representation; end None: up to its end, size unknown.
ReadBytes = Callable[[int, int | None], AsyncGenerator[bytes, None]]

# What a 304 keeps of the representation's headers (RFC 9110 §15.4.5), and a 416.
_NOT_MODIFIED_HEADERS = frozenset((b"etag", b"last-modified", b"cache-control", b"vary"))
_UNSATISFIABLE_HEADERS = frozenset((b"etag", b"last-modified", b"accept-ranges"))


@dataclass(frozen=True, slots=True)
class Representation:
    """What answering needs to know of a body: its length, validators, and range support.

    Preconditions and If-Range need the strong `etag`: without one (a compressed archive, made
    as it is sent) the answer is always the whole body. Ranges need the `size`.
    """

    # Length in bytes; None when only sending it tells (then no ranges, no Content-Length).
    size: int | None
    etag: str | None = None
    # Last-Modified as sent, and the same time in whole seconds (If-Modified-Since...).
    last_modified: str | None = None
    mtime: int | None = None
    # Several ranges may be answered as multipart/byteranges; if not (an archive, remade up to
    # each range), a request for several is answered with the whole body, as RFC 9110 allows.
    multipart: bool = True


@dataclass(frozen=True, slots=True)
class Plan:
    """The answer decided for one request: status, byte ranges, and what the body delivers."""

    status: int
    # The byte ranges (start, end inclusive) of a 206: one, or several (multipart).
    ranges: tuple[tuple[int, int], ...] = ()
    # A body goes out (not for HEAD, 304, 412, 416).
    body: bool = True
    # The answer carries (or for HEAD, would carry) the representation's last byte.
    reaches_end: bool = True
    # The answer is the whole representation (not ranges, nor a refusal without a body).
    whole: bool = True

    @property
    def completes(self) -> bool:
        """A body goes out and ends with the last byte: a complete download, as a share counts."""
        return self.body and self.reaches_end


# The answers most requests get, made once: planning a plain GET allocates nothing.
WHOLE = Plan(200)
WHOLE_HEAD = Plan(200, body=False)
NOT_MODIFIED = Plan(304, body=False, reaches_end=False, whole=False)
PRECONDITION_FAILED = Plan(412, body=False, reaches_end=False, whole=False)
UNSATISFIABLE = Plan(416, body=False, reaches_end=False, whole=False)


def plan(
    method: str, headers: Mapping[str, str], rep: Representation, *, status: int = 200
) -> Plan:
    """Decide the answer to a GET or HEAD of `rep`, given the request's headers (lower-case names).

    `status` other than 200 (a custom 404 page) is the answer as it is: no preconditions, no
    ranges.
    """
    head = method == "HEAD"
    if status != 200:
        return Plan(status, body=not head)
    whole = WHOLE_HEAD if head else WHOLE
    if not headers:
        return whole
    if rep.etag is not None:
        decided = conditional.evaluate(method, headers, rep.etag, rep.mtime)
        if decided == 304:
            return NOT_MODIFIED
        if decided == 412:
            return PRECONDITION_FAILED
    range_header = headers.get("range")
    if (
        range_header is None
        or rep.size is None
        or not conditional.range_applies(headers, rep.etag, rep.last_modified)
    ):
        return whole
    try:
        ranges = parse_range(range_header, rep.size)
    except Unsatisfiable:
        return UNSATISFIABLE
    if ranges is None or (len(ranges) > 1 and not rep.multipart):
        return whole
    last = rep.size - 1
    if len(ranges) == 1:
        reaches_end = ranges[0][1] == last
    else:
        reaches_end = any(end == last for _, end in ranges)
    return Plan(206, tuple(ranges), body=not head, reaches_end=reaches_end, whole=False)


async def send_plan(
    send: Send, plan: Plan, size: int | None, headers: Headers, read: ReadBytes | None
) -> None:
    """Send the answer `plan` describes, reading the bytes it needs with `read` (None: no body).

    `headers` are the representation's own (type, validators, caching; a fresh list this may
    extend); this adds what the status frames: Content-Length, Content-Range, multipart parts.
    """
    status = plan.status
    if status == 304:
        await send_empty(send, 304, [h for h in headers if h[0] in _NOT_MODIFIED_HEADERS])
        return
    if status == 412:
        await send_empty(send, 412, [(b"content-length", b"0")])
        return
    if status == 416:
        refused = [
            (b"content-range", f"bytes */{size}".encode()),
            (b"content-length", b"0"),
            *[h for h in headers if h[0] in _UNSATISFIABLE_HEADERS],
        ]
        await send_empty(send, 416, refused)
        return
    if len(plan.ranges) > 1:
        assert size is not None
        await _send_multipart(send, plan, size, headers, read)
        return
    end: int | None
    if plan.ranges:
        start, end = plan.ranges[0]
        headers.append((b"content-range", f"bytes {start}-{end}/{size}".encode()))
    else:
        start, end = 0, None if size is None else size - 1
    if end is not None:
        headers.append((b"content-length", str(end - start + 1).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    if plan.body and read is not None and (end is None or end >= start):
        await _send_bytes(send, read(start, end), last=True)
    else:
        await send({"type": "http.response.body", "body": b""})


async def _send_bytes(send: Send, chunks: AsyncGenerator[bytes, None], *, last: bool) -> None:
    """Send `chunks` as body messages; with `last`, the body's last bytes end the response.

    Read one chunk ahead: the chunk that turns out to be the last goes out with
    `more_body=False` itself, never followed by an empty closing message. Handing over the last
    byte and finishing the response are then one message, whether or not the length is known:
    a client cannot have the whole body while the response is not yet finished (a share would
    give its slot back when such a client hangs up during the step that finds the end).
    """
    try:
        held: bytes | None = None
        async for chunk in chunks:
            if held is not None:
                await send({"type": "http.response.body", "body": held, "more_body": True})
            held = chunk
        if held is not None:
            await send({"type": "http.response.body", "body": held, "more_body": not last})
        elif last:
            await send({"type": "http.response.body", "body": b""})
    except BaseException:
        # Closed as soon as sending stops (a client gone): its open file goes with it. (Run to
        # its end, a generator is closed already.)
        await chunks.aclose()
        raise


async def _send_multipart(
    send: Send, plan: Plan, size: int, headers: Headers, read: ReadBytes | None
) -> None:
    boundary = secrets.token_hex(16)
    ctype = next((v.decode("latin-1") for k, v in headers if k == b"content-type"), "")
    part_heads = [
        (
            f"--{boundary}\r\nContent-Type: {ctype}\r\nContent-Range: bytes {s}-{e}/{size}\r\n\r\n"
        ).encode()
        for s, e in plan.ranges
    ]
    tail = f"--{boundary}--\r\n".encode()
    length = sum(
        len(h) + (e - s + 1) + 2 for h, (s, e) in zip(part_heads, plan.ranges, strict=True)
    )
    length += len(tail)
    headers = [h for h in headers if h[0] != b"content-type"]
    headers.append((b"content-type", f"multipart/byteranges; boundary={boundary}".encode()))
    headers.append((b"content-length", str(length).encode()))
    await send({"type": "http.response.start", "status": 206, "headers": headers})
    if not plan.body or read is None:
        await send({"type": "http.response.body", "body": b""})
        return
    for head, (s, e) in zip(part_heads, plan.ranges, strict=True):
        await send({"type": "http.response.body", "body": head, "more_body": True})
        await _send_bytes(send, read(s, e), last=False)
        await send({"type": "http.response.body", "body": b"\r\n", "more_body": True})
    await send({"type": "http.response.body", "body": tail})
