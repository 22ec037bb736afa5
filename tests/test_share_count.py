"""`share --count`: every kind of request counts exactly what reaches the client.

A download is complete when the answer sends the last byte (sites/share/limits.py). Each case
below is run on each thing a share offers (a one-file share, a file inside a folder, the archive,
a folder's own archive): the answer must be the one expected, and a plain GET afterwards shows
whether it was counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from comptoir.sites import SiteContext
from comptoir.sites.share import ShareOptions
from comptoir.sites.share.app import ShareSite
from comptoir.sites.toolkit import header
from comptoir.state import StateStore
from comptoir.types import Message
from tests.conftest import asgi_client, http_scope, leaving_client


@dataclass(frozen=True)
class Target:
    """Something a share offers, and how to reach it."""

    name: str
    url: str  # after the share's /<token>/
    archive: bool
    shared: tuple[str, ...] = ("photos", "report.pdf")


TARGETS = [
    Target("one-file share", "", archive=False, shared=("report.pdf",)),
    Target("file in a folder", "f/photos/a.txt", archive=False),
    Target("archive", "archive.zip", archive=True),
    Target("folder archive", "f/photos/2024/?archive", archive=True),
]


@dataclass(frozen=True)
class Case:
    """A request, the status a file and an archive answer it with, and whether it counts."""

    name: str
    headers: dict[str, str]
    file_status: int
    archive_status: int
    counted: bool
    archive_counted: bool | None = None  # when an archive counts differently from a file
    method: str = "GET"


CASES = [
    Case("plain", {}, 200, 200, True),
    Case("head", {}, 200, 200, False, method="HEAD"),
    Case("not modified", {"if-none-match": "{etag}"}, 304, 304, False),
    Case("precondition failed", {"if-match": '"other"'}, 412, 412, False),
    Case("unsatisfiable", {"range": "bytes=99999999-"}, 416, 416, False),
    Case("first byte", {"range": "bytes=0-0"}, 206, 206, False),
    Case("last byte", {"range": "bytes=-1"}, 206, 206, True),
    Case("from the start to the end", {"range": "bytes=0-"}, 206, 206, True),
    Case("invalid range", {"range": "bytes=x-"}, 200, 200, True),
    # The reported bypass: an archive answers several ranges with all of itself, which counts.
    Case("several ranges", {"range": "bytes=0-0,2-2"}, 206, 200, False, archive_counted=True),
    Case("several ranges to the end", {"range": "bytes=0-0,-1"}, 206, 200, True),
    Case("if-range matching", {"range": "bytes=0-0", "if-range": "{etag}"}, 206, 206, False),
    Case("if-range by date", {"range": "bytes=0-0", "if-range": "{lm}"}, 206, 206, False),
    Case("if-range stale", {"range": "bytes=0-0", "if-range": '"other"'}, 200, 200, True),
    Case("ranges, if-range stale", {"range": "bytes=0-0,2-2", "if-range": '"x"'}, 200, 200, True),
]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A folder and a file to share."""
    photos = tmp_path / "photos"
    (photos / "2024").mkdir(parents=True)
    (photos / "a.txt").write_bytes(b"alpha, a file of some length\n" * 10)
    (photos / "2024" / "b.txt").write_bytes(b"bravo\n" * 50)
    (tmp_path / "report.pdf").write_bytes(b"%PDF-1.4 report\n" * 20)
    return tmp_path


Make = Callable[..., tuple[ShareSite, httpx.AsyncClient, str]]


@pytest.fixture
async def make_share(tree: Path) -> AsyncIterator[Make]:
    """Factory: (site, in-process client, base URL) of a share of `shared` names in `tree`."""
    clients: list[httpx.AsyncClient] = []

    def make(
        shared: tuple[str, ...], **options: object
    ) -> tuple[ShareSite, httpx.AsyncClient, str]:
        opts = ShareOptions(paths=tuple(tree / n for n in shared), **options)  # type: ignore[arg-type]
        context = SiteContext(request_shutdown=time.monotonic, quiet=True, store=StateStore())
        site = ShareSite(opts, context)
        client = asgi_client(site)
        clients.append(client)
        return site, client, f"/{opts.token}/"

    yield make
    for c in clients:
        await c.aclose()


CURL = {"accept": "*/*"}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
async def test_each_request_counts_what_reaches_the_client(
    make_share: Make, target: Target, case: Case
) -> None:
    _, client, base = make_share(target.shared, count=2)
    url = base + target.url
    # The first of the two downloads, to compare bodies with; it leaves one.
    whole = await client.get(url, headers=CURL)
    assert whole.status_code == 200
    headers = {
        k: v.format(etag=whole.headers["etag"], lm=whole.headers["last-modified"])
        for k, v in case.headers.items()
    }
    r = await client.request(case.method, url, headers={**CURL, **headers})
    expected = case.archive_status if target.archive else case.file_status
    assert r.status_code == expected
    if r.status_code == 200 and case.method == "GET":
        assert r.content == whole.content
    if r.status_code == 206 and "multipart" not in r.headers["content-type"]:
        start, end = map(int, r.headers["content-range"].split()[1].split("/")[0].split("-"))
        assert r.content == whole.content[start : end + 1]
    if case.method == "HEAD" or r.status_code in (304, 412, 416):
        assert r.content == b""
    counted = case.counted
    if target.archive and case.archive_counted is not None:
        counted = case.archive_counted
    after = await client.get(url, headers=CURL)
    assert after.status_code == (410 if counted else 200)


async def test_several_ranges_no_longer_get_the_archive_past_its_count(make_share: Make) -> None:
    # The report: with --count 1, three requests for `bytes=0-0,2-2` each got the whole archive.
    _, client, base = make_share(("photos", "report.pdf"), count=1)
    first = await client.get(base + "archive.zip", headers={"range": "bytes=0-0,2-2"})
    assert first.status_code == 200
    for _ in range(3):
        again = await client.get(base + "archive.zip", headers={"range": "bytes=0-0,2-2"})
        assert again.status_code == 410
    assert (await client.get(base + "archive.zip")).status_code == 410


@pytest.mark.parametrize("headers", [{}, {"range": "bytes=0-0,2-2"}, {"range": "bytes=-1"}])
async def test_concurrent_clients_get_exactly_the_count(
    make_share: Make, headers: dict[str, str]
) -> None:
    site, client, base = make_share(("photos", "report.pdf"), count=1)
    results = await asyncio.gather(
        *(client.get(base + "archive.zip", headers=headers) for _ in range(10))
    )
    statuses = sorted(r.status_code for r in results)
    assert statuses[0] in (200, 206) and statuses[1:] == [410] * 9
    assert site.slots.completed("archive") == 1


async def test_concurrent_clients_of_a_file_in_a_folder(make_share: Make) -> None:
    _, client, base = make_share(("photos", "report.pdf"), count=3)
    results = await asyncio.gather(
        *(client.get(base + "f/photos/a.txt", headers=CURL) for _ in range(10))
    )
    assert sorted(r.status_code for r in results) == [200] * 3 + [410] * 7
    # Segments that end before the last byte are still answered: nothing is taken from them.
    _, client2, base2 = make_share(("photos", "report.pdf"), count=1)
    parts = await asyncio.gather(
        *(client2.get(base2 + "f/photos/a.txt", headers={"range": "bytes=0-9"}) for _ in range(10))
    )
    assert {r.status_code for r in parts} == {206}


# -- a client hanging up as soon as it has every byte --------------------------------------------


def _has_everything(data: bytes, length: int | None, gzipped: bool) -> bool:
    """Whether a client holding `data` can tell it has the whole body, as a real one would."""
    if length is not None:
        return len(data) >= length
    if gzipped:  # tar.gz: the gzip stream has ended
        d = zlib.decompressobj(31)
        d.decompress(data)
        return d.eof
    # A zip without a comment ends with its 22-byte end-of-central-directory record.
    return len(data) >= 22 and data[-22:-18] == b"PK\x05\x06"


async def _get_and_hang_up(
    site: ShareSite, path: str, gzipped: bool, headers: dict[str, str]
) -> tuple[int, bytes]:
    """GET `path`; the client leaves the moment it holds the whole body. (status, body)."""

    def has_everything(start: Message, body: bytes) -> bool:
        length = header(start["headers"], b"content-length")
        # Reset at once, before any closing message.
        return _has_everything(body, None if length is None else int(length), gzipped)

    start, body = await leaving_client(site, http_scope(path, headers), has_everything)
    return start["status"], body


HANG_UP = [
    # Of unknown size (no Content-Length): the review's bypass, --count 1 gave several copies.
    ("tar.gz archive", "archive.tar.gz", {"archive": "tar.gz"}, {}),
    ("compressed zip archive", "archive.zip", {"compress": True}, {}),
    ("compressed zip of a folder", "f/photos/2024/", {"compress": True}, {}),
    # Of known size: finished with the Content-Length's last byte.
    ("stored zip archive", "archive.zip", {}, {}),
    ("stored zip, range to the end", "archive.zip", {}, {"range": "bytes=100-"}),
    ("file", "f/photos/big.bin", {}, {}),
    ("file, range to the end", "f/photos/big.bin", {}, {"range": "bytes=1000-"}),
]


@pytest.mark.parametrize(
    ("url", "options", "headers"), [h[1:] for h in HANG_UP], ids=[h[0] for h in HANG_UP]
)
async def test_a_client_leaving_right_after_the_last_byte_is_counted(
    make_share: Make, tree: Path, url: str, options: dict[str, object], headers: dict[str, str]
) -> None:
    # An archive of unknown size was counted only on an empty closing message sent after one
    # more thread hop (the one finding the end): a client cut in between had every byte and its
    # slot back. Now the last bytes close the response, for every way a body is sent.
    # Incompressible, several send chunks long: the last bytes are not in the first message.
    (tree / "photos" / "big.bin").write_bytes(os.urandom(3 * 256 * 1024 + 12345))
    for _ in range(10):
        site, client, base = make_share(("photos", "report.pdf"), count=1, **options)
        gzipped = options.get("archive") == "tar.gz"
        status, body = await _get_and_hang_up(site, base + url, gzipped, headers)
        assert status in (200, 206) and body
        # The client holds every byte: that was its one download.
        again = await client.get(base + url, headers=CURL)
        assert again.status_code == 410, url


async def _stalled_client(site: ShareSite, path: str) -> asyncio.Task[None]:
    """GET `path` as a client that reads the first chunk and then nothing: the server's next
    `send` of body never returns (as granian's, once the socket's buffers are full)."""
    started = asyncio.Event()
    never = asyncio.Event()

    async def receive() -> Message:
        await never.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.body" and started.is_set():
            await never.wait()
        if message["type"] == "http.response.body":
            started.set()

    task = asyncio.create_task(site(http_scope(path, CURL), receive, send))
    await asyncio.wait_for(started.wait(), 5)
    return task


async def test_a_client_that_stops_reading_loses_its_once_slot(
    make_share: Make, tree: Path
) -> None:
    # The reproduction: with --once, a reader that stalled held the one slot, and every
    # other client got 410 "already downloaded" though nothing had been downloaded.
    (tree / "photos" / "big.bin").write_bytes(os.urandom(3 * 256 * 1024))
    site, client, base = make_share(("photos", "report.pdf"), once=True, stall_timeout=0.2)
    url = base + "f/photos/big.bin"
    stalled = await _stalled_client(site, url)
    # While it may still resume reading, it holds the slot.
    assert (await client.get(url, headers=CURL)).status_code == 410
    # No progress for the stall timeout: cut, and the slot is free again.
    await asyncio.wait_for(stalled, 5)
    r = await client.get(url, headers=CURL)
    assert r.status_code == 200 and r.content == (tree / "photos" / "big.bin").read_bytes()
    # That one completed: the link is used up.
    assert (await client.get(url, headers=CURL)).status_code == 410


async def test_a_dead_worker_s_slot_comes_back_after_its_lease(tree: Path) -> None:
    # A worker killed mid-transfer gives nothing back itself; its lease, no longer renewed,
    # expires. One alive renews its lease for as long as the transfer lasts.
    from comptoir.clock import ManualClock
    from comptoir.sites.share.limits import LEASE_TTL, DownloadSlots, Gone

    clock = ManualClock()
    store = StateStore(clock=clock.time)
    slots = DownloadSlots(store, "s", 1, None, clock.time)
    dead = slots.take("f")
    assert dead is not None
    with pytest.raises(Gone):
        slots.take("f")
    clock.advance(LEASE_TTL - 1)
    with pytest.raises(Gone):
        slots.take("f")
    clock.advance(2)  # the dead worker never renewed
    alive = slots.take("f")
    assert alive is not None
    for _ in range(10):
        clock.advance(LEASE_TTL / 3)
        slots.renew(alive)
        with pytest.raises(Gone):
            slots.take("f")
    # Completed: held for good, and counted.
    assert slots.complete("f", alive) == 1
    clock.advance(10 * LEASE_TTL)
    with pytest.raises(Gone):
        slots.take("f")
    assert slots.used_up("f")


async def test_a_transfer_in_flight_renews_its_slot(
    make_share: Make, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from comptoir.sites.share import download

    monkeypatch.setattr(download, "LEASE_TTL", 0.06)
    (tree / "photos" / "big.bin").write_bytes(os.urandom(3 * 256 * 1024))
    site, _, base = make_share(("photos", "report.pdf"), once=True, stall_timeout=30)
    renewed: list[str] = []
    renew = site.slots.renew
    monkeypatch.setattr(site.slots, "renew", lambda slot: (renewed.append(slot), renew(slot)))
    url = base + "f/photos/big.bin"
    stalled = await _stalled_client(site, url)
    await asyncio.sleep(0.2)
    stalled.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await stalled
    assert len(renewed) >= 2 and len(set(renewed)) == 1
