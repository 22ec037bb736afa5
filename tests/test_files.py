"""http/files.py through `comptoir serve`: validators, preconditions, ranges, encodings, cache."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import os
import re
import zlib
from collections.abc import Callable
from pathlib import Path

import brotli
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from comptoir.app import build_app
from comptoir.http.files import SMALL_FILE, FileCache, http_date
from comptoir.sites.static import StaticOptions
from comptoir.types import ASGIApp, Message
from tests.conftest import make_config

Site = Callable[..., httpx.AsyncClient]
IDENTITY = {"accept-encoding": "identity"}
TEXT = "".join(f"line {i}: the quick brown fox\n" for i in range(200))  # ~6 KiB of text
DIGITS = b"0123456789"


@pytest.fixture
def site(tmp_path: Path, aclient: Callable[[ASGIApp], httpx.AsyncClient]) -> Site:
    """An in-process client for `comptoir serve tmp_path [options]`."""

    def make(**options: object) -> httpx.AsyncClient:
        opts = StaticOptions(root=tmp_path, **options)  # type: ignore[arg-type]
        return aclient(build_app(make_config("static", opts)))

    return make


def headers_of(r: httpx.Response) -> dict[str, str]:
    """The response headers, as a plain dict."""
    return dict(r.headers.items())


# --- validators and content type --------------------------------------------------------------


async def test_file_has_strong_validators_and_safe_type(tmp_path: Path, site: Site) -> None:
    (tmp_path / "a.txt").write_text("hello\n")
    r = await site().get("/a.txt", headers=IDENTITY)
    assert r.status_code == 200
    assert r.text == "hello\n"
    etag = r.headers["etag"]
    assert re.fullmatch(r'"[0-9a-f]+-[0-9a-f]+"', etag), "strong, quoted, not W/"
    st_ = os.stat(tmp_path / "a.txt")
    assert r.headers["last-modified"] == http_date(st_.st_mtime)
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["accept-ranges"] == "bytes"
    assert r.headers["content-length"] == "6"


async def test_etag_changes_with_the_file(tmp_path: Path, site: Site) -> None:
    f = tmp_path / "a.txt"
    f.write_text("one")
    client = site(revalidate=0)
    first = (await client.get("/a.txt")).headers["etag"]
    f.write_text("two!")
    second = (await client.get("/a.txt")).headers["etag"]
    assert first != second


# --- preconditions ----------------------------------------------------------------------------


@pytest.fixture
async def validators(tmp_path: Path, site: Site) -> tuple[httpx.AsyncClient, str, str]:
    """(client, etag, last-modified) of /f.txt."""
    f = tmp_path / "f.txt"
    f.write_bytes(DIGITS)
    os.utime(f, (1_700_000_000, 1_700_000_000))
    client = site()
    r = await client.get("/f.txt")
    return client, r.headers["etag"], r.headers["last-modified"]


@pytest.mark.parametrize(
    ("header", "value", "status"),
    [
        ("if-none-match", "{etag}", 304),
        ("if-none-match", '"nope", {etag}', 304),
        ("if-none-match", "W/{etag}", 304),  # If-None-Match compares weakly
        ("if-none-match", "*", 304),
        ("if-none-match", '"nope"', 200),
        ("if-modified-since", "{lm}", 304),
        ("if-modified-since", "Wed, 01 Jan 2099 00:00:00 GMT", 304),
        ("if-modified-since", "Sat, 01 Jan 2000 00:00:00 GMT", 200),
        ("if-modified-since", "not a date", 200),
        ("if-match", "{etag}", 200),
        ("if-match", "*", 200),
        ("if-match", '"nope"', 412),
        ("if-match", "W/{etag}", 412),  # If-Match compares strongly
        ("if-unmodified-since", "{lm}", 200),
        ("if-unmodified-since", "Sat, 01 Jan 2000 00:00:00 GMT", 412),
        ("if-unmodified-since", "garbage", 200),
    ],
)
async def test_preconditions(
    validators: tuple[httpx.AsyncClient, str, str], header: str, value: str, status: int
) -> None:
    client, etag, lm = validators
    value = value.format(etag=etag, lm=lm)
    for method in ("GET", "HEAD"):
        r = await client.request(method, "/f.txt", headers={header: value})
        assert r.status_code == status, (method, header, value)
        if status == 304:
            assert r.content == b""
            assert r.headers["etag"] == etag
            assert "content-length" not in r.headers or r.headers["content-length"] == "10"
        if status == 412:
            assert r.content == b""


async def test_if_none_match_wins_over_if_modified_since(
    validators: tuple[httpx.AsyncClient, str, str],
) -> None:
    client, _, lm = validators
    r = await client.get("/f.txt", headers={"if-none-match": '"other"', "if-modified-since": lm})
    assert r.status_code == 200


async def test_if_match_wins_over_if_unmodified_since(
    validators: tuple[httpx.AsyncClient, str, str],
) -> None:
    client, etag, _ = validators
    old = "Sat, 01 Jan 2000 00:00:00 GMT"
    r = await client.get("/f.txt", headers={"if-match": etag, "if-unmodified-since": old})
    assert r.status_code == 200


async def test_failed_if_match_beats_a_range(
    validators: tuple[httpx.AsyncClient, str, str],
) -> None:
    client, _, _ = validators
    r = await client.get("/f.txt", headers={"if-match": '"nope"', "range": "bytes=0-1"})
    assert r.status_code == 412


# --- ranges -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "start", "end"),
    [
        ("bytes=0-3", 0, 3),
        ("bytes=2-2", 2, 2),
        ("bytes=7-", 7, 9),
        ("bytes=-3", 7, 9),
        ("bytes=-100", 0, 9),
        ("bytes=5-1000", 5, 9),
        ("BYTES = 1-2", 1, 2),
        ("bytes=0-1,1-3", 0, 3),  # overlapping ranges are merged, never sent twice
        ("bytes=0-1,2-3", 0, 3),  # adjacent too
        ("bytes=0-3,20-30", 0, 3),  # an unsatisfiable part is dropped
    ],
)
async def test_single_range(
    validators: tuple[httpx.AsyncClient, str, str], spec: str, start: int, end: int
) -> None:
    client, etag, _ = validators
    r = await client.get("/f.txt", headers={"range": spec})
    assert r.status_code == 206
    assert r.headers["content-range"] == f"bytes {start}-{end}/10"
    assert r.headers["content-length"] == str(end - start + 1)
    assert r.content == DIGITS[start : end + 1]
    assert r.headers["etag"] == etag
    assert r.headers["content-type"] == "text/plain; charset=utf-8"


def parse_multipart(r: httpx.Response) -> list[tuple[dict[str, str], bytes]]:
    """The parts of a multipart/byteranges body: (headers, bytes)."""
    ctype = r.headers["content-type"]
    assert ctype.startswith("multipart/byteranges; boundary=")
    boundary = ctype.split("boundary=", 1)[1].encode()
    body = r.content
    assert body.endswith(b"--" + boundary + b"--\r\n")
    parts = []
    for chunk in body.split(b"--" + boundary)[1:-1]:
        head, _, data = chunk.partition(b"\r\n\r\n")
        hdrs = {}
        for line in head.strip().split(b"\r\n"):
            k, _, v = line.decode().partition(":")
            hdrs[k.strip().lower()] = v.strip()
        assert data.endswith(b"\r\n")
        parts.append((hdrs, data[:-2]))
    return parts


async def test_multiple_ranges_are_multipart(
    validators: tuple[httpx.AsyncClient, str, str],
) -> None:
    client, _, _ = validators
    r = await client.get("/f.txt", headers={"range": "bytes=0-1, 5-6, -1"})
    assert r.status_code == 206
    assert int(r.headers["content-length"]) == len(r.content)
    assert "content-range" not in r.headers
    parts = parse_multipart(r)
    assert [(h["content-range"], d) for h, d in parts] == [
        ("bytes 0-1/10", b"01"),
        ("bytes 5-6/10", b"56"),
        ("bytes 9-9/10", b"9"),
    ]
    assert all(h["content-type"] == "text/plain; charset=utf-8" for h, _ in parts)


@pytest.mark.parametrize("spec", ["bytes=10-", "bytes=100-200", "bytes=-0", "bytes=10-20,30-"])
async def test_unsatisfiable_range_is_416(
    validators: tuple[httpx.AsyncClient, str, str], spec: str
) -> None:
    client, _, _ = validators
    for method in ("GET", "HEAD"):
        r = await client.request(method, "/f.txt", headers={"range": spec})
        assert r.status_code == 416
        assert r.headers["content-range"] == "bytes */10"
        assert r.content == b""


@pytest.mark.parametrize(
    "spec",
    [
        "bytes=abc",
        "bytes=5-2",
        "bytes=-",
        "bytes=1-2-3",
        "items=0-1",
        "0-1",
        "bytes=²-",  # a digit to str.isdigit(), not to int()
        "bytes=0-\uff11",  # a fullwidth digit one
        "bytes=" + ",".join(["0-0"] * 65),  # too many ranges: answered whole
    ],
)
async def test_invalid_range_is_ignored(
    validators: tuple[httpx.AsyncClient, str, str], spec: str
) -> None:
    client, _, _ = validators
    r = await client.get("/f.txt", headers={"range": spec.encode("utf-8")})
    assert r.status_code == 200
    assert r.content == DIGITS


async def test_empty_file_range_is_416(tmp_path: Path, site: Site) -> None:
    (tmp_path / "empty").write_bytes(b"")
    r = await site().get("/empty", headers={"range": "bytes=0-"})
    assert r.status_code == 416
    assert r.headers["content-range"] == "bytes */0"
    r = await site().get("/empty")
    assert (r.status_code, r.content, r.headers["content-length"]) == (200, b"", "0")


@pytest.mark.parametrize(
    ("if_range", "status"),
    [("{etag}", 206), ('"other"', 200), ("W/{etag}", 200), ("{lm}", 206), ("{old}", 200)],
)
async def test_if_range(
    validators: tuple[httpx.AsyncClient, str, str], if_range: str, status: int
) -> None:
    client, etag, lm = validators
    value = if_range.format(etag=etag, lm=lm, old="Sat, 01 Jan 2000 00:00:00 GMT")
    r = await client.get("/f.txt", headers={"range": "bytes=0-1", "if-range": value})
    assert r.status_code == status
    assert r.content == (b"01" if status == 206 else DIGITS)


async def test_range_on_a_large_file_streams_the_right_bytes(tmp_path: Path, site: Site) -> None:
    data = os.urandom(SMALL_FILE * 3 + 123)
    (tmp_path / "big.bin").write_bytes(data)
    client = site()
    start, end = SMALL_FILE - 10, SMALL_FILE * 2 + 10  # across read-chunk boundaries
    r = await client.get("/big.bin", headers={"range": f"bytes={start}-{end}"})
    assert r.status_code == 206
    assert r.content == data[start : end + 1]
    r = await client.get("/big.bin", headers={"range": "bytes=0-9,-10"})
    parts = parse_multipart(r)
    assert [d for _, d in parts] == [data[:10], data[-10:]]


def test_property_ranges_never_fail_and_match_the_file(tmp_path: Path) -> None:
    data = bytes(range(256)) * 4
    (tmp_path / "f.bin").write_bytes(data)
    app = build_app(make_config("static", StaticOptions(root=tmp_path)))
    loop = asyncio.new_event_loop()
    number = st.integers(0, 1100).map(str) | st.just("")
    item = st.tuples(number, st.sampled_from(["-", "", "--"]), number).map("".join)
    spec = st.lists(item, min_size=1, max_size=5).map(lambda xs: "bytes=" + ",".join(xs))
    header = spec | st.text(max_size=30)

    @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(value=header)
    def check(value: str) -> None:
        msgs = loop.run_until_complete(
            request(app, "/f.bin", [(b"range", value.encode("utf-8", "surrogateescape"))])
        )
        status, hdrs, body = collect(msgs)
        assert status in (200, 206, 416), value
        if status == 200:
            assert body == data
        elif status == 416:
            assert hdrs[b"content-range"] == f"bytes */{len(data)}".encode()
        elif b"content-range" in hdrs:
            m = re.fullmatch(rb"bytes (\d+)-(\d+)/1024", hdrs[b"content-range"])
            assert m is not None
            first, last = int(m[1]), int(m[2])
            assert body == data[first : last + 1]
        else:
            assert int(hdrs[b"content-length"]) == len(body)

    try:
        check()
    finally:
        loop.close()


def test_property_no_header_value_makes_a_server_error(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text(TEXT)
    (tmp_path / "f.txt.gz").write_bytes(gzip.compress(TEXT.encode()))
    (tmp_path / "d").mkdir()
    app = build_app(make_config("static", StaticOptions(root=tmp_path, compress=True)))
    loop = asyncio.new_event_loop()
    names = st.sampled_from(
        [b"range", b"if-range", b"if-match", b"if-none-match", b"if-modified-since",
         b"if-unmodified-since", b"accept-encoding", b"accept", b"host"]
    )  # fmt: skip
    values = st.binary(max_size=40) | st.sampled_from(
        [b"bytes=0-1", b"*", b'W/"x"', b"gzip;q=nan", b"br;q=1e999", b"gzip;q=-1",
         b"Mon, 01 Jan 0000 00:00:00 GMT", b"Fri, 31 Dec 9999 23:59:59 +9999", b"-0000"]
    )  # fmt: skip

    @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        path=st.sampled_from(["/f.txt", "/d", "/d/", "/nope"]),
        method=st.sampled_from(["GET", "HEAD"]),
        headers=st.lists(st.tuples(names, values), max_size=4),
    )
    def check(path: str, method: str, headers: list[tuple[bytes, bytes]]) -> None:
        msgs = loop.run_until_complete(request(app, path, headers, method=method))
        status, _, _ = collect(msgs)
        assert status < 500, (path, headers)

    try:
        check()
    finally:
        loop.close()


# --- encodings --------------------------------------------------------------------------------


@pytest.fixture
def precompressed(tmp_path: Path) -> bytes:
    """page.txt with page.txt.gz and page.txt.br siblings; returns the text."""
    data = TEXT.encode()
    (tmp_path / "page.txt").write_bytes(data)
    (tmp_path / "page.txt.gz").write_bytes(gzip.compress(data))
    (tmp_path / "page.txt.br").write_bytes(brotli.compress(data))
    return data


@pytest.mark.parametrize(
    ("accept", "coding", "sibling"),
    [
        ("gzip", "gzip", ".gz"),
        ("gzip, deflate, br", "br", ".br"),
        ("br;q=0, gzip", "gzip", ".gz"),
        ("*", "br", ".br"),
        ("identity", None, ""),
        ("br;q=0, gzip;q=0", None, ""),
        ("deflate", None, ""),
    ],
)
async def test_precompressed_siblings(
    tmp_path: Path,
    site: Site,
    precompressed: bytes,
    accept: str,
    coding: str | None,
    sibling: str,
) -> None:
    client = site()
    r = await client.get("/page.txt", headers={"accept-encoding": accept})
    assert r.status_code == 200
    assert r.headers.get("content-encoding") == coding
    assert r.headers["vary"] == "Accept-Encoding"
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.headers["content-length"] == str((tmp_path / f"page.txt{sibling}").stat().st_size)
    assert r.content == precompressed  # httpx decodes gzip and br
    etags = {
        (await client.get("/page.txt", headers={"accept-encoding": a})).headers["etag"]
        for a in ("identity", "gzip", "br")
    }
    assert len(etags) == 3, "each representation has its own strong ETag"


async def test_precompressed_sibling_revalidates_with_its_own_etag(
    site: Site, precompressed: bytes
) -> None:
    client = site()
    r = await client.get("/page.txt", headers={"accept-encoding": "gzip"})
    r2 = await client.get(
        "/page.txt", headers={"accept-encoding": "gzip", "if-none-match": r.headers["etag"]}
    )
    assert r2.status_code == 304
    assert r2.headers["vary"] == "Accept-Encoding"
    # The identity representation does not match the gzip one's tag.
    r3 = await client.get("/page.txt", headers={**IDENTITY, "if-none-match": r.headers["etag"]})
    assert r3.status_code == 200


async def test_ranges_are_never_encoded(site: Site, precompressed: bytes) -> None:
    for client in (site(), site(compress=True)):
        r = await client.get("/page.txt", headers={"accept-encoding": "gzip", "range": "bytes=0-9"})
        assert r.status_code == 206
        assert "content-encoding" not in r.headers
        assert r.content == precompressed[:10]


async def test_compress_gzips_text_on_the_fly(tmp_path: Path, site: Site) -> None:
    (tmp_path / "page.html").write_text(TEXT)
    (tmp_path / "tiny.txt").write_text("small")
    (tmp_path / "pic.png").write_bytes(b"\x89PNG" + os.urandom(4000))
    client = site(compress=True)
    r = await client.get("/page.html", headers={"accept-encoding": "gzip"})
    assert r.headers["content-encoding"] == "gzip"
    assert r.headers["vary"] == "Accept-Encoding"
    assert r.text == TEXT
    assert int(r.headers["content-length"]) < len(TEXT)
    assert r.headers["etag"].endswith('-gzip"')
    # Again, from the kept compressed body.
    assert (await client.get("/page.html", headers={"accept-encoding": "gzip"})).text == TEXT
    r = await client.get("/page.html", headers={"accept-encoding": "gzip;q=0"})
    assert "content-encoding" not in r.headers
    assert r.text == TEXT
    r = await client.get("/tiny.txt", headers={"accept-encoding": "gzip"})
    assert "content-encoding" not in r.headers
    r = await client.get("/pic.png", headers={"accept-encoding": "gzip"})
    assert "content-encoding" not in r.headers
    assert "vary" not in r.headers


async def test_compress_leaves_binary_files_with_only_a_br_sibling_alone(
    tmp_path: Path, site: Site
) -> None:
    data = b"\x89PNG" + os.urandom(4000)
    (tmp_path / "pic.png").write_bytes(data)
    (tmp_path / "pic.png.br").write_bytes(brotli.compress(data))
    r = await site(compress=True).get("/pic.png", headers={"accept-encoding": "gzip"})
    assert "content-encoding" not in r.headers
    assert r.headers["content-length"] == str(len(data))
    assert r.content == data


async def test_compress_streams_large_text_files(tmp_path: Path, site: Site) -> None:
    text = (TEXT * 60).encode()
    assert len(text) > SMALL_FILE
    (tmp_path / "big.txt").write_bytes(text)
    client = site(compress=True)
    async with client.stream("GET", "/big.txt", headers={"accept-encoding": "gzip"}) as r:
        assert r.headers["content-encoding"] == "gzip"
        raw = b"".join([c async for c in r.aiter_raw()])
    assert zlib.decompress(raw, 31) == text
    head = await client.head("/big.txt", headers={"accept-encoding": "gzip"})
    assert headers_of(head) == headers_of(r)


# --- HEAD -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        IDENTITY,
        {"accept-encoding": "gzip"},
        {"accept-encoding": "br"},
        {"range": "bytes=0-5"},
        {"range": "bytes=999999-"},
        {"if-none-match": "*"},
        {"if-match": '"nope"'},
    ],
)
async def test_head_has_the_headers_of_get(
    site: Site, precompressed: bytes, headers: dict[str, str]
) -> None:
    for client in (site(), site(compress=True)):
        get = await client.get("/page.txt", headers=headers)
        head = await client.head("/page.txt", headers=headers)
        assert head.status_code == get.status_code
        assert head.content == b""
        assert headers_of(head) == headers_of(get)


async def test_head_of_multipart_ranges(validators: tuple[httpx.AsyncClient, str, str]) -> None:
    client, _, _ = validators
    spec = {"range": "bytes=0-1,4-5"}
    get, head = await client.get("/f.txt", headers=spec), await client.head("/f.txt", headers=spec)
    assert head.status_code == 206 and head.content == b""
    # Only the random boundary differs.
    g, h = headers_of(get), headers_of(head)
    g_type, h_type = g.pop("content-type"), h.pop("content-type")
    assert g_type.split("boundary=")[0] == h_type.split("boundary=")[0]
    assert len(g_type) == len(h_type)
    assert g == h


# --- the cache --------------------------------------------------------------------------------


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_revalidate_defaults_to_one_second() -> None:
    # The documented bound on staleness (README, --help of sites.toml's `revalidate`).
    assert StaticOptions().revalidate == 1.0
    assert FileCache().revalidate == 1.0


def test_cache_trusts_a_stat_for_revalidate_seconds_then_checks(tmp_path: Path) -> None:
    f = tmp_path / "f.txt"
    f.write_text("old")
    clock = FakeClock()
    cache = FileCache(1.0, clock=clock)
    info, is_dir = cache.lookup(str(f))
    assert info is not None and not is_dir
    assert cache.read_small(info) == b"old"
    f.write_text("newer")
    clock.now += 0.5
    info, _ = cache.lookup(str(f))
    assert info is not None and cache.read_small(info) == b"old", "documented: stale < 1 s"
    clock.now += 0.5
    info, _ = cache.lookup(str(f))
    assert info is not None and cache.read_small(info) == b"newer"


def test_cache_sees_a_same_size_rewrite_by_its_mtime(tmp_path: Path) -> None:
    f = tmp_path / "f.txt"
    f.write_text("aaa")
    os.utime(f, ns=(1_000_000_000, 1_000_000_000))
    clock = FakeClock()
    cache = FileCache(1.0, clock=clock)
    info, _ = cache.lookup(str(f))
    assert info is not None and cache.read_small(info) == b"aaa"
    f.write_text("bbb")
    os.utime(f, ns=(2_000_000_000, 2_000_000_000))
    clock.now += 1
    info, _ = cache.lookup(str(f))
    assert info is not None and cache.read_small(info) == b"bbb"


def test_cache_notices_deleted_files_and_folders(tmp_path: Path) -> None:
    f = tmp_path / "f.txt"
    f.write_text("x")
    (tmp_path / "d").mkdir()
    clock = FakeClock()
    cache = FileCache(1.0, clock=clock)
    assert cache.lookup(str(f))[0] is not None
    assert cache.lookup(str(tmp_path / "d")) == (None, True)
    f.unlink()
    (tmp_path / "d").rmdir()
    clock.now += 1
    assert cache.lookup(str(f)) == (None, False)
    assert cache.lookup(str(tmp_path / "d")) == (None, False)


def test_cache_never_serves_fifos(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    assert FileCache().lookup(str(tmp_path / "pipe")) == (None, False)


def test_cache_revalidates_precompressed_siblings(tmp_path: Path) -> None:
    f = tmp_path / "f.txt"
    f.write_text(TEXT)
    clock = FakeClock()
    cache = FileCache(1.0, clock=clock)
    info, _ = cache.lookup(str(f))
    assert info is not None and info.variants == {}
    (tmp_path / "f.txt.gz").write_bytes(gzip.compress(TEXT.encode()))
    clock.now += 1
    info, _ = cache.lookup(str(f))
    assert info is not None and set(info.variants) == {"gzip"}
    gz = info.variants["gzip"]
    assert gzip.decompress(cache.read_small(gz) or b"") == TEXT.encode()
    # The sibling alone is rebuilt: a stale body would no longer match its Content-Length.
    (tmp_path / "f.txt.gz").write_bytes(gzip.compress(TEXT.encode(), compresslevel=1))
    clock.now += 1
    info, _ = cache.lookup(str(f))
    assert info is not None
    assert info.variants["gzip"].size == (tmp_path / "f.txt.gz").stat().st_size
    assert cache.read_small(info.variants["gzip"]) == (tmp_path / "f.txt.gz").read_bytes()
    (tmp_path / "f.txt.gz").unlink()
    clock.now += 1
    info, _ = cache.lookup(str(f))
    assert info is not None and info.variants == {}


def test_cache_memory_budget_is_returned_when_files_change(tmp_path: Path) -> None:
    f = tmp_path / "f.txt"
    clock = FakeClock()
    cache = FileCache(1.0, clock=clock, max_bytes=100)
    for i in range(5):
        f.write_bytes(bytes([65 + i]) * 40)
        (tmp_path / "f.txt.gz").write_bytes(bytes([97 + i]) * (40 + i))
        clock.now += 1
        info, _ = cache.lookup(str(f))
        assert info is not None
        assert cache.read_small(info) == bytes([65 + i]) * 40
        cache.read_small(info.variants["gzip"])
        # Replaced bodies give their bytes back, so the current ones still fit in the budget.
        assert info.body is not None and info.variants["gzip"].body is not None


async def test_a_changed_file_is_served_fresh_once_revalidate_has_passed(
    tmp_path: Path, site: Site
) -> None:
    f = tmp_path / "f.txt"
    f.write_text("version one")
    client = site(revalidate=0.05)
    assert (await client.get("/f.txt")).text == "version one"
    f.write_text("version two, longer")
    await asyncio.sleep(0.06)
    r = await client.get("/f.txt")
    assert r.text == "version two, longer"
    assert r.headers["content-length"] == str(len("version two, longer"))


async def test_changed_sibling_is_served_fresh(
    tmp_path: Path, site: Site, precompressed: bytes
) -> None:
    client = site(revalidate=0)
    assert (await client.get("/page.txt", headers={"accept-encoding": "gzip"})).content == (
        precompressed
    )
    (tmp_path / "page.txt.gz").write_bytes(gzip.compress(b"rebuilt"))
    r = await client.get("/page.txt", headers={"accept-encoding": "gzip"})
    assert r.content == b"rebuilt"
    (tmp_path / "page.txt.gz").unlink()
    r = await client.get("/page.txt", headers={"accept-encoding": "gzip"})
    assert "content-encoding" not in r.headers
    assert r.content == precompressed


async def test_files_read_from_disk_are_never_served_with_stale_headers(
    tmp_path: Path, site: Site
) -> None:
    # Within the revalidate interval small bodies come from memory, consistent with their headers.
    # Bodies read from disk must match the headers sent: no stale length for a replaced file.
    big = tmp_path / "big.bin"
    big.write_bytes(b"a" * (SMALL_FILE + 10))
    client = site(revalidate=3600)
    assert len((await client.get("/big.bin")).content) == SMALL_FILE + 10
    big.write_bytes(b"b" * (SMALL_FILE + 5000))
    r = await client.get("/big.bin")
    assert r.headers["content-length"] == str(SMALL_FILE + 5000)
    assert r.content == b"b" * (SMALL_FILE + 5000)
    size = SMALL_FILE + 5000
    r = await client.get("/big.bin", headers={"range": "bytes=-10"})
    assert r.headers["content-range"] == f"bytes {size - 10}-{size - 1}/{size}"
    big.unlink()
    r = await client.get("/big.bin")
    assert r.status_code == 404


async def test_large_precompressed_sibling_replaced_on_disk(tmp_path: Path, site: Site) -> None:
    text = os.urandom(SMALL_FILE).hex().encode()
    (tmp_path / "data.txt").write_bytes(text)
    (tmp_path / "data.txt.gz").write_bytes(gzip.compress(text, compresslevel=0))
    client = site(revalidate=3600)
    assert (await client.get("/data.txt", headers={"accept-encoding": "gzip"})).content == text
    (tmp_path / "data.txt.gz").write_bytes(gzip.compress(text, compresslevel=9))
    r = await client.get("/data.txt", headers={"accept-encoding": "gzip"})
    assert r.headers["content-length"] == str((tmp_path / "data.txt.gz").stat().st_size)
    assert r.content == text


# --- large files ------------------------------------------------------------------------------


async def test_large_file_streams_without_pathsend(tmp_path: Path, site: Site) -> None:
    data = os.urandom(3 * SMALL_FILE + 7)
    (tmp_path / "big.bin").write_bytes(data)
    r = await site().get("/big.bin")
    assert r.status_code == 200
    assert r.headers["content-length"] == str(len(data))
    assert hashlib.sha256(r.content).digest() == hashlib.sha256(data).digest()


async def test_large_file_uses_pathsend_when_the_server_offers_it(tmp_path: Path) -> None:
    data = os.urandom(SMALL_FILE + 1)
    (tmp_path / "big.bin").write_bytes(data)
    (tmp_path / "small.bin").write_bytes(data[:100])
    app = build_app(make_config("static", StaticOptions(root=tmp_path)))
    ext = {"http.response.pathsend": {}}
    msgs = await request(app, "/big.bin", extensions=ext)
    assert msgs[0]["status"] == 200
    assert dict(msgs[0]["headers"])[b"content-length"] == str(len(data)).encode()
    assert msgs[1] == {"type": "http.response.pathsend", "path": str(tmp_path / "big.bin")}
    # Small files come from memory even then.
    msgs = await request(app, "/small.bin", extensions=ext)
    assert [m["type"] for m in msgs] == ["http.response.start", "http.response.body"]
    assert msgs[1]["body"] == data[:100]


# --- helpers ----------------------------------------------------------------------------------


async def request(
    app: ASGIApp,
    path: str,
    headers: list[tuple[bytes, bytes]] | None = None,
    *,
    method: str = "GET",
    extensions: dict[str, object] | None = None,
) -> list[Message]:
    """Run one request through the ASGI app and return every message it sent."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), *(headers or [])],
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 80),
        "extensions": extensions or {},
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def collect(msgs: list[Message]) -> tuple[int, dict[bytes, bytes], bytes]:
    """(status, headers, body) from the messages of one response."""
    start = msgs[0]
    assert start["type"] == "http.response.start"
    body = b"".join(m.get("body", b"") for m in msgs[1:])
    return start["status"], dict(start["headers"]), body


# --- the resolution cache (sites/static.py, http/paths.ResolveCache) -----------------------------


async def test_a_swapped_symlink_never_reaches_outside_the_root(tmp_path: Path) -> None:
    # Small files answered from memory reuse their URL's resolution; anything read from disk
    # resolves afresh. Neither way may a symlink retargeted outside the root leak what it now
    # points at, even within a long revalidate interval.
    root = tmp_path / "root"
    root.mkdir()
    (root / "small.txt").write_text("inside small")
    (root / "big.bin").write_bytes(b"i" * (SMALL_FILE + 1))
    (tmp_path / "secret.txt").write_text("outside secret")
    (tmp_path / "secret.bin").write_bytes(b"s" * (SMALL_FILE + 1))
    (root / "s").symlink_to(root / "small.txt")
    (root / "b").symlink_to(root / "big.bin")
    app = build_app(make_config("static", StaticOptions(root=root, revalidate=3600)))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        for _ in range(2):
            assert (await client.get("/s")).text == "inside small"
            assert (await client.get("/b")).content[:1] == b"i"
        (root / "s").unlink()
        (root / "s").symlink_to(tmp_path / "secret.txt")
        (root / "b").unlink()
        (root / "b").symlink_to(tmp_path / "secret.bin")
        small = await client.get("/s")
        assert "outside" not in small.text
        big = await client.get("/b")
        assert big.status_code == 404
        assert b"s" * 100 not in big.content


async def test_a_cached_resolution_expires_with_the_revalidate_interval(
    tmp_path: Path, site: Site
) -> None:
    (tmp_path / "a.txt").write_text("first")
    client = site(revalidate=0.05)
    assert (await client.get("/a.txt")).text == "first"
    assert (await client.get("/a.txt")).text == "first"
    (tmp_path / "a.txt").unlink()
    (tmp_path / "a.txt").mkdir()
    await asyncio.sleep(0.06)
    r = await client.get("/a.txt")
    assert r.status_code == 301
    assert r.headers["location"] == "/a.txt/"


def test_resolve_cache_is_bounded_and_expires() -> None:
    from comptoir.http.paths import ResolveCache, Resolved

    now = [0.0]
    cache = ResolveCache(1.0, max_entries=2, clock=lambda: now[0])
    r = Resolved("/srv/a", ("a",), False)
    cache.put(b"/a", r)
    assert cache.get(b"/a") is r
    now[0] = 1.0
    assert cache.get(b"/a") is None
    cache.put(b"/a", r)
    cache.put(b"/b", r)
    cache.put(b"/c", r)  # over the bound: the old entries go
    assert cache.get(b"/a") is None
    assert cache.get(b"/c") is r


async def test_streamed_bodies_end_in_small_chunks(tmp_path: Path) -> None:
    # Large chunks stream fast; the last TAIL bytes go in small ones, so that a client hanging up
    # just before the end leaves little in the server's buffers (share counts what was handed on).
    from comptoir.http.files import CHUNK, TAIL, TAIL_CHUNK

    data = os.urandom(TAIL + 2 * CHUNK + 5)
    (tmp_path / "big.bin").write_bytes(data)
    app = build_app(make_config("static", StaticOptions(root=tmp_path)))
    msgs = await request(app, "/big.bin")
    sizes = [len(m["body"]) for m in msgs[1:] if m["body"]]
    assert b"".join(m["body"] for m in msgs[1:]) == data
    assert sizes[0] == CHUNK
    tail = 0
    for size in reversed(sizes):
        if tail >= TAIL:
            break
        assert size <= TAIL_CHUNK
        tail += size


HUGE_NUMBER = "9" * 5000  # beyond int()'s 4,300-digit limit


@pytest.mark.parametrize(
    ("spec", "status", "content"),
    [
        (f"bytes=0-{HUGE_NUMBER}", 206, DIGITS),  # to the end
        (f"bytes=-{HUGE_NUMBER}", 206, DIGITS),  # a suffix longer than the file: all of it
        (f"bytes={HUGE_NUMBER}-", 416, b""),  # starts past the end
        ("bytes=²-3", 200, DIGITS),  # not ASCII digits: the header is ignored
    ],
)
async def test_absurd_range_numbers_are_answered_not_500(
    validators: tuple[httpx.AsyncClient, str, str], spec: str, status: int, content: bytes
) -> None:
    client, _, _ = validators
    r = await client.get("/f.txt", headers={"range": spec.encode("utf-8")})
    assert r.status_code == status
    assert r.content == content


def test_resolve_cache_skips_very_long_paths() -> None:
    # Many padded spellings of one file (`/./././a.txt`) must not fill memory with keys.
    from comptoir.http.paths import MAX_CACHED_PATH, ResolveCache, Resolved

    cache = ResolveCache(1.0)
    r = Resolved("/srv/a.txt", ("a.txt",), False)
    long_path = b"/." * (MAX_CACHED_PATH // 2) + b"/a.txt"
    cache.put(long_path, r)
    assert cache.get(long_path) is None
    cache.put(b"/a.txt", r)
    assert cache.get(b"/a.txt") is r
