"""What one client may hold, on a real server (issue 10, item 2): a slowloris of 2,000 silent
connections from one address while a normal client from the same address keeps its answers within
a second; stalled uploads answered 408 and their part files removed; a flood of them from one
address refused 503 beyond its share, while another address is served, under an open-files
limit of 1,024."""

from __future__ import annotations

import contextlib
import resource
import selectors
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import (
    LiveServer,
    comptoir_cmd,
    live_server,
    read_urls,
    stop_server,
    wait_until_serving,
)

TOKEN = "t0ken-for-live-tests"
SILENT = 2000
# A request head in the making, and the line a slowloris adds to it now and then.
PARTIAL_HEAD = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
TRICKLE = b"X-Slow: 1\r\n"


@pytest.fixture(autouse=True)
def enough_open_files() -> Iterator[None]:
    """This process holds thousands of sockets: its soft open-files limit goes to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = SILENT + 1000
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"the open-files hard limit ({hard}) cannot hold {SILENT} client sockets")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


class Slowloris:
    """Silent connections to one address, opened again as soon as the server closes them; half
    of them send a request head a line at a time that never ends."""

    def __init__(self, where: tuple[str, int]) -> None:
        self.where = where
        self.sel = selectors.DefaultSelector()
        # Connections the server closed, and when the first was.
        self.closed = 0
        self.first_closed_at: float | None = None

    def open(self, trickling: bool) -> None:
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex(self.where)
        # The selector's data: whether it trickles, and whether its request line went out.
        self.sel.register(sock, selectors.EVENT_READ, [trickling, False])

    def trickle(self) -> None:
        """One more line of a head for each trickling connection."""
        for key in self.sel.get_map().values():
            trickling, begun = key.data
            if trickling:
                with contextlib.suppress(OSError):
                    key.fileobj.send(TRICKLE if begun else PARTIAL_HEAD)  # type: ignore[union-attr]
                    key.data[1] = True

    def reopen_closed(self) -> None:
        """Open again every connection the server closed."""
        for key, _ in self.sel.select(0):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                gone = sock.recv(4096) == b""
            except OSError:
                gone = True
            if gone:
                self.closed += 1
                if self.first_closed_at is None:
                    self.first_closed_at = time.monotonic()
                self.sel.unregister(sock)
                sock.close()
                self.open(key.data[0])

    def close(self) -> None:
        for key in list(self.sel.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        self.sel.close()


def test_a_slowloris_of_2000_connections_leaves_others_served(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello\n")
    header_timeout = 3.0
    with live_server("serve", str(tmp_path), "--header-timeout", str(header_timeout)) as srv:
        attack = Slowloris(address(srv.url))
        started = time.monotonic()
        for i in range(SILENT):
            attack.open(trickling=i % 2 == 0)
        latencies: list[float] = []
        trickled_at = started
        try:
            # A new connection each time, as new visitors come (a kept-alive one, accepted
            # before, would not meet the connection cap).
            fresh = httpx.Limits(max_keepalive_connections=0)
            with httpx.Client(timeout=5, limits=fresh) as client:
                # 10 s of attack, while a client of the same address asks for a file again
                # and again.
                while time.monotonic() - started < 10:
                    if time.monotonic() - trickled_at >= 1:
                        trickled_at = time.monotonic()
                        attack.trickle()
                    attack.reopen_closed()
                    asked = time.monotonic()
                    response = client.get(srv.url + "a.txt")
                    latencies.append(time.monotonic() - asked)
                    assert response.status_code == 200
                    assert response.text == "hello\n"
                    time.sleep(0.05)
        finally:
            attack.close()
    assert len(latencies) >= 20
    assert max(latencies) < 1.0, sorted(latencies)[-5:]
    # The server closed the silent ones (and those sending a head that never ends) at the header
    # timeout, not before: each of the 2,000 once at least in 10 s.
    assert attack.first_closed_at is not None
    assert attack.first_closed_at - started >= header_timeout - 0.5
    assert attack.closed >= SILENT


def stalled_put(where: tuple[str, int], name: str) -> socket.socket:
    """A PUT promising 100,000 bytes that sends 3."""
    sock = socket.create_connection(where)
    head = (
        f"PUT /{TOKEN}/{name} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n"
    ).encode()
    sock.sendall(head + b"abc")
    return sock


def read_answer(sock: socket.socket, timeout: float) -> bytes:
    """What the server sends until it closes the connection (or `timeout` passes)."""
    sock.settimeout(timeout)
    answer = b""
    with contextlib.suppress(OSError):  # a reset or the timeout ends it like a close
        while chunk := sock.recv(4096):
            answer += chunk
    return answer


def part_files(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.endswith(".part"))


@contextlib.contextmanager
def server_with_open_files(limit: int, *args: str) -> Iterator[LiveServer]:
    """`comptoir ARGS` run with an open-files limit of `limit`, soft and hard (no raising it)."""

    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    full = [*args, "--quiet", "--host", "127.0.0.1", "--port", "0"]
    proc = subprocess.Popen(
        comptoir_cmd(*full), stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=lower
    )
    try:
        urls = read_urls(proc, 1, 20)
        wait_until_serving(urls[0])
        yield LiveServer(proc, urls)
    finally:
        stop_server(proc)


def test_stalled_uploads_under_1024_open_files(tmp_path: Path) -> None:
    """The report: ~300 stalled uploads under a limit of 1,024 open files made uploads 503, the
    upload page 500 and the assets 404. Now connections fit the limit (224 a worker, 4 files
    each), one address holds half of them (112) and is refused beyond, another address is served,
    and the stalled ones are answered 408 after --body-timeout, their part files removed."""
    flood, held = 300, 112
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(
            server_with_open_files(
                1024,
                *("receive", str(tmp_path), "--token", TOKEN, "--body-timeout", "3"),
                *("--worker-connections", "1000"),
            )
        )
        where = address(server.url)
        started = time.monotonic()
        stalled = [stack.enter_context(stalled_put(where, f"f{i}.bin")) for i in range(flood)]
        # Beyond its share, the address is refused at once: 503, Retry-After, connection closed.
        for sock in stalled[held:]:
            answer = read_answer(sock, 2)
            assert answer.startswith(b"HTTP/1.1 503 "), answer[:100]
            assert b"retry-after: 5" in answer.lower()
        assert time.monotonic() - started < 2.5  # before any body timed out
        # Meanwhile another address gets the upload page and the shared assets.
        transport = httpx.HTTPTransport(local_address="127.0.0.2")
        with httpx.Client(transport=transport, timeout=1) as other:
            assert other.get(server.url).status_code == 200
            css = other.get(f"http://{where[0]}:{where[1]}/.comptoir/comptoir.css")
            assert css.status_code == 200
        assert len(part_files(tmp_path)) == held
        # After --body-timeout without a byte, each stalled upload is answered 408, closed, and
        # its part file is gone.
        for sock in stalled[:held]:
            answer = read_answer(sock, 10)
            assert answer.startswith(b"HTTP/1.1 408 "), answer[:100]
        took = time.monotonic() - started
        assert 2.9 < took < 9, took
        assert list(tmp_path.iterdir()) == []
        # The address is served again.
        assert httpx.get(server.url, timeout=2).status_code == 200
        server.stop()
        assert "allows 224 connections per worker, not 1000" in server.read_stderr()
