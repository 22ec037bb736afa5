"""`receive` in process: HTTP semantics of the upload link, limits, cleanup, the store."""

from __future__ import annotations

import errno
import json
import os
import pickle
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from comptoir.app import build_app
from comptoir.config import ServerOptions, SiteConfig
from comptoir.settings import options_from_mapping
from comptoir.sites import KINDS, SiteContext
from comptoir.sites.receive import ReceiveOptions, validate
from comptoir.sites.receive import body as body_module
from comptoir.sites.receive import upload as upload_module
from comptoir.sites.receive.app import ReceiveSite
from comptoir.state import StateStore
from comptoir.types import ASGIApp, Message
from tests.conftest import asgi_client, make_config

TOKEN = "t0ken-for-tests_123"


def listing(root: Path) -> list[str]:
    """Every path under root, relative, sorted (hidden ones included)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def site_app(root: Path, **options: Any) -> ASGIApp:
    options.setdefault("token", TOKEN)
    return build_app(make_config("receive", ReceiveOptions(root=root, **options)))


@pytest.fixture
def client(tmp_path: Path) -> Callable[..., httpx.AsyncClient]:
    def make(**options: Any) -> httpx.AsyncClient:
        return asgi_client(site_app(tmp_path, **options))

    return make


async def call(
    app: ASGIApp,
    method: str,
    path: str,
    messages: list[Message],
    headers: list[tuple[bytes, bytes]] | None = None,
) -> tuple[int | None, bytes, int]:
    """Run one request with the given receive() messages; (status, body, messages read)."""
    pending = list(messages)
    read = 0
    status: int | None = None
    body = b""

    async def receive() -> Message:
        nonlocal read
        read += 1
        if pending:
            return pending.pop(0)
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status, body
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            body += message.get("body", b"")

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"testserver"), *(headers or [])],
        "client": ("127.0.0.1", 5000),
    }
    await app(scope, receive, send)
    return status, body, read


def chunk(data: bytes, more: bool = True) -> Message:
    return {"type": "http.request", "body": data, "more_body": more}


# -- the link and its page ---------------------------------------------------------------------


async def test_page_answers_only_at_the_token(client: Callable[..., httpx.AsyncClient]) -> None:
    async with client() as c:
        r = await c.get(f"/{TOKEN}/")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/html")
        assert f'data-upload-url="/{TOKEN}/"' in r.text
        assert "receive.js" in r.text
        assert "<script>" not in r.text  # no inline script (a CSP default-src 'self' is coming)
        assert r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["x-robots-tag"] == "noindex"
        assert r.headers["cache-control"] == "no-store"
        unknown = await c.get("/nothing-here/")
        wrong = await c.get(f"/{TOKEN[:-1]}x/")
        assert wrong.status_code == unknown.status_code == 404
        assert wrong.text == unknown.text == "Not found\n"
        assert wrong.headers["referrer-policy"] == "no-referrer"
        assert TOKEN not in wrong.text
        assert (await c.get("/")).status_code == 404
        assert (await c.put("/x.txt", content=b"x")).status_code == 404


async def test_token_without_slash_redirects(client: Callable[..., httpx.AsyncClient]) -> None:
    async with client() as c:
        r = await c.get(f"/{TOKEN}")
        assert r.status_code == 301
        assert r.headers["location"] == f"/{TOKEN}/"


async def test_head_options_and_other_methods(client: Callable[..., httpx.AsyncClient]) -> None:
    async with client() as c:
        head = await c.head(f"/{TOKEN}/")
        assert head.status_code == 200
        assert head.content == b""
        assert int(head.headers["content-length"]) > 0
        opts = await c.options(f"/{TOKEN}/")
        assert opts.status_code == 204
        assert "PUT" in opts.headers["allow"] and "POST" in opts.headers["allow"]
        assert (await c.delete(f"/{TOKEN}/")).status_code == 405
        assert (await c.delete(f"/{TOKEN}/a.txt")).headers["allow"] == "PUT, OPTIONS"
        # Received files are not served back.
        assert (await c.get(f"/{TOKEN}/a.txt")).status_code == 404


async def test_page_and_json_list_show_received_files(
    client: Callable[..., httpx.AsyncClient],
) -> None:
    async with client() as c:
        empty = await c.get(f"/{TOKEN}/", headers={"Accept": "application/json"})
        assert empty.json() == {"files": []}
        await c.put(f"/{TOKEN}/first.txt", content=b"1")
        await c.put(f"/{TOKEN}/Tom & Jerry's <b>.txt", content=b"22")
        files = (await c.get(f"/{TOKEN}/", headers={"Accept": "application/json"})).json()
        assert [(f["name"], f["size"]) for f in files["files"]] == [
            ("first.txt", 1),
            ("Tom & Jerry's _b_.txt", 2),
        ]
        page = (await c.get(f"/{TOKEN}/")).text
        assert "first.txt" in page
        assert "Tom &amp; Jerry&#39;s _b_.txt" in page


# -- PUT -----------------------------------------------------------------------------------------


async def test_put_saves_the_file(client: Callable[..., httpx.AsyncClient], tmp_path: Path) -> None:
    async with client() as c:
        r = await c.put(f"/{TOKEN}/hello world.txt", content=b"hello\n")
        assert r.status_code == 201
        assert r.text == "saved: hello world.txt (6 bytes)\n"
        assert r.headers["referrer-policy"] == "no-referrer"
    assert (tmp_path / "hello world.txt").read_bytes() == b"hello\n"
    assert listing(tmp_path) == ["hello world.txt"]


async def test_put_never_overwrites(
    client: Callable[..., httpx.AsyncClient], tmp_path: Path
) -> None:
    (tmp_path / "photo.jpg").write_bytes(b"original")
    async with client() as c:
        names = []
        for i in range(3):
            r = await c.put(
                f"/{TOKEN}/photo.jpg",
                content=str(i).encode(),
                headers={"Accept": "application/json"},
            )
            assert r.status_code == 201
            [saved] = r.json()["files"]
            assert saved["sent_as"] == "photo.jpg"
            names.append(saved["name"])
    assert names == ["photo (1).jpg", "photo (2).jpg", "photo (3).jpg"]
    assert (tmp_path / "photo.jpg").read_bytes() == b"original"
    assert (tmp_path / "photo (3).jpg").read_bytes() == b"2"


async def test_put_keeps_folders_inside_dir(
    client: Callable[..., httpx.AsyncClient], tmp_path: Path
) -> None:
    async with client() as c:
        r = await c.put(f"/{TOKEN}/album/2024/été.jpg", content=b"x")
        assert r.text == "saved: album/2024/été.jpg (1 bytes)\n"
        hostiles = ("..%2F..%2Fescape.txt", "%2E%2E/%2E%2E/escape2.txt", ".ssh/authorized_keys")
        for hostile in hostiles:
            r = await c.put(f"/{TOKEN}/{hostile}", content=b"x")
            assert r.status_code == 201, r.text
    assert not (tmp_path.parent / "escape.txt").exists()
    assert not (tmp_path.parent / "escape2.txt").exists()
    assert listing(tmp_path) == [
        "_.._escape.txt",
        "album",
        "album/2024",
        "album/2024/été.jpg",
        "escape2.txt",
        "ssh",
        "ssh/authorized_keys",
    ]


async def test_put_without_a_name_is_called_upload(
    client: Callable[..., httpx.AsyncClient], tmp_path: Path
) -> None:
    async with client() as c:
        assert (await c.put(f"/{TOKEN}/", content=b"x")).status_code == 201
        assert (await c.put(f"/{TOKEN}", content=b"y")).status_code == 201
    assert listing(tmp_path) == ["upload", "upload (1)"]


async def test_put_empty_file(client: Callable[..., httpx.AsyncClient], tmp_path: Path) -> None:
    async with client() as c:
        assert (await c.put(f"/{TOKEN}/empty", content=b"")).status_code == 201
    assert (tmp_path / "empty").read_bytes() == b""


async def test_symlinked_folder_does_not_lead_out(
    client: Callable[..., httpx.AsyncClient], tmp_path: Path
) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "link").symlink_to(outside)
    (root / "file").write_text("x")
    async with asgi_client(site_app(root)) as c:
        r = await c.put(f"/{TOKEN}/link/x.txt", content=b"x")
        assert r.status_code == 409
        assert (await c.put(f"/{TOKEN}/file/x.txt", content=b"x")).status_code == 409
    assert listing(outside) == []
    assert listing(root) == ["file", "link"]


async def test_malformed_percent_encoding_is_400(client: Callable[..., httpx.AsyncClient]) -> None:
    async with client() as c:
        r = await c.put(f"/{TOKEN}/bad%zz", content=b"x")
        assert r.status_code == 400


# -- multipart -----------------------------------------------------------------------------------


async def test_multipart_several_files(
    client: Callable[..., httpx.AsyncClient], tmp_path: Path
) -> None:
    files = [
        ("file", ("a.txt", b"aaa")),
        ("file", ("a.txt", b"second a")),
        ("other", ("../../etc/passwd", b"root")),
        ("x", ("CON.txt", b"con")),
        ("y", (".bashrc", b"rc")),
        ("z", ("dir/sub/deep.txt", b"deep")),
        ("empty", ("", b"")),
    ]
    async with client() as c:
        r = await c.post(
            f"/{TOKEN}/",
            files=files,
            data={"comment": "ignored"},
            headers={"Accept": "application/json"},
        )
        assert r.status_code == 201, r.text
        saved = r.json()["files"]
    assert [(f["name"], f["sent_as"]) for f in saved] == [
        ("a.txt", "a.txt"),
        ("a (1).txt", "a.txt"),
        ("etc/passwd", "../../etc/passwd"),
        ("_CON.txt", "CON.txt"),
        ("bashrc", ".bashrc"),
        ("dir/sub/deep.txt", "dir/sub/deep.txt"),
    ]
    assert (tmp_path / "a (1).txt").read_bytes() == b"second a"
    assert (tmp_path / "etc" / "passwd").read_bytes() == b"root"
    assert listing(tmp_path) == [
        "_CON.txt",
        "a (1).txt",
        "a.txt",
        "bashrc",
        "dir",
        "dir/sub",
        "dir/sub/deep.txt",
        "etc",
        "etc/passwd",
    ]


async def test_multipart_text_answer(client: Callable[..., httpx.AsyncClient]) -> None:
    async with client() as c:
        r = await c.post(f"/{TOKEN}/", files=[("f", ("x.bin", b"12")), ("f", ("y.bin", b"3"))])
    assert r.text == "saved: x.bin (2 bytes)\nsaved: y.bin (1 bytes)\n"


@pytest.mark.parametrize(
    ("header", "name"),
    [
        (b'form-data; name="f"; filename="plain.txt"', "plain.txt"),
        # Browsers and curl 7.81+ escape `"`, CR and LF this way (the HTML form encoding).
        (b'form-data; name="f"; filename="say %22hi%22.txt"', 'say "hi".txt'),
        (b'form-data; name="f"; filename="new%0Aline%0d.txt"', "new\nline\r.txt"),
        (b'form-data; name="f"; filename="100%25 sure.txt"', "100%25 sure.txt"),
        (b'form-data; name="f"; filename="back\\\\slash.txt"', "back\\slash.txt"),
        ("form-data; name=f; filename=été.txt".encode(), "été.txt"),
        # RFC 8187 `filename*` (some HTTP libraries send it, alone or with a fallback).
        (b"form-data; name=f; filename*=UTF-8''%C3%A9t%C3%A9%20%F0%9F%98%80.txt", "été 😀.txt"),
        (b"form-data; name=f; filename=x.txt; filename*=utf-8''%C3%A9.txt", "é.txt"),
        (b"form-data; name=f; filename*=iso-8859-1'fr'caf%E9.txt", "café.txt"),
        (b"form-data; name=f", None),
        (b'form-data; name=f; filename=""', ""),
    ],
)
def test_multipart_file_names_as_clients_send_them(header: bytes, name: str | None) -> None:
    assert body_module.part_filename(header) == name


async def test_multipart_escaped_names_are_saved_as_meant(
    client: Callable[..., httpx.AsyncClient], tmp_path: Path
) -> None:
    body = (
        b'--BB\r\nContent-Disposition: form-data; name="f"; filename="say %22hi%22.txt"\r\n'
        b"\r\nquoted\r\n"
        b"--BB\r\nContent-Disposition: form-data; name=f; filename*=UTF-8''%C3%A9t%C3%A9.txt\r\n"
        b"\r\nstar\r\n--BB--\r\n"
    )
    headers = {"Content-Type": "multipart/form-data; boundary=BB", "Accept": "application/json"}
    async with client() as c:
        r = await c.post(f"/{TOKEN}/", content=body, headers=headers)
    assert r.status_code == 201, r.text
    assert [(f["sent_as"], f["name"]) for f in r.json()["files"]] == [
        ('say "hi".txt', "say _hi_.txt"),
        ("été.txt", "été.txt"),
    ]
    assert (tmp_path / "say _hi_.txt").read_bytes() == b"quoted"
    assert (tmp_path / "été.txt").read_bytes() == b"star"


async def test_multipart_mistakes_are_4xx_and_leave_nothing(
    client: Callable[..., httpx.AsyncClient], tmp_path: Path
) -> None:
    async with client() as c:
        url = f"/{TOKEN}/"
        r = await c.post(url, data={"a": "b"})
        assert r.status_code == 415
        r = await c.post(url, content=b"x", headers={"Content-Type": "multipart/form-data"})
        assert r.status_code == 400
        r = await c.post(url, data={"a": "b"}, files={"f": ("", b"")})
        assert r.status_code == 400
        assert r.text == "No file in the request\n"
        bad = b"--BB\r\nContent-Disposition: form-data; name=f; filename=x.txt\r\n\r\nabc"
        ctype = {"Content-Type": "multipart/form-data; boundary=BB"}
        r = await c.post(url, content=bad, headers=ctype)
        assert r.status_code == 400  # ends before its closing boundary
        garbage = b"--BB\r\nno colon here\r\n\r\n"
        assert (await c.post(url, content=garbage, headers=ctype)).status_code == 400
        first_ok_then_cut = (
            b"--BB\r\nContent-Disposition: form-data; name=f; filename=ok.txt\r\n\r\nfine\r\n"
            b"--BB\r\nContent-Disposition: form-data; name=f; filename=cut.txt\r\n\r\npart"
        )
        r = await c.post(url, content=first_ok_then_cut, headers=ctype)
        assert r.status_code == 400
    # A request is all or nothing: ok.txt went with the broken rest.
    assert listing(tmp_path) == []


# -- limits ------------------------------------------------------------------------------------


async def test_max_size_refused_from_content_length_before_reading(tmp_path: Path) -> None:
    app = site_app(tmp_path, max_size=10)
    status, body, read = await call(
        app,
        "PUT",
        f"/{TOKEN}/big.bin",
        [chunk(b"x" * 11, more=False)],
        [(b"content-length", b"11")],
    )
    assert status == 413
    assert read == 0
    assert b"10 B per file" in body
    assert listing(tmp_path) == []


async def test_max_size_enforced_while_streaming(
    client: Callable[..., httpx.AsyncClient], tmp_path: Path
) -> None:
    async def body() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"x" * 1000

    async with client(max_size=5000) as c:
        r = await c.put(f"/{TOKEN}/big.bin", content=body())  # chunked: no Content-Length
        assert r.status_code == 413
        assert r.headers["connection"] == "close"
        r = await c.post(f"/{TOKEN}/", files={"f": ("big.bin", b"x" * 5001)})
        assert r.status_code == 413
        assert listing(tmp_path) == []
        ok = await c.put(f"/{TOKEN}/ok.bin", content=b"x" * 5000)
        assert ok.status_code == 201
    assert listing(tmp_path) == ["ok.bin"]


async def test_max_total_counts_the_session(
    client: Callable[..., httpx.AsyncClient], tmp_path: Path
) -> None:
    async def body(n: int) -> AsyncIterator[bytes]:
        for _ in range(n):
            yield b"y" * 100

    async with client(max_total=1000) as c:
        assert (await c.put(f"/{TOKEN}/a", content=b"x" * 600)).status_code == 201
        # Refused from Content-Length...
        assert (await c.put(f"/{TOKEN}/b", content=b"x" * 500)).status_code == 413
        # ... and while streaming a chunked body.
        r = await c.put(f"/{TOKEN}/c", content=body(5))
        assert r.status_code == 413
        assert "1000 B in all" in r.text
        # A multipart body far past the limit is refused before it is read.
        assert (await c.post(f"/{TOKEN}/", files={"f": ("d", b"x" * 70_000)})).status_code == 413
        # Failed uploads gave their reservation back: the rest still fits.
        assert (await c.put(f"/{TOKEN}/e", content=body(4))).status_code == 201
        assert (await c.put(f"/{TOKEN}/f", content=b"x")).status_code == 413
    assert listing(tmp_path) == ["a", "e"]


def test_quota_blocks_stay_within_the_request(tmp_path: Path) -> None:
    store = StateStore()
    quota = upload_module.Quota(store, "bytes", 100 * 1024 * 1024)
    quota.need(100)
    assert store.get_int("bytes") == upload_module.QUOTA_BLOCK
    quota.settle(100)
    assert store.get_int("bytes") == 100
    small = upload_module.Quota(store, "bytes", 100 * 1024 * 1024)
    small.ceiling = 5000
    small.need(10)
    assert store.get_int("bytes") == 5100
    small.settle(0)
    assert store.get_int("bytes") == 100


async def test_file_systems_without_hard_links(
    client: Callable[..., httpx.AsyncClient], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_link(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_link)
    async with client() as c:
        for data in (b"1", b"2"):
            assert (await c.put(f"/{TOKEN}/same.txt", content=data)).status_code == 201
    assert listing(tmp_path) == ["same (1).txt", "same.txt"]
    assert (tmp_path / "same (1).txt").read_bytes() == b"2"


async def test_disk_full_is_507_and_leaves_nothing(
    client: Callable[..., httpx.AsyncClient], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = 0

    def write(fd: int, data: Any) -> int:
        # Like a real disk filling up: a short write, then ENOSPC.
        nonlocal written
        room = min(len(data), 1000 - written)
        if room <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        written += room
        return os.write(fd, data[:room])

    monkeypatch.setattr(upload_module, "_write", write)
    async with client() as c:
        r = await c.put(f"/{TOKEN}/sub/full.bin", content=b"z" * 5000)
        assert r.status_code == 507
        assert r.text == "Not enough free space on the server's disk\n"
        written = 0
        r = await c.post(f"/{TOKEN}/", files={"f": ("full.bin", b"z" * 5000)})
        assert r.status_code == 507
    assert listing(tmp_path) == []


async def test_out_of_file_descriptors_is_503_not_a_conflict(
    client: Callable[..., httpx.AsyncClient], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = os.open

    def crowded_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        # The process has as many files open as it may: opening the folder fails.
        if path == "sub" and flags & os.O_DIRECTORY:
            raise OSError(errno.EMFILE, "Too many open files")
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", crowded_open)
    async with client() as c:
        r = await c.put(f"/{TOKEN}/sub/x.txt", content=b"x")
        assert (r.status_code, r.headers["retry-after"]) == (503, "5")
        assert r.text == "The server has too many files open; try again\n"
        r = await c.post(f"/{TOKEN}/", files={"f": ("sub/y.txt", b"y")})
        assert r.status_code == 503
    monkeypatch.setattr(os, "open", real_open)
    async with client() as c:
        assert (await c.put(f"/{TOKEN}/sub/x.txt", content=b"x")).status_code == 201


async def test_client_leaving_mid_upload_leaves_nothing(tmp_path: Path) -> None:
    app = site_app(tmp_path)
    status, _, _ = await call(
        app,
        "PUT",
        f"/{TOKEN}/new/folder/cut.bin",
        [chunk(b"a" * 1000), chunk(b"b" * 1000), {"type": "http.disconnect"}],
        [(b"content-length", b"10000")],
    )
    assert status == 400  # for the access log: nobody reads it
    assert listing(tmp_path) == []
    # A body that ends short of its Content-Length is a cut too.
    status, _, _ = await call(
        app,
        "PUT",
        f"/{TOKEN}/short.bin",
        [chunk(b"a" * 10, more=False)],
        [(b"content-length", b"99")],
    )
    assert listing(tmp_path) == []
    multipart = b"--BB\r\nContent-Disposition: form-data; name=f; filename=m.bin\r\n\r\n"
    multipart += b"m" * 500
    status, _, _ = await call(
        app,
        "POST",
        f"/{TOKEN}/",
        [chunk(multipart), {"type": "http.disconnect"}],
        [(b"content-type", b"multipart/form-data; boundary=BB")],
    )
    assert status == 400
    assert listing(tmp_path) == []


async def test_shutdown_removes_uploads_in_flight(tmp_path: Path) -> None:
    site = ReceiveSite(ReceiveOptions(root=tmp_path, token=TOKEN), SiteContext(quiet=True))
    upload = upload_module.Upload(
        str(tmp_path), upload_module.Limits(), upload_module.Quota(StateStore(), "k", None)
    )
    await upload.open(["sub", "x.bin"], "sub/x.bin")
    upload.write(b"data")
    site.in_flight.add(upload)
    assert len(listing(tmp_path)) == 2
    await site.shutdown()
    assert listing(tmp_path) == []


async def test_main_process_removes_parts_of_its_run_only(tmp_path: Path) -> None:
    (tmp_path / ".comptoir-upload-run1-aaaa.part").write_bytes(b"killed mid-upload")
    (tmp_path / ".comptoir-upload-run2-bbbb.part").write_bytes(b"another server's")
    (tmp_path / "kept.txt").write_text("x")
    [cleaner] = KINDS["receive"].services(ReceiveOptions(root=tmp_path, run_id="run1"), None)
    assert await cleaner.start() == []
    await cleaner.stop()
    assert listing(tmp_path) == [".comptoir-upload-run2-bbbb.part", "kept.txt"]
    assert upload_module.remove_parts(str(tmp_path / "gone"), "run1") == 0


# -- --count -------------------------------------------------------------------------------------


async def test_count_stops_the_server_after_the_nth_file(tmp_path: Path) -> None:
    stops: list[str] = []
    options = ReceiveOptions(root=tmp_path, token=TOKEN, count=3)
    config = make_config("receive", options)
    app = build_app(config, request_shutdown=lambda: stops.append("stop"))
    async with asgi_client(app) as c:
        assert (await c.put(f"/{TOKEN}/a", content=b"a")).status_code == 201
        assert stops == []
        # Three files would pass the count: refused whole, saying how many would fit.
        three = [("f", (name, name.encode())) for name in "bcd"]
        r = await c.post(f"/{TOKEN}/", files=three)
        assert r.status_code == 409
        assert (
            r.text
            == "This link accepts 2 more files; this upload has 3: send at most 2 at a time\n"
        )
        r = await c.post(f"/{TOKEN}/", files=three[:2])
        assert r.status_code == 201
        assert stops == ["stop"]
        assert (await c.put(f"/{TOKEN}/e", content=b"e")).status_code == 410
    assert listing(tmp_path) == ["a", "b", "c"]


async def test_count_with_one_file_left_says_so(tmp_path: Path) -> None:
    options = ReceiveOptions(root=tmp_path, token=TOKEN, count=2)
    app = build_app(make_config("receive", options), request_shutdown=lambda: None)
    async with asgi_client(app) as c:
        assert (await c.put(f"/{TOKEN}/a", content=b"a")).status_code == 201
        two = [("f", (name, name.encode())) for name in "bc"]
        r = await c.post(f"/{TOKEN}/", files=two, headers={"accept": "application/json"})
        assert r.status_code == 409, "one slot is left: not 'received all the files'"
        assert r.json()["error"] == (
            "This link accepts 1 more file; this upload has 2: send at most 1 at a time"
        )
        assert (await c.post(f"/{TOKEN}/", files=two[:1])).status_code == 201
        r = await c.post(f"/{TOKEN}/", files=two[1:])
        assert (r.status_code, r.text) == (410, "This link has received all the files it accepts\n")
    assert listing(tmp_path) == ["a", "b"]


# -- terminal ----------------------------------------------------------------------------------


async def test_a_line_per_received_file_unless_quiet(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    config = make_config("receive", ReceiveOptions(root=tmp_path, token=TOKEN), quiet=False)
    async with asgi_client(build_app(config)) as c:
        await c.put(f"/{TOKEN}/note%1B[31m.txt", content=b"x" * 2048)
    err = capfd.readouterr().err
    assert "received note_[31m.txt (2.0 KiB) from 127.0.0.1" in err
    async with asgi_client(site_app(tmp_path)) as c:
        await c.put(f"/{TOKEN}/quiet.txt", content=b"x")
    assert "quiet.txt" not in capfd.readouterr().err


# -- options -------------------------------------------------------------------------------------


def test_token_is_random_128_bits_and_survives_pickling(tmp_path: Path) -> None:
    a, b = ReceiveOptions(root=tmp_path), ReceiveOptions(root=tmp_path)
    assert a.token != b.token
    assert len(a.token) >= 22  # 16 random bytes, URL-safe base64
    # Workers get the options pickled: they must all answer the same URL.
    assert pickle.loads(pickle.dumps(a)).token == a.token
    assert KINDS["receive"].url_suffix(a) == f"/{a.token}/"
    assert ReceiveOptions(token="mine").token == "mine"


def _problems(options: ReceiveOptions) -> list[str]:
    return [str(p) for p in validate(options, ServerOptions())]


def test_validate(tmp_path: Path) -> None:
    assert _problems(ReceiveOptions(root=tmp_path)) == []
    assert _problems(ReceiveOptions(root=tmp_path / "nope")) == [
        f"folder not found: {tmp_path / 'nope'}"
    ]
    (tmp_path / "f").write_text("x")
    assert _problems(ReceiveOptions(root=tmp_path / "f")) == [f"not a folder: {tmp_path / 'f'}"]
    assert _problems(ReceiveOptions(root=tmp_path, token="a/b")) == [
        "token: use only letters, digits, - and _"
    ]
    # A token chosen by hand is still the only key: too short to guess, refused.
    assert _problems(ReceiveOptions(root=tmp_path, token="short-token")) == [
        "token: use at least 16 characters"
    ]
    assert _problems(ReceiveOptions(root=tmp_path, token="a-long-enough_token")) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_validate_read_only_folder(tmp_path: Path) -> None:
    tmp_path.chmod(0o500)
    try:
        assert validate(ReceiveOptions(root=tmp_path)) == [f"folder not writable: {tmp_path}"]
    finally:
        tmp_path.chmod(0o700)


def test_options_from_sites_toml(tmp_path: Path) -> None:
    options = options_from_mapping(
        ReceiveOptions,
        {"root": str(tmp_path), "max-size": "10M", "max_total": 1024, "count": 2, "token": "abc"},
        "sites.toml",
    )
    assert options == ReceiveOptions(
        root=tmp_path, max_size=10 * 1024**2, max_total=1024, count=2, token="abc"
    )


async def test_mounted_under_a_prefix(tmp_path: Path) -> None:
    from comptoir.config import Config, ServerOptions

    site = SiteConfig("receive", ReceiveOptions(root=tmp_path, token=TOKEN), path="/in")
    app = build_app(Config(server=ServerOptions(quiet=True), sites=(site,)))
    async with asgi_client(app) as c:
        page = await c.get(f"/in/{TOKEN}/")
        assert f'data-upload-url="/in/{TOKEN}/"' in page.text
        assert "/in/.comptoir/receive.js" in page.text
        assert (await c.get("/in/.comptoir/receive.js")).status_code == 200
        assert (await c.put(f"/in/{TOKEN}/x.txt", content=b"x")).status_code == 201
        r = await c.get(f"/in/{TOKEN}")
        assert r.headers["location"] == f"/in/{TOKEN}/"
    assert listing(tmp_path) == ["x.txt"]


def test_store_keys_are_json(tmp_path: Path) -> None:
    # The session's list lives in the shared store as JSON values, one key per file.
    store = StateStore()
    site = ReceiveSite(ReceiveOptions(root=tmp_path, token=TOKEN), SiteContext(store=store))
    store.set(site.key + "file:000000000001", json.dumps({"name": "a", "size": 1}).encode())
    assert site.received() == [{"name": "a", "size": 1}]


async def test_absurd_content_length_is_413_not_500(tmp_path: Path) -> None:
    app = site_app(tmp_path, max_size=10)
    status, _, read = await call(
        app,
        "PUT",
        f"/{TOKEN}/big.bin",
        [chunk(b"x", more=False)],
        [(b"content-length", b"9" * 5000)],
    )
    assert status == 413
    assert read == 0
    assert listing(tmp_path) == []


async def test_many_files_of_one_name_get_numbered_then_random_names(
    client: Callable[..., httpx.AsyncClient], tmp_path: Path
) -> None:
    from comptoir.sites.receive.upload import MAX_NUMBERED

    count = MAX_NUMBERED + 30
    files = [("file", ("a.txt", str(i).encode())) for i in range(count)]
    async with client() as c:
        r = await c.post(f"/{TOKEN}/", files=files, headers={"Accept": "application/json"})
        assert r.status_code == 201, r.text
        names = [f["name"] for f in r.json()["files"]]
    assert names[:3] == ["a.txt", "a (1).txt", "a (2).txt"]
    assert names[MAX_NUMBERED - 1] == f"a ({MAX_NUMBERED - 1}).txt"
    # Past the numbered names, a random suffix: no file tries thousands of taken names.
    assert all(re.fullmatch(r"a \([0-9a-f]{6}\)\.txt", n) for n in names[MAX_NUMBERED:])
    assert len(set(names)) == count
    for i, name in enumerate(names):
        assert (tmp_path / name).read_bytes() == str(i).encode()


async def test_a_request_of_many_files_holds_one_descriptor_per_folder(
    client: Callable[..., httpx.AsyncClient], tmp_path: Path
) -> None:
    import resource

    files = [("file", (f"f{i}.txt", b"x")) for i in range(400)]
    files += [("file", (f"sub/g{i}.txt", b"y")) for i in range(100)]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    open_now = len(os.listdir("/proc/self/fd"))
    async with client() as c:
        # Room for the test's own descriptors, far fewer than one per file.
        resource.setrlimit(resource.RLIMIT_NOFILE, (open_now + 100, hard))
        try:
            r = await c.post(f"/{TOKEN}/", files=files, headers={"Accept": "application/json"})
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert r.status_code == 201, r.text
    assert len(r.json()["files"]) == 500
    assert len(list((tmp_path / "sub").iterdir())) == 100


# -- what the terminal is told: the reason it stops, a summary ---------------------------------


def _talking_site(root: Path, **options: Any) -> tuple[ReceiveSite, list[str]]:
    """A receive site that prints on the terminal (not --quiet), and its stop requests."""
    stops: list[str] = []
    context = SiteContext(
        request_shutdown=lambda: stops.append("stop"), quiet=False, store=StateStore()
    )
    return ReceiveSite(ReceiveOptions(root=root, token=TOKEN, **options), context), stops


async def test_count_says_why_the_server_stops(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    site, stops = _talking_site(tmp_path, count=2)
    async with asgi_client(site) as c:
        await c.put(f"/{TOKEN}/a", content=b"a")
        assert "stopping" not in capfd.readouterr().err
        await c.put(f"/{TOKEN}/b", content=b"b")
    assert stops == ["stop"]
    assert capfd.readouterr().err.endswith("receive: stopping: received 2 files (--count 2)\n")


async def test_stopping_prints_what_was_received(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # Ctrl-C (or --count) ends the workers' lifespan: each says what it received, as share does.
    site, _ = _talking_site(tmp_path)
    async with asgi_client(site) as c:
        await c.put(f"/{TOKEN}/a", content=b"a" * 2048)
        await c.post(f"/{TOKEN}/", files=[("f", ("b", b"b" * 1024)), ("f", ("c", b"c"))])
    capfd.readouterr()
    await site.shutdown()
    assert capfd.readouterr().err == "receive: 3 files received, 3.0 KiB in all\n"


async def test_stopping_with_nothing_received_says_so(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    site, _ = _talking_site(tmp_path)
    await site.shutdown()
    assert capfd.readouterr().err == "receive: 0 files received, 0 B in all\n"


async def test_a_quiet_site_stops_without_a_word(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    stops: list[str] = []
    options = ReceiveOptions(root=tmp_path, token=TOKEN, count=1)
    app = build_app(make_config("receive", options), request_shutdown=lambda: stops.append("x"))
    async with asgi_client(app) as c:
        await c.put(f"/{TOKEN}/a", content=b"a")
    assert stops == ["x"]
    assert capfd.readouterr().err == ""


def test_the_banner_says_where_files_are_saved(tmp_path: Path) -> None:
    options = ReceiveOptions(root=tmp_path / "in" / "..", token=TOKEN)
    assert KINDS["receive"].banner(options) == [f"saves into {tmp_path.resolve()}"]
