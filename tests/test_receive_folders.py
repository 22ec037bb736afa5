"""`receive`: the folders an upload creates are bounded and counted (issue 10, item 3).

One 380 KB multipart request once made 32,000 folders (1,000 files, 32 new levels each), none
of them counted by --max-total, each `mkdir` on the event loop (other requests waited up to 2 s).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from comptoir.sites import SiteContext
from comptoir.sites.receive import ReceiveOptions
from comptoir.sites.receive import upload as upload_module
from comptoir.sites.receive.app import ReceiveSite
from comptoir.sites.receive.names import MAX_DEPTH
from comptoir.sites.receive.upload import FOLDER_BYTES, MAX_NEW_FOLDERS
from comptoir.state import StateStore
from tests.conftest import asgi_client
from tests.test_receive import TOKEN, call, chunk, listing, site_app


@pytest.fixture
def client(tmp_path: Path) -> Callable[..., httpx.AsyncClient]:
    def make(**options: Any) -> httpx.AsyncClient:
        return asgi_client(site_app(tmp_path, **options))

    return make


def deep(top: str, levels: int, name: str = "f.txt") -> str:
    """A relative path of `levels` folders under `top` (counted in), ending in `name`."""
    return "/".join([top, *(f"d{i}" for i in range(levels - 1)), name])


async def chunked(data: bytes, size: int = 16 * 1024) -> AsyncIterator[bytes]:
    """`data` as a chunked body (no Content-Length), as the reported request was sent."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


def multipart(names: list[str], boundary: str = "BB") -> tuple[bytes, dict[str, str]]:
    """A multipart/form-data body of one small file per name; (body, headers)."""
    body = b"".join(
        f"--{boundary}\r\nContent-Disposition: form-data; name=f; filename={name}\r\n\r\n".encode()
        + b"x\r\n"
        for name in names
    )
    body += f"--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


# -- how many folders one request may create ------------------------------------------------


async def test_a_request_making_thousands_of_folders_is_refused_and_leaves_nothing(
    client: Callable[..., httpx.AsyncClient], tmp_path: Path
) -> None:
    # What an earlier upload left is not touched by the refusal.
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "old.txt").write_text("earlier upload")
    # 40 files, each under 31 new levels of its own: 1,240 new folders.
    names = [deep(f"kept/t{i}", MAX_DEPTH - 1) for i in range(40)]
    assert len(names) * (MAX_DEPTH - 1) > MAX_NEW_FOLDERS
    body, headers = multipart(names)
    async with client() as c:
        r = await c.post(f"/{TOKEN}/", content=chunked(body), headers=headers)
        assert r.status_code == 413
        assert r.text == f"Too many new folders in one request (at most {MAX_NEW_FOLDERS})\n"
        assert r.headers["connection"] == "close"
        r = await c.post(
            f"/{TOKEN}/", content=body, headers={**headers, "Accept": "application/json"}
        )
        assert r.status_code == 413
        assert r.json()["error"].startswith("Too many new folders in one request")
    assert listing(tmp_path) == ["kept", "kept/old.txt"]


async def test_the_folder_cap_counts_new_folders_only(
    client: Callable[..., httpx.AsyncClient], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(upload_module, "MAX_NEW_FOLDERS", 3)
    (tmp_path / "a" / "b").mkdir(parents=True)
    async with client() as c:
        # Folders already there are used as they are: only c, d and e are new.
        ok = ["a/b/c/1.txt", "a/b/c/d/2.txt", "a/e/3.txt", "a/b/4.txt", "5.txt"]
        body, headers = multipart(ok)
        r = await c.post(f"/{TOKEN}/", content=body, headers=headers)
        assert r.status_code == 201, r.text
        # A fourth new folder in the same request is one too many; the whole request goes.
        body, headers = multipart(["x/1.txt", "y/2.txt", "z/3.txt", "w/4.txt"])
        r = await c.post(f"/{TOKEN}/", content=body, headers=headers)
        assert r.status_code == 413
        # A PUT whose path alone has more new folders is refused before any is made.
        status, _, read = await call(
            site_app(tmp_path),
            "PUT",
            f"/{TOKEN}/p/q/r/s/f.txt",
            [chunk(b"x", more=False)],
            [(b"content-length", b"1")],
        )
        assert (status, read) == (413, 0)
    assert listing(tmp_path) == [
        "5.txt",
        "a",
        "a/b",
        "a/b/4.txt",
        "a/b/c",
        "a/b/c/1.txt",
        "a/b/c/d",
        "a/b/c/d/2.txt",
        "a/e",
        "a/e/3.txt",
    ]


async def test_depth_is_capped_before_anything_is_made(
    client: Callable[..., httpx.AsyncClient], tmp_path: Path
) -> None:
    async with client() as c:
        r = await c.put(f"/{TOKEN}/{deep('too', MAX_DEPTH + 1)}", content=b"x")
        assert (r.status_code, r.text) == (400, f"Path too deep (at most {MAX_DEPTH} folders)\n")
        body, headers = multipart(["fine.txt", deep("too", MAX_DEPTH + 1)])
        assert (await c.post(f"/{TOKEN}/", content=body, headers=headers)).status_code == 400
        assert listing(tmp_path) == []
        r = await c.put(f"/{TOKEN}/{deep('max', MAX_DEPTH)}", content=b"x")
        assert r.status_code == 201
    assert len(listing(tmp_path)) == MAX_DEPTH + 1


# -- folders count against --max-total ----------------------------------------------------------


async def test_new_folders_count_against_max_total(tmp_path: Path) -> None:
    app = site_app(tmp_path, max_total=10_000)

    async def put(path: str, data: bytes) -> tuple[int | None, int]:
        headers = [(b"content-length", str(len(data)).encode())]
        status, _, read = await call(app, "PUT", f"/{TOKEN}/{path}", [chunk(data, False)], headers)
        return status, read

    # Three new folders are 3 x 4096 bytes: more than the link accepts, refused unread.
    assert await put("a/b/c/x.bin", b"x") == (413, 0)
    assert listing(tmp_path) == []
    assert await put("a/x.bin", b"x" * 100) == (201, 1)  # 4196 bytes in all
    assert await put("a/y.bin", b"x" * 100) == (201, 1)  # a folder already made: 4296
    assert await put("b/x.bin", b"x" * 100) == (201, 1)  # 8492
    assert await put("c/x.bin", b"x" * 100) == (413, 0)  # 8492 + 4196 > 10,000
    assert await put("z.bin", b"x" * (10_000 - 8492)) == (201, 1)  # exactly full
    assert await put("one-more-byte", b"x") == (413, 0)
    assert listing(tmp_path) == ["a", "a/x.bin", "a/y.bin", "b", "b/x.bin", "z.bin"]
    assert FOLDER_BYTES == 4096


async def test_folders_of_multipart_and_chunked_uploads_count_too(
    client: Callable[..., httpx.AsyncClient], tmp_path: Path
) -> None:
    async with client(max_total=3 * FOLDER_BYTES) as c:
        # Two new folders and 4097 bytes of file: one byte too many.
        r = await c.post(f"/{TOKEN}/", files={"f": ("n/m/a.bin", b"x" * (FOLDER_BYTES + 1))})
        assert r.status_code == 413
        assert r.text == "Upload refused: this link accepts 12.0 KiB in all\n"
        assert listing(tmp_path) == []
        # Chunked, without a Content-Length: the same count.
        r = await c.put(f"/{TOKEN}/n/m/b.bin", content=chunked(b"x" * (FOLDER_BYTES + 1)))
        assert r.status_code == 413
        assert listing(tmp_path) == []
        # A failed upload gave its folders' share back: exactly what is left fits.
        r = await c.put(f"/{TOKEN}/n/m/c.bin", content=chunked(b"x" * FOLDER_BYTES))
        assert r.status_code == 201, r.text
    assert listing(tmp_path) == ["n", "n/m", "n/m/c.bin"]


# -- off the event loop -----------------------------------------------------------------------


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


async def test_folders_are_created_off_the_event_loop(
    client: Callable[..., httpx.AsyncClient], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_mkdir = os.mkdir
    calls: list[bool] = []

    def mkdir(*args: Any, **kwargs: Any) -> None:
        calls.append(_on_event_loop())
        real_mkdir(*args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    async with client() as c:
        assert (await c.put(f"/{TOKEN}/a/b/x.txt", content=b"x")).status_code == 201
        files = [("f", ("c/y.txt", b"y")), ("f", ("c/d/z.txt", b"z")), ("f", ("top", b"t"))]
        r = await c.post(f"/{TOKEN}/", files=files)
        assert r.status_code == 201, r.text
    assert calls == [False] * 4
    assert listing(tmp_path) == [
        "a", "a/b", "a/b/x.txt", "c", "c/d", "c/d/z.txt", "c/y.txt", "top",
    ]  # fmt: skip


async def test_a_refused_request_is_removed_off_the_event_loop(
    client: Callable[..., httpx.AsyncClient], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Up to MAX_FILES files and MAX_NEW_FOLDERS folders to remove: not on the loop either.
    monkeypatch.setattr(upload_module, "MAX_NEW_FOLDERS", 6)
    calls: list[tuple[str, bool]] = []

    def spy(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def call_off_loop(*args: Any, **kwargs: Any) -> Any:
            calls.append((name, _on_event_loop()))
            return real(*args, **kwargs)

        return call_off_loop

    monkeypatch.setattr(os, "rmdir", spy("rmdir", os.rmdir))
    monkeypatch.setattr(os, "unlink", spy("unlink", os.unlink))
    body, headers = multipart(["a/b/c/1.txt", "d/e/f/2.txt", "g/3.txt"])
    async with client() as c:
        r = await c.post(f"/{TOKEN}/", content=body, headers=headers)
        assert r.status_code == 413
    assert listing(tmp_path) == []
    assert sorted(calls) == [("rmdir", False)] * 6 + [("unlink", False)] * 2


class _HeldMkdir:
    """`os.mkdir` that waits, in its thread, until the test lets it go."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.real = os.mkdir

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        self.entered.set()
        assert self.release.wait(5)
        self.real(*args, **kwargs)


async def _put_held(site: ReceiveSite, held: _HeldMkdir) -> asyncio.Task[Any]:
    """A PUT into new folders, started and held inside its first `mkdir`."""
    task = asyncio.ensure_future(
        call(site, "PUT", f"/{TOKEN}/new/sub/x.txt", [chunk(b"x", more=False)])
    )
    await asyncio.to_thread(held.entered.wait, 5)
    return task


async def test_stopping_while_folders_are_made_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = _HeldMkdir()
    monkeypatch.setattr(os, "mkdir", held)
    site = ReceiveSite(ReceiveOptions(root=tmp_path, token=TOKEN), SiteContext(quiet=True))
    task = await _put_held(site, held)
    # The worker stops while the thread is inside mkdir: the cleanup waits for it.
    await site.shutdown()
    held.release.set()
    status, _, _ = await task
    assert status == 503
    assert listing(tmp_path) == []


async def test_a_cancelled_request_waits_for_its_folders_then_removes_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = _HeldMkdir()
    monkeypatch.setattr(os, "mkdir", held)
    store = StateStore()
    options = ReceiveOptions(root=tmp_path, token=TOKEN, max_total=100_000)
    site = ReceiveSite(options, SiteContext(quiet=True, store=store))
    task = await _put_held(site, held)
    task.cancel()
    await asyncio.sleep(0.05)
    assert not task.done(), "cancelled, the request still waits for the thread"
    held.release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert listing(tmp_path) == []
    assert site.in_flight == set()
    assert store.get_int(site.key + "bytes") == 0
