"""http/plan.py: one decision (status, ranges, body, last byte), and the framing that sends it."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from comptoir.http.plan import (
    NOT_MODIFIED,
    PRECONDITION_FAILED,
    UNSATISFIABLE,
    WHOLE,
    WHOLE_HEAD,
    Plan,
    ReadBytes,
    Representation,
    plan,
    send_plan,
)
from comptoir.types import Message

ETAG = '"abc-10"'
LM = "Tue, 14 Nov 2023 22:13:20 GMT"
MTIME = 1_700_000_000
FILE = Representation(100, ETAG, LM, MTIME)
# An archive remade up to each range: several ranges are answered whole.
ARCHIVE = Representation(100, ETAG, LM, MTIME, multipart=False)
# A compressed archive: neither length nor validators until it is sent.
STREAM = Representation(None)
# A body made in memory with an ETag but no date.
MEMORY = Representation(100, ETAG)


def decide(rep: Representation = FILE, method: str = "GET", **headers: str) -> Plan:
    return plan(method, {k.replace("_", "-"): v for k, v in headers.items()}, rep)


def test_a_plain_get_or_head_is_the_whole_body_without_allocating() -> None:
    assert decide() is WHOLE
    assert decide(method="HEAD") is WHOLE_HEAD
    assert WHOLE.whole and WHOLE.body and WHOLE.completes
    assert WHOLE_HEAD.whole and not WHOLE_HEAD.body and not WHOLE_HEAD.completes


def test_preconditions() -> None:
    assert decide(if_none_match=ETAG) is NOT_MODIFIED
    assert decide(method="HEAD", if_none_match=ETAG) is NOT_MODIFIED
    assert decide(if_modified_since=LM) is NOT_MODIFIED
    assert decide(if_match='"other"') is PRECONDITION_FAILED
    assert decide(if_match='"other"', range="bytes=0-9") is PRECONDITION_FAILED
    for refused in (NOT_MODIFIED, PRECONDITION_FAILED, UNSATISFIABLE):
        assert not refused.body and not refused.whole and not refused.completes
    # A body without a date has no date preconditions; one without an ETag has none at all.
    assert decide(MEMORY, if_modified_since=LM) is WHOLE
    assert decide(MEMORY, if_none_match=ETAG) is NOT_MODIFIED
    assert decide(STREAM, if_none_match="*", if_match='"x"') is WHOLE


def test_another_status_skips_preconditions_and_ranges() -> None:
    p = plan("GET", {"if-none-match": ETAG, "range": "bytes=0-9"}, FILE, status=404)
    assert (p.status, p.body, p.whole, p.ranges) == (404, True, True, ())
    assert not plan("HEAD", {}, FILE, status=404).body


@pytest.mark.parametrize(
    ("spec", "ranges", "reaches_end"),
    [
        ("bytes=0-9", ((0, 9),), False),
        ("bytes=90-", ((90, 99),), True),
        ("bytes=-10", ((90, 99),), True),
        ("bytes=0-500", ((0, 99),), True),
        ("bytes=0-9,90-99", ((0, 9), (90, 99)), True),
        ("bytes=0-9,20-29", ((0, 9), (20, 29)), False),
        ("bytes=0-50,40-99", ((0, 99),), True),  # overlapping: merged into one
    ],
)
def test_ranges(spec: str, ranges: tuple[tuple[int, int], ...], reaches_end: bool) -> None:
    p = decide(range=spec)
    assert (p.status, p.ranges, p.reaches_end, p.whole) == (206, ranges, reaches_end, False)
    assert p.completes is reaches_end
    head = decide(method="HEAD", range=spec)
    assert head.status == 206 and not head.body and not head.completes


def test_several_ranges_of_an_archive_are_the_whole_archive_and_complete_it() -> None:
    # The reported bypass: an archive answered whole must count as a complete download.
    p = decide(ARCHIVE, range="bytes=0-0,2-2")
    assert p is WHOLE and p.completes
    one = decide(ARCHIVE, range="bytes=0-0")
    assert one.status == 206 and not one.completes
    # Ranges that merge into one are still one range.
    assert decide(ARCHIVE, range="bytes=0-5,3-9").ranges == ((0, 9),)


def test_if_range() -> None:
    assert decide(range="bytes=0-9", if_range=ETAG).status == 206
    assert decide(range="bytes=0-9", if_range=LM).status == 206
    assert decide(range="bytes=0-9", if_range='"other"') is WHOLE
    assert decide(range="bytes=0-9", if_range=f"W/{ETAG}") is WHOLE
    assert decide(range="bytes=0-9", if_range="Sat, 01 Jan 2000 00:00:00 GMT") is WHOLE
    # Validators the representation lacks never match.
    assert decide(MEMORY, range="bytes=0-9", if_range=LM) is WHOLE
    assert decide(MEMORY, range="bytes=0-9", if_range="") is WHOLE
    assert decide(Representation(100), range="bytes=0-9", if_range=ETAG) is WHOLE
    assert decide(Representation(100), range="bytes=0-9").status == 206


def test_unsatisfiable_invalid_and_unknown_sizes() -> None:
    assert decide(range="bytes=100-") is UNSATISFIABLE
    assert decide(method="HEAD", range="bytes=100-") is UNSATISFIABLE
    assert decide(range="bytes=9-1") is WHOLE  # invalid: ignored
    assert decide(range="lines=1-2") is WHOLE
    assert decide(STREAM, range="bytes=0-9") is WHOLE
    empty = Representation(0, ETAG, LM, MTIME)
    assert decide(empty, range="bytes=0-") is UNSATISFIABLE
    assert decide(empty, range="bytes=-5") is UNSATISFIABLE  # was a 206 of "bytes 0--1/0"
    assert decide(empty) is WHOLE


# -- send_plan ----------------------------------------------------------------------------------

DATA = bytes(range(100))
BASE = [
    (b"content-type", b"application/octet-stream"),
    (b"etag", ETAG.encode()),
    (b"last-modified", LM.encode()),
    (b"cache-control", b"no-store"),
    (b"accept-ranges", b"bytes"),
    (b"content-disposition", b"attachment"),
]


def reader(data: bytes, piece: int = 7) -> tuple[list[tuple[int, int | None]], ReadBytes]:
    """A ReadBytes over `data` in small pieces, and the list of the reads it was asked for."""
    asked: list[tuple[int, int | None]] = []

    async def read(start: int, end: int | None) -> AsyncGenerator[bytes, None]:
        asked.append((start, end))
        stop = len(data) if end is None else end + 1
        for i in range(start, stop, piece):
            yield data[i : min(i + piece, stop)]

    return asked, read


def answer(
    p: Plan, size: int | None = 100, data: bytes = DATA
) -> tuple[int, dict[bytes, bytes], bytes, list[tuple[int, int | None]]]:
    """Run send_plan; (status, headers, body, reads)."""
    messages: list[Message] = []

    async def send(message: Message) -> None:
        messages.append(message)

    asked, read = reader(data)
    asyncio.run(send_plan(send, p, size, list(BASE), read))
    start, *bodies = messages
    assert all(m["type"] == "http.response.body" for m in bodies)
    assert not bodies[-1].get("more_body", False)
    assert all(m.get("more_body") for m in bodies[:-1])
    # The last bytes end the response themselves: no empty closing message after them (a client
    # with the whole body must not find the response still open, see _send_bytes).
    assert bodies[-1]["body"] or not any(m["body"] for m in bodies)
    return start["status"], dict(start["headers"]), b"".join(m["body"] for m in bodies), asked


def test_send_whole_and_head() -> None:
    status, headers, body, _ = answer(WHOLE)
    assert (status, headers[b"content-length"], body) == (200, b"100", DATA)
    status, headers, body, asked = answer(WHOLE_HEAD)
    assert (status, headers[b"content-length"], body, asked) == (200, b"100", b"", [])
    status, headers, body, _ = answer(WHOLE, size=None)
    assert status == 200 and b"content-length" not in headers and body == DATA
    status, headers, body, asked = answer(WHOLE, size=0, data=b"")
    assert (headers[b"content-length"], body, asked) == (b"0", b"", [])


def test_send_refusals() -> None:
    status, headers, body, asked = answer(NOT_MODIFIED)
    assert (status, body, asked) == (304, b"", [])
    # A 304 keeps the validators and caching headers, and no Content-Length (RFC 9110 §15.4.5).
    assert set(headers) == {b"etag", b"last-modified", b"cache-control"}
    status, headers, _, _ = answer(PRECONDITION_FAILED)
    assert (status, headers) == (412, {b"content-length": b"0"})
    status, headers, _, _ = answer(UNSATISFIABLE)
    assert status == 416 and headers[b"content-range"] == b"bytes */100"
    assert headers[b"content-length"] == b"0" and b"content-type" not in headers


def test_send_one_range() -> None:
    status, headers, body, asked = answer(decide(range="bytes=10-29"))
    assert (status, headers[b"content-range"], body) == (206, b"bytes 10-29/100", DATA[10:30])
    assert headers[b"content-length"] == b"20" and asked == [(10, 29)]


def test_send_multipart() -> None:
    p = decide(range="bytes=0-4,90-")
    status, headers, body, _ = answer(p)
    assert status == 206 and int(headers[b"content-length"]) == len(body)
    m = re.fullmatch(rb"multipart/byteranges; boundary=(\w+)", headers[b"content-type"])
    assert m is not None
    parts = body.split(b"--" + m[1])
    assert parts[0] == b"" and parts[-1] == b"--\r\n"
    assert parts[1].endswith(b"\r\n\r\n" + DATA[0:5] + b"\r\n")
    assert b"Content-Range: bytes 0-4/100" in parts[1]
    assert b"Content-Type: application/octet-stream" in parts[1]
    assert parts[2].endswith(DATA[90:] + b"\r\n")
    _, head_headers, head_body, asked = answer(decide(method="HEAD", range="bytes=0-4,90-"))
    assert head_body == b"" and asked == []
    assert int(head_headers[b"content-length"]) == len(body)


# -- what is counted is what is sent ------------------------------------------------------------

_number = st.integers(0, 120).map(str) | st.just("")
_item = st.tuples(_number, st.sampled_from(["-", "--", ""]), _number).map("".join)
_range = st.lists(_item, min_size=1, max_size=4).map(lambda xs: "bytes=" + ",".join(xs))
_headers = st.fixed_dictionaries(
    {},
    optional={
        "range": _range | st.text(max_size=12),
        "if-range": st.sampled_from([ETAG, '"other"', LM, "Sat, 01 Jan 2000 00:00:00 GMT"]),
        "if-none-match": st.sampled_from([ETAG, '"other"', "*"]),
        "if-match": st.sampled_from([ETAG, '"other"', "*"]),
    },
)


@settings(max_examples=300, deadline=None)
@given(
    headers=_headers,
    rep=st.sampled_from([FILE, ARCHIVE, STREAM, MEMORY]),
    method=st.sampled_from(["GET", "HEAD"]),
)
def test_completes_exactly_when_the_last_byte_is_sent(
    headers: dict[str, str], rep: Representation, method: str
) -> None:
    p = plan(method, headers, rep)
    status, _, body, asked = answer(p, size=rep.size)
    assert status == p.status
    ends = [len(DATA) - 1 if end is None else end for _, end in asked]
    assert p.completes == (len(DATA) - 1 in ends)
    assert p.body == bool(body)
    if p.whole and p.body:
        assert body == DATA
    if status == 206 and len(p.ranges) == 1 and p.body:
        start, end = p.ranges[0]
        assert body == DATA[start : end + 1]
    if not rep.multipart:
        assert len(p.ranges) <= 1
