"""`comptoir share` as people use it: a real process, real sockets, curl, wget, unzip."""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import socket
import subprocess
import tarfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from comptoir.http.disposition import ascii_fallback
from comptoir.http.paths import quote_name
from tests.conftest import LiveServer, comptoir_cmd, need_tool, read_urls, stop_server

MiB = 1024 * 1024


@contextlib.contextmanager
def share_server(*args: str, quiet: bool = True, port: int = 0) -> Iterator[LiveServer]:
    """Run `comptoir share ARGS` on 127.0.0.1; yield once it serves.

    Unlike tests.conftest.live_server, readiness is polled on a path outside the share: a GET
    of the share's URL would be a download, and count as one.
    """
    cmd = comptoir_cmd("share", *args, "--host", "127.0.0.1", "--port", str(port))
    if quiet:
        cmd.append("--quiet")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        if quiet:
            urls = read_urls(proc, 1, 20)
        else:
            urls = [f"http://127.0.0.1:{port}/{_arg(args, '--token')}/"]
        root = "{0.scheme}://{0.netloc}/".format(urlsplit(urls[0]))
        deadline = time.monotonic() + 15
        while True:
            try:
                httpx.get(root, timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.05)
        yield LiveServer(proc, urls)
    finally:
        stop_server(proc)


def _arg(args: tuple[str, ...], flag: str) -> str:
    return args[args.index(flag) + 1]


def free_port() -> int:
    """A port free right now on 127.0.0.1 (for runs whose URL is not printed on stdout)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def curl(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run curl quietly; the completed process (check its returncode yourself)."""
    exe = need_tool("curl")
    return subprocess.run(
        [exe, "-sS", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def curl_bytes(*args: str) -> bytes:
    """The body curl writes to stdout, as bytes; fails on a curl error."""
    return subprocess.run(
        [need_tool("curl"), "-sS", *args], capture_output=True, timeout=60, check=True
    ).stdout


def random_file(path: Path, size: int) -> bytes:
    """Write `size` random bytes to `path`; return them."""
    data = os.urandom(size)
    path.write_bytes(data)
    return data


def cut_get(url: str, keep: int) -> None:
    """GET `url` on a raw socket with a small receive buffer, read `keep` bytes, hang up."""
    parts = urlsplit(url)
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        s.connect((parts.hostname, parts.port))
        s.sendall(f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode())
        got = 0
        while got < keep:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += len(chunk)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")


HOSTILE = [
    'say "hi".txt',
    "back\\slash.txt",
    "100% sure.txt",
    "#;x.txt",
    "😀 été.txt",
    "日本語.pdf",
    "a%20b.txt",
]


def test_curl_and_wget_save_the_right_names(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    names = [*HOSTILE, "new\nline.txt"]
    for name in names:
        (src / name).write_text(f"content of {name}")
    wget = need_tool("wget")
    with share_server(*(str(src / n) for n in names)) as srv:
        for name in names:
            url = srv.url + "f/" + quote_name(name)
            by_curl = tmp_path / ("curl-" + str(names.index(name)))
            by_curl.mkdir()
            assert curl("-OJ", url, cwd=by_curl).returncode == 0
            # curl -J (7.88) reads only `filename=`: it gets the ASCII fallback, safe as a name.
            [saved] = os.listdir(by_curl)
            assert saved == ascii_fallback(name)
            assert saved == {
                'say "hi".txt': "say _hi_.txt",
                "back\\slash.txt": "back_slash.txt",
                "😀 été.txt": "_ ete.txt",
                "日本語.pdf": "download.pdf",
                "a%20b.txt": "a_20b.txt",
                "new\nline.txt": "new_line.txt",
            }.get(name, name)
            assert (by_curl / saved).read_text() == f"content of {name}"
            by_wget = tmp_path / ("wget-" + str(names.index(name)))
            by_wget.mkdir()
            subprocess.run(
                [wget, "-q", "--content-disposition", url], cwd=by_wget, check=True, timeout=30
            )
            [saved] = os.listdir(by_wget)
            # wget reads `filename*`: the exact name (it escapes control characters itself)...
            expected = {"new\nline.txt": "new%0Aline.txt", "a%20b.txt": "a b.txt"}.get(name, name)
            # ...except that wget 1.21 percent-decodes the decoded name once more (its bug: `%`
            # has no other spelling than %25 in filename*).
            assert saved == expected
            assert (by_wget / saved).read_text() == f"content of {name}"


def test_curl_OJ_and_wget_on_the_share_url(tmp_path: Path) -> None:
    data = random_file(tmp_path / "report 2024.pdf", 300_000)
    out = tmp_path / "out"
    out.mkdir()
    with share_server(str(tmp_path / "report 2024.pdf")) as srv:
        assert curl("-OJ", srv.url, cwd=out).returncode == 0
        assert (out / "report 2024.pdf").read_bytes() == data
        subprocess.run(
            [need_tool("wget"), "-q", "--content-disposition", "-P", str(out / "w"), srv.url],
            check=True,
            timeout=30,
        )
        assert (out / "w" / "report 2024.pdf").read_bytes() == data
        head = curl_bytes("-r", "0-99", srv.url)
        rest = curl_bytes("-r", "100-", srv.url)
        middle = curl_bytes("-r", "1000-1999", srv.url)
        assert head + rest == data and middle == data[1000:2000]


def test_resume_a_cut_download_with_curl_once(tmp_path: Path) -> None:
    data = random_file(tmp_path / "big.bin", 20 * MiB)
    target = tmp_path / "got.bin"
    with share_server(str(tmp_path / "big.bin"), "--once") as srv:
        # A client hanging up early, then curl cut by its own timeout: neither completes.
        cut_get(srv.url, 256 * 1024)
        # The server gives the first client's slot back once it has seen it leave: until then,
        # the link answers 410 (which counts for nothing), so try again a moment later.
        deadline = time.monotonic() + 10
        while True:
            cut = curl("--limit-rate", "2M", "-m", "1", "-o", str(target), srv.url)
            if cut.returncode != 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert cut.returncode == 28  # timed out: cut
        assert 0 < target.stat().st_size < len(data)
        # The cuts gave the slot back: the resume is the one complete download.
        assert curl("-C", "-", "-o", str(target), srv.url).returncode == 0
        assert target.read_bytes() == data
        # ...after which the server stops by itself, with success.
        assert srv.proc.wait(15) == 0


def test_a_reader_that_stalls_loses_the_once_slot_and_its_connection(tmp_path: Path) -> None:
    # The reproduction: a client that asked and then read nothing held --once's slot,
    # and everyone else got 410 "already downloaded" though nothing had been downloaded.
    data = random_file(tmp_path / "big.bin", 64 * MiB)
    with share_server(str(tmp_path / "big.bin"), "--once", "--stall-timeout", "1s") as srv:
        parts = urlsplit(srv.url)
        with socket.socket() as stalled:
            stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
            stalled.connect((parts.hostname, parts.port))
            stalled.sendall(f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode())
            assert stalled.recv(4096).startswith(b"HTTP/1.1 200")
            # Reading nothing more: the buffers fill, the server's sends wait.
            time.sleep(0.5)
            assert httpx.get(srv.url, timeout=5).status_code == 410  # held while it may resume
            time.sleep(2.5)
            # Cut after a second without progress: the slot is back, and a real download of the
            # whole file is the one that counts.
            assert curl_bytes(srv.url) == data
            # The stalled client's connection was closed: what was buffered, then the end.
            stalled.settimeout(10)
            received = 0
            while chunk := stalled.recv(1 << 20):
                received += len(chunk)
            assert received < len(data)
        assert srv.proc.wait(15) == 0


OUTSIDE = [
    "f/photos/../secret.txt",
    "f/photos/%2e%2e/secret.txt",
    "f/photos/..%2fsecret.txt",
    "f/photos/%2e%2e%2f%2e%2e%2fetc/passwd",
    "f/photos/escape",
    "f/photos/.git/config",
    "f/secret.txt",
    "f/../secret.txt",
    "../secret.txt",
    "f/photos/sub/../../secret.txt",
]


def test_folder_as_zip_checked_by_unzip(tmp_path: Path) -> None:
    unzip = need_tool("unzip")
    (tmp_path / "secret.txt").write_text("not shared")
    d = tmp_path / "photos"
    (d / "sub").mkdir(parents=True)
    (d / "a.txt").write_text("a")
    (d / "sub" / "日本 😀.txt").write_text("unicode")
    (d / ".git").mkdir()
    (d / ".git" / "config").write_text("dotfile")
    (d / "escape").symlink_to(tmp_path / "secret.txt")
    big = random_file(d / "big.bin", 3 * MiB)
    out = tmp_path / "out"
    out.mkdir()
    with share_server(str(d)) as srv:
        assert curl("-OJ", srv.url, cwd=out).returncode == 0
        zpath = out / "photos.zip"
        assert subprocess.run([unzip, "-t", str(zpath)], capture_output=True).returncode == 0
        with zipfile.ZipFile(zpath) as zf:
            assert zf.namelist() == [
                "photos/",
                "photos/a.txt",
                "photos/big.bin",
                "photos/sub/",
                "photos/sub/日本 😀.txt",
            ]
            assert zf.read("photos/big.bin") == big
        # A folder inside, alone: its URL gives curl and wget its archive.
        assert curl("-OJ", srv.url + "f/photos/sub/", cwd=out).returncode == 0
        with zipfile.ZipFile(out / "sub.zip") as zf:
            assert zf.namelist() == ["sub/", "sub/日本 😀.txt"]
            assert zf.read("sub/日本 😀.txt") == b"unicode"
        subprocess.run(
            [need_tool("wget"), "-q", "--content-disposition", "-P", str(out / "w"), srv.url],
            check=True,
            timeout=30,
        )
        assert (out / "w" / "photos.zip").read_bytes() == zpath.read_bytes()
        # A resume in the middle of the zip gets exactly the rest of it.
        whole = zpath.read_bytes()
        part = out / "part.zip"
        part.write_bytes(whole[: 2 * MiB])
        assert curl("-C", "-", "-o", str(part), srv.url + "archive.zip").returncode == 0
        assert part.read_bytes() == whole
        # Nothing next to or above the shared folder, however the path is spelled.
        for path in OUTSIDE:
            r = curl("--path-as-is", "-o", "-", "-w", "\n%{http_code}", srv.url + path)
            body, _, code = r.stdout.rpartition("\n")
            assert code in ("400", "404"), (path, code)
            assert "not shared" not in body and "dotfile" not in body


def test_tar_gz_over_curl(tmp_path: Path) -> None:
    fmt = "tar.gz"
    d = tmp_path / "docs"
    d.mkdir()
    (d / "é.txt").write_text("accent")
    (tmp_path / "note.md").write_text("# note")
    out = tmp_path / "out"
    out.mkdir()
    with share_server(str(d), str(tmp_path / "note.md"), "--archive", fmt) as srv:
        assert curl("-OJ", srv.url, cwd=out).returncode == 0
        with tarfile.open(out / f"share.{fmt}") as tf:
            assert tf.getnames() == ["docs", "docs/é.txt", "note.md"]
            f = tf.extractfile("docs/é.txt")
            assert f is not None and f.read() == b"accent"


def test_five_racing_for_the_last_slot_with_two_workers(tmp_path: Path) -> None:
    random_file(tmp_path / "big.bin", 8 * MiB)
    with share_server(str(tmp_path / "big.bin"), "--count", "1", "--workers", "2") as srv:

        def fetch(_: int) -> str:
            # Slowed down, so that all five are asked while the winner's is in flight (once it
            # completes, the server exits and a late request would find no one listening).
            args = ("--limit-rate", "4M", "-o", os.devnull, "-w", "%{http_code}", srv.url)
            return curl(*args).stdout

        with concurrent.futures.ThreadPoolExecutor(5) as pool:
            codes = sorted(pool.map(fetch, range(5)))
        assert codes == ["200", "410", "410", "410", "410"]
        assert srv.proc.wait(15) == 0


def test_expiry_stops_the_server(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a")
    with share_server(str(tmp_path / "a.txt"), "--expire", "2s") as srv:
        started = time.monotonic()
        assert httpx.get(srv.url).status_code == 200
        assert httpx.get(srv.url).status_code == 200  # no --count: any number of downloads
        assert srv.proc.wait(15) == 0
        assert time.monotonic() - started >= 1.0


def test_terminal_lines_and_summary(tmp_path: Path) -> None:
    data = random_file(tmp_path / "data.bin", 2 * MiB)
    port = free_port()
    token = "a-token-for-this-test"
    args = (str(tmp_path / "data.bin"), "--once", "--token", token)
    with share_server(*args, quiet=False, port=port) as srv:
        assert httpx.get(srv.url).content == data
        assert srv.proc.wait(15) == 0
        assert srv.proc.stderr is not None
        err = srv.proc.stderr.read().decode()
    assert f"http://127.0.0.1:{port}/{token}/" in err  # the banner shows the full share URL
    assert "→ 127.0.0.1  data.bin (2.0 MiB)" in err
    assert "✓ 127.0.0.1  data.bin  downloaded 2.0 MiB" in err
    assert "share: 1 download complete, 2.0 MiB sent" in err
    # A server that ends by itself says why.
    assert "share: stopping: every download allowed is done (--once)\n" in err
    assert "Traceback" not in err


def test_missing_path_is_one_line_exit_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        comptoir_cmd("share", str(tmp_path / "nope"), "--port", "0"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"comptoir: error: not found: {tmp_path / 'nope'}"


def test_browser_landing_page_downloads_and_qr(tmp_path: Path) -> None:
    chromium = need_tool("/usr/bin/chromium")
    from playwright.sync_api import expect, sync_playwright

    name = 'rapport "été" 😀.txt'
    (tmp_path / name).write_text("exact\n")
    d = tmp_path / "photos"
    (d / "sub").mkdir(parents=True)
    (d / "a.txt").write_text("a\n")
    (d / "sub" / "b.txt").write_text("b\n")
    with share_server(str(tmp_path / name), str(d)) as srv, sync_playwright() as p:
        # share.test reaches the server as a network name would (the page keeps it in its QR).
        args = ["--no-sandbox", "--disable-gpu", "--host-resolver-rules=MAP share.test 127.0.0.1"]
        browser = p.chromium.launch(executable_path=chromium, args=args)
        try:
            page = browser.new_page(accept_downloads=True)
            errors: list[str] = []

            def on_console(m: Any) -> None:
                # The browser's own /favicon.ico is outside the share: its 404 is expected.
                if m.type == "error" and not m.location.get("url", "").endswith("/favicon.ico"):
                    errors.append(f"{m.text} {m.location}")

            page.on("console", on_console)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(srv.url)
            expect(page.locator("h1")).to_have_text("Shared with you")
            # Opened on this computer, with a server listening on 127.0.0.1 only: no address a
            # phone could open, so a line instead of the QR code.
            expect(page.locator(".no-qr")).to_contain_text("No QR code")
            expect(page.locator("#share-url")).to_have_text(srv.url)
            named = srv.url.replace("127.0.0.1", "share.test")
            page.goto(named)
            expect(page.locator(".qr svg")).to_be_visible()
            expect(page.locator("#share-url")).to_have_text(named)
            page.goto(srv.url)
            # A file's button saves it under its exact name (browsers read filename*).
            row = page.locator("tr", has_text="rapport")
            with page.expect_download() as info:
                row.locator("a.button").click()
            download = info.value
            # (Chromium itself turns `"` into `_`; accents and emoji show filename* was read.)
            assert download.suggested_filename == name.replace('"', "_")
            assert Path(download.path()).read_text() == "exact\n"
            # "Download all": the archive of everything.
            with page.expect_download() as info:
                page.locator("a.button", has_text="Download all").click()
            assert info.value.suggested_filename == "share.zip"
            with zipfile.ZipFile(info.value.path()) as zf:
                # In the order given on the command line, names exact.
                assert zf.namelist() == [
                    name,
                    "photos/",
                    "photos/a.txt",
                    "photos/sub/",
                    "photos/sub/b.txt",
                ]
            # A folder opens as a listing; from there, that folder alone, or one file.
            page.locator("tr", has_text="photos").locator("a", has_text="Open").click()
            page.wait_for_url(srv.url + "f/photos/")
            page.locator("a", has_text="sub/").click()
            page.wait_for_url(srv.url + "f/photos/sub/")
            with page.expect_download() as info:
                page.locator("a.button", has_text="Download this folder").click()
            assert info.value.suggested_filename == "sub.zip"
            with zipfile.ZipFile(info.value.path()) as zf:
                assert zf.namelist() == ["sub/", "sub/b.txt"]
            with page.expect_download() as info:
                page.locator("tr", has_text="b.txt").locator("a.button").click()
            assert Path(info.value.path()).read_text() == "b\n"
            assert errors == []
        finally:
            browser.close()
