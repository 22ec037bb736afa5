"""`comptoir receive` as people use it: real process, real sockets, curl and a browser."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import comptoir_cmd, live_server, stop_server, wait_until_serving

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def need(tool: str) -> str:
    """The path of a client program; skip without it (fail in CI, which installs them)."""
    path = shutil.which(tool) or (tool if os.path.isabs(tool) and os.path.exists(tool) else None)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{tool} is required in CI")
        pytest.skip(f"{tool} not installed")
    return path


def curl(*args: str, cwd: Path | None = None) -> str:
    """Run curl (quiet, errors shown); its stdout."""
    proc = subprocess.run(
        [need("curl"), "-sS", *args], capture_output=True, text=True, timeout=30, cwd=cwd
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def files_under(root: Path) -> list[str]:
    """Every path under root, relative, sorted, hidden ones included."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def wait_for_listing(root: Path, expected: list[str], timeout: float = 5) -> list[str]:
    """Poll until root holds exactly `expected` (cleanup happens as the server notices)."""
    deadline = time.monotonic() + timeout
    while True:
        found = files_under(root)
        if found == expected or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_curl_put_and_form(tmp_path: Path) -> None:
    need("curl")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    src = tmp_path / "src"
    src.mkdir()
    (src / "my photo.jpg").write_bytes(b"jpeg" * 1000)
    (src / "été 日本.txt").write_text("unicode\n")
    (src / "a.txt").write_text("a\n")
    (src / "b.txt").write_text("b\n")
    with live_server("receive", str(inbox)) as srv:
        url = srv.url
        assert urlsplit(url).path.count("/") == 2  # /<token>/
        assert curl("-T", "my photo.jpg", url, cwd=src) == "saved: my photo.jpg (4000 bytes)\n"
        assert curl("-T", "my photo.jpg", url, cwd=src) == "saved: my photo (1).jpg (4000 bytes)\n"
        assert curl("-T", "été 日本.txt", url, cwd=src) == "saved: été 日本.txt (8 bytes)\n"
        answer = curl("-F", "file=@a.txt", "-F", "file=@b.txt", url, cwd=src)
        assert answer == "saved: a.txt (2 bytes)\nsaved: b.txt (2 bytes)\n"
        hostile = curl(
            "-H",
            "Accept: application/json",
            "-F",
            "f=@a.txt;filename=../../etc/passwd",
            "-F",
            "f=@a.txt;filename=CON.txt",
            "-F",
            "f=@a.txt;filename=.bashrc",
            url,
            cwd=src,
        )
        names = [(f["sent_as"], f["name"]) for f in json.loads(hostile)["files"]]
        assert names == [
            ("../../etc/passwd", "etc/passwd"),
            ("CON.txt", "_CON.txt"),
            (".bashrc", "bashrc"),
        ]
        listed = httpx.get(url, headers={"Accept": "application/json"}).json()["files"]
        assert [f["name"] for f in listed] == [
            "my photo.jpg",
            "my photo (1).jpg",
            "été 日本.txt",
            "a.txt",
            "b.txt",
            "etc/passwd",
            "_CON.txt",
            "bashrc",
        ]
        wrong = httpx.put(url.rsplit("/", 2)[0] + "/not-the-token/x.txt", content=b"x")
        assert wrong.status_code == 404
    assert files_under(inbox) == [
        "_CON.txt",
        "a.txt",
        "b.txt",
        "bashrc",
        "etc",
        "etc/passwd",
        "my photo (1).jpg",
        "my photo.jpg",
        "été 日本.txt",
    ]
    assert not (tmp_path / "etc").exists()


def test_curl_form_names_with_quotes_and_newlines(tmp_path: Path) -> None:
    # curl -F (7.81+), like browsers, sends `"` as %22: the name is the one the file had.
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    src = tmp_path / "src"
    src.mkdir()
    (src / 'say "hi".txt').write_text("hi\n")
    with live_server("receive", str(inbox)) as srv:
        answer = curl("-H", "Accept: application/json", "-F", 'f=@say "hi".txt', srv.url, cwd=src)
    [saved] = json.loads(answer)["files"]
    assert (saved["sent_as"], saved["name"]) == ('say "hi".txt', "say _hi_.txt")
    assert files_under(inbox) == ["say _hi_.txt"]


def test_a_short_token_is_one_line_exit_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        comptoir_cmd("receive", str(tmp_path), "--token", "short", "--port", "0"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "comptoir: error: token: use at least 16 characters"
    assert proc.stdout == ""


def test_cut_uploads_leave_nothing(tmp_path: Path) -> None:
    with live_server("receive", str(tmp_path)) as srv:
        u = urlsplit(srv.url)
        assert u.hostname is not None and u.port is not None
        head = (
            f"PUT {u.path}cut.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Length: {10 * 1024 * 1024}\r\n\r\n"
        ).encode()
        with socket.create_connection((u.hostname, u.port)) as s:
            s.sendall(head)
            s.sendall(b"x" * (1024 * 1024))
            # The upload is really under way before the client leaves.
            deadline = time.monotonic() + 5
            while not any(n.endswith(".part") for n in os.listdir(tmp_path)):
                assert time.monotonic() < deadline, "no .part file appeared"
                time.sleep(0.02)
        assert wait_for_listing(tmp_path, []) == []
        part = b"--BB\r\nContent-Disposition: form-data; name=f; filename=m.bin\r\n\r\n"
        head = (
            f"POST {u.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: multipart/form-data; boundary=BB\r\n"
            f"Content-Length: {10 * 1024 * 1024}\r\n\r\n"
        ).encode()
        with socket.create_connection((u.hostname, u.port)) as s:
            s.sendall(head + part + b"y" * (1024 * 1024))
            time.sleep(0.2)
        assert wait_for_listing(tmp_path, []) == []
        # The server is fine afterwards.
        assert httpx.put(srv.url + "after.txt", content=b"ok").status_code == 201
    assert files_under(tmp_path) == ["after.txt"]


def test_stopping_mid_upload_leaves_nothing(tmp_path: Path) -> None:
    # The worker is killed once --grace is over; the main process removes what it left.
    with live_server("receive", str(tmp_path), "--grace", "0.5") as srv:
        u = urlsplit(srv.url)
        assert u.hostname is not None and u.port is not None
        head = f"PUT {u.path}slow.bin HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 999999\r\n\r\n"
        with socket.create_connection((u.hostname, u.port)) as s:
            s.sendall(head.encode() + b"x" * 1000)
            deadline = time.monotonic() + 5
            while not any(n.endswith(".part") for n in os.listdir(tmp_path)):
                assert time.monotonic() < deadline, "no .part file appeared"
                time.sleep(0.02)
            assert srv.stop() == 0
    assert files_under(tmp_path) == []


def test_limits(tmp_path: Path) -> None:
    need("curl")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 * 1024 * 1024))
    with live_server("receive", str(inbox), "--max-size", "1M") as srv:
        # Refused from Content-Length, before the body is read.
        out = curl("-w", "%{http_code}", "-T", str(big), srv.url)
        assert out.endswith("413")
        assert "limit is 1.0 MiB per file" in out
        # Chunked (no Content-Length): refused while streaming, the partial file deleted.
        proc = subprocess.run(
            [need("curl"), "-sS", "-w", "%{http_code}", "-T", "-", srv.url + "chunked.bin"],
            input=big.read_bytes(),
            capture_output=True,
            timeout=30,
        )
        assert proc.stdout.endswith(b"413"), proc
        out = curl("-w", "%{http_code}", "-F", f"f=@{big}", srv.url)
        assert out.endswith("413")
        assert wait_for_listing(inbox, []) == []
        small = tmp_path / "small.bin"
        small.write_bytes(b"s" * 1024 * 1024)
        assert curl("-T", str(small), srv.url) == "saved: small.bin (1048576 bytes)\n"
    assert files_under(inbox) == ["small.bin"]


def test_paths_making_thousands_of_folders_are_refused(tmp_path: Path) -> None:
    # As reported (issue 10, item 3): a small chunked multipart body of 1,000 files, each 32
    # levels deep, made 32,000 folders that --max-total did not count.
    names = ["/".join([f"t{i}", *(f"d{j}" for j in range(31)), "f"]) for i in range(1000)]
    body = b"".join(
        f"--BB\r\nContent-Disposition: form-data; name=f; filename={n}\r\n\r\nx\r\n".encode()
        for n in names
    )
    body += b"--BB--\r\n"

    def chunked() -> Iterator[bytes]:
        for start in range(0, len(body), 16 * 1024):
            yield body[start : start + 16 * 1024]

    with live_server("receive", str(tmp_path)) as srv:
        headers = {"Content-Type": "multipart/form-data; boundary=BB"}
        r = httpx.post(srv.url, content=chunked(), headers=headers, timeout=30)
        assert (r.status_code, r.text) == (
            413,
            "Too many new folders in one request (at most 1000)\n",
        )
        assert wait_for_listing(tmp_path, []) == []
    with live_server("receive", str(tmp_path), "--max-total", "10K") as srv:
        # Each new folder counts 4 KiB against --max-total: two fit in 10 KiB, not three.
        assert httpx.put(srv.url + "a/b/c/x.txt", content=b"x").status_code == 413
        assert httpx.put(srv.url + "a/b/x.txt", content=b"x").status_code == 201
    assert files_under(tmp_path) == ["a", "a/b", "a/b/x.txt"]


def test_count_2_exits_by_itself(tmp_path: Path) -> None:
    with live_server("receive", str(tmp_path), "--count", "2") as srv:
        assert httpx.put(srv.url + "one.txt", content=b"1").status_code == 201
        assert srv.proc.poll() is None
        r = httpx.post(srv.url, files={"f": ("two.txt", b"2")})
        assert r.status_code == 201
        assert r.text == "saved: two.txt (1 bytes)\n"
        assert srv.proc.wait(20) == 0
    assert files_under(tmp_path) == ["one.txt", "two.txt"]


def test_concurrent_uploads_of_one_name_get_distinct_names(tmp_path: Path) -> None:
    payloads = [bytes([65 + i]) * (200_000 + i) for i in range(8)]
    with live_server("receive", str(tmp_path), "--workers", "2") as srv:

        def put(data: bytes) -> str:
            r = httpx.put(
                srv.url + "same.txt", content=data, headers={"Accept": "application/json"}
            )
            assert r.status_code == 201
            return str(r.json()["files"][0]["name"])

        with ThreadPoolExecutor(8) as pool:
            names = list(pool.map(put, payloads))
        assert len(set(names)) == 8
        listed = httpx.get(srv.url, headers={"Accept": "application/json"}).json()["files"]
        # The session's list is shared by both workers.
        assert sorted(f["name"] for f in listed) == sorted(names)
    assert set(names) == {"same.txt"} | {f"same ({n}).txt" for n in range(1, 8)}
    assert sorted((tmp_path / n).read_bytes() for n in names) == sorted(payloads)


def test_browser_upload(tmp_path: Path) -> None:
    need(CHROMIUM)
    from playwright.sync_api import expect, sync_playwright

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    src = tmp_path / "src"
    (src / "album" / "sub").mkdir(parents=True)
    (src / "one.txt").write_text("one\n")
    (src / "two words.txt").write_text("two\n")
    (src / "album" / "a.txt").write_text("a\n")
    (src / "album" / "sub" / "b.txt").write_text("b\n")
    (src / "slow.bin").write_bytes(os.urandom(8 * 1024 * 1024))
    (src / "dragged" / "inner").mkdir(parents=True)
    (src / "dragged" / "top.txt").write_text("top\n")
    (src / "dragged" / "inner" / "c.txt").write_text("c\n")
    with live_server("receive", str(inbox)) as srv, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))

            # The page must work under the CSP that is coming: no inline script or style.
            def with_csp(route):  # type: ignore[no-untyped-def]
                response = route.fetch()
                headers = {**response.headers, "content-security-policy": "default-src 'self'"}
                route.fulfill(response=response, headers=headers)

            page.route(srv.url, with_csp)
            page.goto(srv.url)
            received = page.locator("#received")
            page.set_input_files("#files", [str(src / "one.txt"), str(src / "two words.txt")])
            expect(received).to_contain_text("one.txt")
            expect(received).to_contain_text("two words.txt")
            expect(page.locator("#queue .saved")).to_have_count(2)
            page.set_input_files("#folder", str(src / "album"))
            expect(received).to_contain_text("album/sub/b.txt")
            expect(received).to_contain_text("album/a.txt")
            # A drop of plain files (a synthetic DataTransfer holds no directory entries).
            page.evaluate(
                """() => {
                    const dt = new DataTransfer();
                    dt.items.add(new File(["dropped\\n"], "dropped.txt"));
                    document.dispatchEvent(new DragEvent("drop", {dataTransfer: dt}));
                }"""
            )
            expect(received).to_contain_text("dropped.txt")
            # A real drop, as from a file manager: a folder (structure kept) and a file.
            cdp_drop = page.context.new_cdp_session(page)
            data = {
                "items": [],
                "files": [str(src / "dragged"), str(src / "two words.txt")],
                "dragOperationsMask": 1,
            }
            for kind in ("dragEnter", "dragOver", "drop"):
                cdp_drop.send(
                    "Input.dispatchDragEvent", {"type": kind, "x": 50, "y": 50, "data": data}
                )
            expect(received).to_contain_text("dragged/inner/c.txt")
            expect(received).to_contain_text("dragged/top.txt")
            expect(received).to_contain_text("two words (1).txt")
            # Uploading the same name again shows the name it was saved under.
            page.set_input_files("#files", [str(src / "one.txt")])
            expect(page.locator("#queue")).to_contain_text("saved as one (1).txt")
            assert errors == []
            # A slow upload shows its progress and speed, and can be cancelled. In a page of its
            # own (a new context: its own connections), throttled before it opens any: a
            # connection kept alive from before may escape Chromium's throttling.
            slow_page = browser.new_page()
            cdp = slow_page.context.new_cdp_session(slow_page)
            cdp.send("Network.enable")
            cdp.send(
                "Network.emulateNetworkConditions",
                {
                    "offline": False,
                    "latency": 0,
                    "downloadThroughput": -1,
                    "uploadThroughput": 64 * 1024,
                },
            )
            slow_page.goto(srv.url)
            slow_page.set_input_files("#files", [str(src / "slow.bin")])
            slow = slow_page.locator("#queue .upload", has_text="slow.bin")
            expect(slow.locator(".status")).to_contain_text("/s", timeout=10_000)
            slow.locator("button.cancel").click()
            expect(slow.locator(".status")).to_have_text("cancelled")
        finally:
            browser.close()
        # The cancelled upload left nothing.
        expected = [
            "album",
            "album/a.txt",
            "album/sub",
            "album/sub/b.txt",
            "dragged",
            "dragged/inner",
            "dragged/inner/c.txt",
            "dragged/top.txt",
            "dropped.txt",
            "one (1).txt",
            "one.txt",
            "two words (1).txt",
            "two words.txt",
        ]
        assert wait_for_listing(inbox, expected) == expected
    assert (inbox / "album" / "sub" / "b.txt").read_text() == "b\n"
    assert (inbox / "dragged" / "inner" / "c.txt").read_text() == "c\n"


def test_password_protected_link(tmp_path: Path) -> None:
    """With --password, scripts use Basic auth and the page's uploads carry the CSRF token."""
    need(CHROMIUM)
    from playwright.sync_api import expect, sync_playwright

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (tmp_path / "pw").write_text("s3cret\n")
    (tmp_path / "note.txt").write_text("note\n")
    with (
        live_server("receive", str(inbox), "--password-file", str(tmp_path / "pw")) as srv,
        sync_playwright() as p,
    ):
        assert httpx.put(srv.url + "x.txt", content=b"x").status_code == 401
        r = httpx.put(srv.url + "basic.txt", content=b"b", auth=("any", "s3cret"))
        assert r.status_code == 201
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(srv.url)
            page.fill("#password", "s3cret")
            page.click("button[type=submit]")
            page.wait_for_url(srv.url)
            page.set_input_files("#files", [str(tmp_path / "note.txt")])
            expect(page.locator("#received")).to_contain_text("note.txt")
        finally:
            browser.close()
    assert files_under(inbox) == ["basic.txt", "note.txt"]


def test_a_malformed_multipart_body_is_400_and_prints_nothing(tmp_path: Path) -> None:
    with live_server("receive", str(tmp_path)) as srv:
        r = httpx.post(
            srv.url,
            content=b"--xyzX\r\n",  # a boundary not followed by CRLF
            headers={"content-type": "multipart/form-data; boundary=xyz"},
        )
        assert r.status_code == 400
        srv.proc.send_signal(signal.SIGINT)
        srv.proc.wait(20)
        assert srv.proc.stderr is not None
        err = srv.proc.stderr.read().decode()
    # The answer says it; the parser's own log lines must not reach the terminal (--quiet).
    assert "boundary" not in err


def _talking_receive(folder: Path, *args: str) -> tuple[subprocess.Popen[bytes], str]:
    """`comptoir receive FOLDER ARGS` without --quiet (banner, lines); it and its link."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = "a-token-for-this-test"
    cmd = comptoir_cmd("receive", str(folder), "-b", "127.0.0.1", "-p", str(port), "--token", token)
    proc = subprocess.Popen([*cmd, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/{token}/"
    wait_until_serving(url)
    return proc, url


@pytest.mark.parametrize("ending", ["ctrl-c", "count"])
def test_the_terminal_says_where_what_and_why_it_stops(tmp_path: Path, ending: str) -> None:
    proc, url = _talking_receive(tmp_path, *(["--count", "2"] if ending == "count" else []))
    try:
        assert httpx.put(url + "one.txt", content=b"1" * 2048).status_code == 201
        assert httpx.put(url + "two.txt", content=b"2" * 1024).status_code == 201
        if ending == "ctrl-c":
            proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0
        assert proc.stderr is not None
        err = proc.stderr.read().decode()
    finally:
        stop_server(proc)
    assert f"    saves into {tmp_path.resolve()}\n" in err
    stopping = "receive: stopping: received 2 files (--count 2)\n"
    assert (stopping in err) == (ending == "count")
    assert err.endswith("receive: 2 files received, 3.0 KiB in all\n"), err
    assert "Traceback" not in err
