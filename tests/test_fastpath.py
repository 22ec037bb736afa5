"""The outer fast path (fastpath.py): repeats answered from memory, exactly as the full stack would.

Each test runs the same requests against two apps built from one Config, one with the fast path
and one without, and compares what a client observes: status, headers (their order aside), body,
and the access log line. Time is a ManualClock shared by the caches and the fast path.
"""

from __future__ import annotations

import gzip
import os
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from comptoir.app import build_app
from comptoir.clock import ManualClock
from comptoir.config import Config, ServerOptions, SiteConfig
from comptoir.security.passwords import hash_password
from comptoir.sites.static import StaticOptions
from comptoir.types import ASGIApp
from tests.conftest import asgi_client


class Pair:
    """The same Config served with and without the fast path, on one clock."""

    def __init__(self, config: Config) -> None:
        self.clock = ManualClock()
        self.fast_lines: list[str] = []
        self.full_lines: list[str] = []
        self.fast_app = build_app(
            config, clock=self.clock, fast_path=True, log_write=self.fast_lines.append
        )
        self.full_app = build_app(
            config, clock=self.clock, fast_path=False, log_write=self.full_lines.append
        )
        self.fast = asgi_client(self.fast_app)
        self.full = asgi_client(self.full_app)

    def kept(self) -> int:
        """How many answers the fast path holds."""
        fast_path = self.fast_app.fast_path  # type: ignore[attr-defined]
        return len(fast_path.entries)

    async def both(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Ask both; assert a client sees the same answer; return it."""
        a = await self.fast.request(method, url, **kwargs)
        b = await self.full.request(method, url, **kwargs)
        assert a.status_code == b.status_code, url
        assert _headers(a) == _headers(b), url
        assert _body(a) == _body(b), url
        return a

    async def aclose(self) -> None:
        await self.fast.aclose()
        await self.full.aclose()


def _headers(r: httpx.Response) -> Counter[tuple[str, str]]:
    # Multipart boundaries are random; nothing else may differ.
    return Counter(
        (k, v) for k, v in r.headers.multi_items() if not v.startswith("multipart/byteranges")
    )


def _body(r: httpx.Response) -> bytes:
    ctype = r.headers.get("content-type", "")
    if ctype.startswith("multipart/byteranges; boundary="):
        return r.content.replace(ctype.split("=", 1)[1].encode(), b"BOUNDARY")
    return r.content


def _lines(lines: list[str]) -> list[str]:
    # The first two fields are the time of day (the second may turn between the two apps' lines)
    # and the last is the request's duration: all else must be the same.
    return [line.split(" ", 2)[2].rsplit(" ", 1)[0] for line in lines]


def _config(*sites: SiteConfig, **server: Any) -> Config:
    return Config(server=ServerOptions(**server), sites=sites)


def _static(root: Path, **options: Any) -> SiteConfig:
    return SiteConfig("static", StaticOptions(root=root, **options), name="static")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "a.txt").write_bytes(b"0123456789" * 100)
    (tmp_path / "page.html").write_text("<p>hi</p>")
    (tmp_path / ".secret").write_text("no")
    return tmp_path


@pytest.fixture
async def pair(root: Path) -> Any:
    made: list[Pair] = []

    def make(config: Config | None = None) -> Pair:
        p = Pair(config or _config(_static(root)))
        made.append(p)
        return p

    yield make
    for p in made:
        await p.aclose()


async def test_repeats_are_kept_and_answered_identically(pair: Any) -> None:
    p = pair()
    for _ in range(3):
        r = await p.both("GET", "/a.txt")
        assert r.status_code == 200 and len(r.content) == 1000
    assert p.kept() == 1
    # HTML a user wrote: the security layer's headers are part of what is kept.
    for _ in range(2):
        r = await p.both("GET", "/page.html")
    assert r.headers["referrer-policy"] == "strict-origin-when-cross-origin"
    head = await p.both("HEAD", "/a.txt")
    assert head.content == b"" and head.headers["content-length"] == "1000"
    assert _lines(p.fast_lines) == _lines(p.full_lines)  # the access log cannot tell them apart


async def test_preconditions_and_ranges_are_planned_as_the_full_stack_plans_them(
    pair: Any,
) -> None:
    p = pair()
    await p.both("GET", "/a.txt")
    first = await p.both("GET", "/a.txt")
    assert p.kept() == 1
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    cases: list[dict[str, str]] = [
        {"if-none-match": etag},
        {"if-none-match": '"other"'},
        {"if-modified-since": modified},
        {"if-match": '"other"'},
        {"range": "bytes=0-9"},
        {"range": "bytes=-5"},
        {"range": "bytes=990-"},
        {"range": "bytes=0-0,5-6"},
        {"range": "bytes=5000-"},
        {"range": "bytes=0-9", "if-range": etag},
        {"range": "bytes=0-9", "if-range": '"stale"'},
        {"range": "bytes=0-9", "if-range": modified},
    ]
    for headers in cases:
        for method in ("GET", "HEAD"):
            await p.both(method, "/a.txt", headers=headers)
    assert _lines(p.fast_lines) == _lines(p.full_lines)


async def test_an_answer_lives_no_longer_than_the_caches_trust_the_disk(
    pair: Any, root: Path
) -> None:
    p = pair()
    await p.both("GET", "/a.txt")
    (root / "a.txt").write_bytes(b"changed")
    # Within the revalidation interval (1 s) both stacks serve what they hold...
    p.clock.advance(0.5)
    assert (await p.both("GET", "/a.txt")).content == b"0123456789" * 100
    # ...and after it, what is on disk.
    p.clock.advance(0.6)
    assert (await p.both("GET", "/a.txt")).content == b"changed"


async def test_a_symlink_swapped_to_lead_outside_is_not_followed_after_the_window(
    pair: Any, root: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret.txt").write_text("outside")
    (root / "inside.txt").write_text("inside")
    os.symlink(root / "inside.txt", root / "link.txt")
    p = pair()
    assert (await p.both("GET", "/link.txt")).text == "inside"
    assert (await p.both("GET", "/link.txt")).text == "inside"
    (root / "link.txt").unlink()
    os.symlink(outside / "secret.txt", root / "link.txt")
    p.clock.advance(1.01)
    r = await p.both("GET", "/link.txt")
    assert r.status_code == 404 and "outside" not in r.text


async def test_dotfiles_listings_and_errors_are_never_kept(pair: Any, root: Path) -> None:
    (root / "dir").mkdir()
    p = pair()
    for _ in range(2):
        assert (await p.both("GET", "/.secret")).status_code == 404
        assert (await p.both("GET", "/nope")).status_code == 404
        assert (await p.both("GET", "/dir/")).status_code == 200
        assert (await p.both("GET", "/dir")).status_code == 301
        assert (await p.both("POST", "/a.txt")).status_code == 405
    assert p.kept() == 0


async def test_answers_that_vary_with_accept_encoding_are_not_kept(root: Path, pair: Any) -> None:
    (root / "big.txt").write_text("text " * 1000)
    (root / "b.js").write_text("js " * 500)
    (root / "b.js.gz").write_bytes(gzip.compress(b"js " * 500))
    compress = pair(_config(_static(root, compress=True)))
    plain = pair()
    for p, path in ((compress, "/big.txt"), (plain, "/b.js")):
        for encoding in ("gzip", "identity", "gzip"):
            await p.both("GET", path, headers={"accept-encoding": encoding})
        assert p.kept() == 0


async def test_each_host_and_mount_keeps_its_own_answers(root: Path, pair: Any) -> None:
    other = root / "other"
    other.mkdir()
    (other / "a.txt").write_text("other site")
    config = _config(
        SiteConfig("static", StaticOptions(root=root), hosts=("one.test",), name="one"),
        SiteConfig("static", StaticOptions(root=other), hosts=("two.test",), name="two"),
        SiteConfig("static", StaticOptions(root=other), hosts=("one.test",), path="/docs"),
    )
    p = pair(config)
    for _ in range(2):
        assert len((await p.both("GET", "http://one.test/a.txt")).content) == 1000
        assert (await p.both("GET", "http://two.test/a.txt")).text == "other site"
        assert (await p.both("GET", "http://one.test/docs/a.txt")).text == "other site"
        assert (await p.both("GET", "http://three.test/a.txt")).status_code == 421
    assert p.kept() == 3
    # Two Host headers, or a request with no usable one: refused as always, never from memory.
    two = [("host", "one.test"), ("host", "two.test")]
    assert (await p.fast.get("http://one.test/a.txt", headers=two)).status_code == 400


async def test_nothing_is_kept_behind_a_password(root: Path) -> None:
    config = _config(_static(root), password_hash=hash_password("secret-password"))
    app: ASGIApp = build_app(config)
    assert app.fast_path is None  # type: ignore[attr-defined]
    async with asgi_client(app) as c:
        ok = await c.get("/a.txt", auth=("any", "secret-password"))
        assert ok.status_code == 200
        # The same request without the password is asked for one, however recent the answer.
        assert (await c.get("/a.txt")).status_code == 401


async def test_shared_assets_are_kept(pair: Any) -> None:
    p = pair()
    for _ in range(2):
        r = await p.both("GET", "/.comptoir/comptoir.css")
        assert r.status_code == 200
    assert p.kept() == 1


async def test_the_kept_answers_are_bounded(pair: Any, root: Path) -> None:
    from comptoir import fastpath

    p = pair()
    for i in range(fastpath.MAX_ENTRIES + 10):
        (root / f"f{i}.txt").write_text(str(i))
    for i in range(fastpath.MAX_ENTRIES + 10):
        # Asked twice: the first answer resolves, the second is offered for keeping.
        await p.fast.get(f"/f{i}.txt")
        await p.fast.get(f"/f{i}.txt")
    assert p.kept() <= fastpath.MAX_ENTRIES


async def test_long_hosts_and_queries_are_never_kept(pair: Any) -> None:
    # granian takes Host values and query strings of hundreds of KB: each spelling kept would
    # hold that much memory for nothing anyone else asks for.
    p = pair()
    query = "x=" + "\\" * 5000
    for _ in range(2):
        await p.both("GET", "/a.txt?" + query)
        await p.both("GET", "/a.txt", headers={"host": "h" * 3000})
    assert p.kept() == 0
    await p.both("GET", "/a.txt?short=1")
    await p.both("GET", "/a.txt?short=1")
    assert p.kept() == 1


async def test_memory_counts_keys_and_headers_and_expired_entries_go_first(
    pair: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from comptoir import fastpath

    monkeypatch.setattr(fastpath, "MAX_ENTRIES", 4)
    p = pair()
    fast = p.fast_app.fast_path  # type: ignore[attr-defined]
    for i in range(3):
        await p.fast.get(f"/a.txt?old={i}")
        await p.fast.get(f"/a.txt?old={i}")
    assert p.kept() == 3
    # What is held is more than the bodies: keys, headers and log targets count too.
    assert fast._bytes > 3 * 1000 + 3 * len("/a.txt?old=0")
    await p.fast.get("/page.html")
    await p.fast.get("/page.html")
    assert p.kept() == 4
    p.clock.advance(0.5)
    await p.fast.get("/page.html")  # still fresh, and asked for again
    p.clock.advance(0.6)
    # Full: the answers whose time is over are dropped, not the whole table.
    await p.fast.get("/a.txt?new=1")
    await p.fast.get("/a.txt?new=1")
    assert set(fast.entries) == {(b"testserver", b"/a.txt", b"new=1")}
    assert fast._bytes == sum(fastpath._held(k, e) for k, e in fast.entries.items())
