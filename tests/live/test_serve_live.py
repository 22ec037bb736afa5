"""`comptoir serve` as a user runs it: real process, real sockets, real clients."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import comptoir_cmd, live_server, stop_server, wait_until_serving

BIG = 5 * 1024 * 1024 + 17


def test_serves_a_file_over_a_real_socket(tmp_path: Path) -> None:
    (tmp_path / "hello.txt").write_text("hello\n")
    with live_server("serve", str(tmp_path)) as srv:
        assert srv.url.startswith("http://127.0.0.1:")
        r = httpx.get(srv.url + "hello.txt")
        assert r.status_code == 200
        assert r.text == "hello\n"
        assert srv.stop() == 0
        # --quiet: the URL, one line on stdout, and nothing else anywhere.
        assert srv.urls == [srv.url]
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", srv.url)
        assert srv.proc.stdout is not None
        assert srv.proc.stdout.read() == b""
        assert srv.read_stderr() == "", "no banner, no access log"


def test_two_workers_share_one_port(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a")
    with live_server("serve", str(tmp_path), "--workers", "2") as srv:
        with httpx.Client() as c:
            for _ in range(20):
                assert c.get(srv.url + "a.txt").text == "a"
        assert srv.stop(signal.SIGTERM) == 0


# --- one shared server for read-only checks ---------------------------------------------------


@dataclass
class Served:
    """A running `comptoir serve --quiet` and the folder it serves."""

    url: str
    root: Path
    big: bytes
    port: int


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One server for the tests that only read."""
    root = tmp_path_factory.mktemp("served")
    big = os.urandom(BIG)
    (root / "big.bin").write_bytes(big)
    (root / "hello.txt").write_text("hello, world\n")
    (root / "with space & #hash.txt").write_text("spaced out\n")
    (root / "folder").mkdir()
    (root / "folder" / "inner.txt").write_text("inner\n")
    page = ("<p>compress me</p>\n" * 200).encode()
    (root / "page.html").write_bytes(page)
    (root / "page.html.gz").write_bytes(gzip.compress(page))
    (root.parent / "outside.txt").write_text("secret\n")
    (root / "escape").symlink_to(root.parent / "outside.txt")
    with live_server("serve", str(root)) as srv:
        port = int(srv.url.rsplit(":", 1)[1].strip("/"))
        yield Served(srv.url, root, big, port)


def raw_request(port: int, request: bytes, timeout: float = 5) -> bytes:
    """Send bytes exactly as given (no client normalisation) and read the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data


def test_large_file_arrives_intact(served: Served) -> None:
    with httpx.Client() as c:
        r = c.get(served.url + "big.bin")
        assert r.status_code == 200
        assert r.headers["content-length"] == str(BIG)
        assert hashlib.sha256(r.content).hexdigest() == hashlib.sha256(served.big).hexdigest()
        # A range inside it, across the small-file limit.
        r = c.get(served.url + "big.bin", headers={"range": "bytes=262000-263000"})
        assert r.status_code == 206
        assert r.content == served.big[262000:263001]
        head = c.head(served.url + "big.bin")
        assert head.headers["content-length"] == str(BIG)


@pytest.mark.parametrize(
    "target",
    [
        b"/../outside.txt",
        b"/%2e%2e/outside.txt",
        b"/..%2foutside.txt",
        b"/..%5coutside.txt",
        b"/%c0%ae%c0%ae/outside.txt",
        b"/escape",
        b"/hello.txt%00",
    ],
)
def test_traversal_over_a_real_socket(served: Served, target: bytes) -> None:
    answer = raw_request(
        served.port, b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    status = int(answer.split(b" ", 2)[1])
    assert status in (400, 404)
    assert b"secret" not in answer


def test_curl_range_head_and_redirect(served: Served) -> None:
    curl = require("curl")
    url = served.url + "hello.txt"
    out = subprocess.run([curl, "-sS", "-r", "0-3", url], capture_output=True, timeout=10)
    assert out.stdout == b"hell"
    out = subprocess.run([curl, "-sS", "-I", url], capture_output=True, text=True, timeout=10)
    head = out.stdout.lower()
    assert head.startswith("http/1.1 200")
    assert "content-length: 13" in head
    assert "accept-ranges: bytes" in head
    assert 'etag: "' in head
    # -L follows the folder's redirect to its slash form.
    out = subprocess.run(
        [curl, "-sS", "-L", "-o", "/dev/null", "-w", "%{url_effective} %{http_code}",
         served.url + "folder"],
        capture_output=True, text=True, timeout=10,
    )  # fmt: skip
    assert out.stdout == served.url + "folder/ 200"
    # A precompressed sibling, decoded by curl.
    out = subprocess.run(
        [curl, "-sS", "--compressed", "-D", "-", served.url + "page.html"],
        capture_output=True, timeout=10,
    )  # fmt: skip
    headers, _, body = out.stdout.partition(b"\r\n\r\n")
    assert b"content-encoding: gzip" in headers.lower()
    assert body == (served.root / "page.html").read_bytes()
    # curl --path-as-is sends `..` untouched.
    out = subprocess.run(
        [curl, "-sS", "--path-as-is", "-o", "/dev/null", "-w", "%{http_code}",
         served.url + "../outside.txt"],
        capture_output=True, text=True, timeout=10,
    )  # fmt: skip
    assert out.stdout in ("400", "404")


def test_wget_file_with_spaces_and_resume(served: Served, tmp_path: Path) -> None:
    wget = require("wget")
    name = "with space & #hash.txt"
    url = served.url + "with%20space%20%26%20%23hash.txt"
    subprocess.run([wget, "-q", url], cwd=tmp_path, check=True, timeout=10)
    assert (tmp_path / name).read_text() == "spaced out\n"
    # `wget -c` resumes a partial download with a Range request.
    part = tmp_path / "big.bin"
    part.write_bytes(served.big[:1000])
    subprocess.run([wget, "-q", "-c", served.url + "big.bin"], cwd=tmp_path, check=True, timeout=20)
    assert hashlib.sha256(part.read_bytes()).digest() == hashlib.sha256(served.big).digest()


def require(tool: str) -> str:
    """The path of a command-line client; skipped where missing, except in CI."""
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{tool} is required in CI")
        pytest.skip(f"{tool} not installed")
    return path


# --- banner, access log -----------------------------------------------------------------------


@contextlib.contextmanager
def verbose_server(*args: str) -> Iterator[tuple[subprocess.Popen[bytes], str, str]]:
    """Run `comptoir serve ARGS` without --quiet; yield (process, URL, banner)."""
    proc = subprocess.Popen(
        comptoir_cmd(*args, "--host", "127.0.0.1", "--port", "0"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        banner = read_until(proc, "Ctrl-C to stop")
        m = re.search(r"http://127\.0\.0\.1:\d+/", banner)
        assert m is not None, banner
        wait_until_serving(m[0])
        yield proc, m[0], banner
    finally:
        stop_server(proc)


def read_until(proc: subprocess.Popen[bytes], marker: str, timeout: float = 20) -> str:
    """Read the server's stderr until `marker` appears."""
    assert proc.stderr is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stderr, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    buf = b""
    while marker.encode() not in buf:
        left = deadline - time.monotonic()
        if left <= 0 or not sel.select(left):
            raise AssertionError(f"no {marker!r} in {timeout}s: {buf!r}")
        chunk = os.read(proc.stderr.fileno(), 65536)
        if not chunk:
            raise AssertionError(f"server exited with {proc.wait()}: {buf!r}")
        buf += chunk
    return buf.decode()


def stop_and_read(proc: subprocess.Popen[bytes]) -> tuple[int, str, str]:
    """SIGINT the server; (exit code, rest of stdout, rest of stderr)."""
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    return proc.returncode, out.decode(), err.decode()


def test_banner_and_access_log(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("abc")
    with verbose_server("serve", str(tmp_path)) as (proc, url, banner):
        assert "comptoir" in banner
        url_line = next(line for line in banner.splitlines() if url in line)
        assert "primary" in url_line
        assert "▀" in banner or "█" in banner, "a QR code"
        port = int(url.rsplit(":", 1)[1].strip("/"))
        with httpx.Client() as c:
            assert c.get(url + "a.txt").status_code == 200
            assert c.get(url + "missing").status_code == 404
            assert c.head(url + "a.txt").status_code == 200
        # Escapes a client could try to slip into the log: encoded newline and ANSI sequence,
        # raw UTF-8, a quote.
        hostile = b'/x%0aFAKE%20200%1b[2J\xc3\xa9"q'
        raw_request(port, b"GET " + hostile + b" HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        code, out, err = stop_and_read(proc)
    assert code == 0
    assert out == ""
    lines = [line for line in err.splitlines() if '"' in line]
    # The first request is the one that waited for the server to be up.
    assert '"GET /" 200' in lines.pop(0)
    assert len(lines) == 4, err
    pattern = re.compile(
        r'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d 127\.0\.0\.1 "(\w+) (\S+)" (\d{3}) (\d+) [\d.]+ms'
    )
    parsed = [pattern.fullmatch(line) for line in lines]
    assert all(parsed), lines
    fields = [(m[1], m[2], m[3], m[4]) for m in parsed if m]
    assert fields[:3] == [
        ("GET", "/a.txt", "200", "3"),
        ("GET", "/missing", "404", "10"),
        ("HEAD", "/a.txt", "200", "0"),
    ]
    method, path, status, _ = fields[3]
    assert (method, status) == ("GET", "400")
    assert "\x1b" not in err and "FAKE 200" not in err
    assert path == '/x%0aFAKE%20200%1b[2Jé\\"q'


def test_json_access_log(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("abc")
    with verbose_server("serve", str(tmp_path), "--log-format", "json") as (proc, url, _):
        with httpx.Client() as c:
            c.get(url + "a.txt?x=1")
            c.get(url + "caf%C3%A9")
        code, _, err = stop_and_read(proc)
    assert code == 0
    records = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert records.pop(0)["path"] == "/"  # the request that waited for the server to be up
    assert [(r["method"], r["path"], r["status"], r["bytes"]) for r in records] == [
        ("GET", "/a.txt?x=1", 200, 3),
        ("GET", "/caf%C3%A9", 404, 10),
    ]
    for r in records:
        assert r["client"] == "127.0.0.1"
        assert r["duration_ms"] >= 0
        assert r["time"].endswith("+00:00")


# --- shutdown ---------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_download_in_flight_finishes_at_shutdown(tmp_path: Path, sig: int) -> None:
    data = os.urandom(6 * 1024 * 1024)
    (tmp_path / "big.bin").write_bytes(data)
    with live_server("serve", str(tmp_path), "--grace", "10") as srv:
        port = int(srv.url.rsplit(":", 1)[1].strip("/"))
        with socket.socket() as s:
            # A small receive buffer and slow reads: the transfer outlasts the signal.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
            s.settimeout(10)
            s.connect(("127.0.0.1", port))
            s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            received = s.recv(16384)
            started = time.monotonic()
            srv.proc.send_signal(sig)
            while chunk := s.recv(65536):
                received += chunk
                time.sleep(0.002)
            elapsed = time.monotonic() - started
        head, _, body = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        assert elapsed > 0.2, "the download really was in flight"
        assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
        assert srv.stop(sig) == 0
        assert srv.read_stderr() == ""


# --- user errors ------------------------------------------------------------------------------


def test_user_errors_are_one_line_and_exit_2(tmp_path: Path) -> None:
    # Run side by side: each is a fresh interpreter. (Every error case runs in-process in
    # tests/test_cli.py; these check the real entry point prints no traceback.)
    (tmp_path / "f.txt").write_text("x")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        cases = {
            "already in use": ["serve", str(tmp_path), "--host", "127.0.0.1", "--port", port],
            "not a folder": ["serve", str(tmp_path / "f.txt"), "--port", "0"],
            "--workers": ["serve", str(tmp_path), "--workers", "many"],
        }
        procs = {
            words: subprocess.Popen(
                comptoir_cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            for words, args in cases.items()
        }
        results = {words: p.communicate(timeout=30) for words, p in procs.items()}
    for words, (out, err) in results.items():
        assert procs[words].returncode == 2, (words, err)
        assert out == ""
        assert err.count("\n") == 1, err
        assert err.startswith("comptoir: error: ")
        assert words in err
        assert "Traceback" not in err
