"""`comptoir echo` over real sockets: the CLI's TCP/UDP echo, WebSocket echo, timing of streamed
answers, and the TCP echo's defences (idle clients, clients that never read, too many clients)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import re
import resource
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from comptoir.errors import ConfigError
from comptoir.sites.echo.netecho import HIGH_WATER, READ_SIZE, TCPEcho, UDPEcho
from tests.conftest import LiveServer, live_server

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@pytest.fixture(scope="module")
def srv() -> Iterator[LiveServer]:
    """`comptoir echo --tcp 0 --udp 0 --quiet --host 127.0.0.1 --port 0`, with small limits."""
    limits = ("--max-body", "64k", "--max-duration", "2s")
    with live_server("echo", "--tcp", "0", "--udp", "0", *limits, url_count=3) as server:
        yield server


def _port(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None
    return port


def test_quiet_prints_the_url_then_tcp_and_udp_addresses(srv: LiveServer) -> None:
    http, tcp, udp = srv.urls
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", http)
    assert re.fullmatch(r"tcp://127\.0\.0\.1:\d+", tcp)
    assert re.fullmatch(r"udp://127\.0\.0\.1:\d+", udp)
    assert len({_port(http), _port(tcp)}) == 2


def test_http_side_answers_as_httpbin(srv: LiveServer) -> None:
    r = httpx.post(srv.url + "anything/x?a=1", json={"k": "v"})
    doc = r.json()
    assert (doc["method"], doc["json"], doc["args"]) == ("POST", {"k": "v"}, {"a": "1"})
    assert doc["url"] == srv.url + "anything/x?a=1"
    r = httpx.post(srv.url + "post", content=b"x" * (64 * 1024 + 1))
    assert r.status_code == 413
    assert httpx.get(srv.url + "delay/3").status_code == 400


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST /post HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"zz\r\nabc\r\n0\r\n\r\n",
        b"POST /post HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n\n3\nabc\n0\n\n",
        b"POST /post HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc",
    ],
    ids=["bad-chunk-size", "bare-lf-chunks", "short-body"],
)
def test_a_malformed_body_is_400_not_500(srv: LiveServer, request_bytes: bytes) -> None:
    with socket.create_connection(("127.0.0.1", _port(srv.url)), timeout=10) as sock:
        sock.sendall(request_bytes)
        sock.shutdown(socket.SHUT_WR)  # the short body ends here
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert b"Malformed or incomplete request body" in answer


def test_drip_bytes_arrive_one_by_one(srv: LiveServer) -> None:
    start = time.monotonic()
    arrivals = []
    with httpx.stream("GET", srv.url + "drip?numbytes=4&duration=0.6") as r:
        for chunk in r.iter_raw():
            arrivals.append((time.monotonic() - start, chunk))
    assert b"".join(c for _, c in arrivals) == b"****"
    # Paced: the last byte comes well after the first (absolute times vary with the load).
    assert len(arrivals) >= 3
    assert arrivals[-1][0] - arrivals[0][0] >= 0.45


def test_sse_events_arrive_over_time(srv: LiveServer) -> None:
    start = time.monotonic()
    seen = []
    with httpx.stream("GET", srv.url + "sse?count=3&duration=0.4") as r:
        for line in r.iter_lines():
            if line.startswith("data: "):
                seen.append((time.monotonic() - start, json.loads(line[6:])["id"]))
    assert [i for _, i in seen] == [0, 1, 2]
    assert seen[-1][0] - seen[0][0] >= 0.3


async def test_seeded_stream_bytes_leave_other_requests_on_the_worker_answered() -> None:
    # Seeded bytes take about a second a megabyte to draw: drawn on the event loop, ten such
    # streams kept /get on the same worker waiting for seconds.
    with live_server("echo", "--workers", "1") as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            big = "stream-bytes/1048576?seed=3&chunk_size=1048576"
            streams = [asyncio.create_task(client.get(big)) for _ in range(10)]
            await asyncio.sleep(0.3)
            waits = []
            for _ in range(5):
                start = time.monotonic()
                assert (await client.get("get")).status_code == 200
                waits.append(time.monotonic() - start)
                await asyncio.sleep(0.1)
            bodies = {r.content for r in await asyncio.gather(*streams)}
    assert len(bodies) == 1 and len(bodies.pop()) == 1048576
    assert max(waits) < 2, waits


# --- WebSocket, with a minimal client of our own (RFC 6455) ---------------------------------


def ws_connect(url: str, path: str) -> socket.socket:
    """Open a WebSocket; fail unless the server answers 101 with the right accept key."""
    parts = urlsplit(url)
    assert parts.hostname and parts.port
    sock = socket.create_connection((parts.hostname, parts.port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, head
        head += chunk
    status, *lines = head.split(b"\r\n\r\n")[0].decode().split("\r\n")
    assert " 101 " in status, status
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    expected = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
    assert headers["sec-websocket-accept"] == expected
    return sock


def ws_send(sock: socket.socket, opcode: int, payload: bytes) -> None:
    """Send one final, masked frame (clients must mask)."""
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    sock.sendall(header + mask + masked)


def _read_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def ws_recv(sock: socket.socket) -> tuple[int, bytes]:
    """Read one whole message: (opcode, payload); continuation frames are joined."""
    opcode, payload = None, b""
    while True:
        b0, b1 = _read_exactly(sock, 2)
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", _read_exactly(sock, 2))
        elif n == 127:
            (n,) = struct.unpack("!Q", _read_exactly(sock, 8))
        assert not b1 & 0x80, "servers never mask"
        data = _read_exactly(sock, n)
        opcode = opcode if opcode is not None and b0 & 0x0F == 0 else b0 & 0x0F
        payload += data
        if b0 & 0x80:
            return opcode, payload


def test_websocket_echoes_text_and_binary(srv: LiveServer) -> None:
    sock = ws_connect(srv.url, "/websocket/echo")
    try:
        ws_send(sock, 0x1, "héllo ✓".encode())
        assert ws_recv(sock) == (0x1, "héllo ✓".encode())
        blob = os.urandom(60_000)  # more than one frame's 16-bit length, under --max-body
        ws_send(sock, 0x2, blob)
        assert ws_recv(sock) == (0x2, blob)
        ws_send(sock, 0x8, struct.pack("!H", 1000))
        opcode, _ = ws_recv(sock)
        assert opcode == 0x8
    finally:
        sock.close()


def test_websocket_limits_message_size_and_duration(srv: LiveServer) -> None:
    sock = ws_connect(srv.url, "/websocket/echo")
    try:
        ws_send(sock, 0x2, b"x" * (64 * 1024 + 1))
        opcode, payload = ws_recv(sock)
        assert (opcode, struct.unpack("!H", payload[:2])[0]) == (0x8, 1009)
    finally:
        sock.close()
    sock = ws_connect(srv.url, "/websocket/echo?max_message_size=10")
    try:
        start = time.monotonic()
        ws_send(sock, 0x1, b"ok")
        assert ws_recv(sock) == (0x1, b"ok")
        opcode, payload = ws_recv(sock)  # closed by the server at --max-duration
        assert (opcode, struct.unpack("!H", payload[:2])[0]) == (0x8, 1000)
        assert 1.8 <= time.monotonic() - start < 10
    finally:
        sock.close()


# --- TCP and UDP echo through the CLI -------------------------------------------------------


async def test_tcp_echo_serves_200_clients_at_once(srv: LiveServer) -> None:
    port = _port(srv.urls[1])

    async def client(i: int) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        sent = b""
        for piece in range(3):
            data = os.urandom(1000) + f"{i}:{piece}".encode()
            writer.write(data)
            sent += data
        await writer.drain()
        got = await reader.readexactly(len(sent))
        writer.write_eof()
        assert await reader.read() == b""  # closed once the echo is done
        writer.close()
        await writer.wait_closed()
        return got if got == sent else b""

    results = await asyncio.wait_for(asyncio.gather(*(client(i) for i in range(200))), 30)
    assert all(results)


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


async def test_tcp_echo_holds_5000_clients_on_one_worker(srv: LiveServer) -> None:
    """Issue 6's figure: 5,000 clients at once on the default settings, with little memory."""
    count = 5000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < count + 200:
        pytest.skip(f"the open-files hard limit ({hard}) cannot hold {count} client sockets")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, count + 200), hard))
    port = _port(srv.urls[1])
    # The TCP echo runs in the main process (services.py), next to the one HTTP worker.
    before = _rss_kb(srv.proc.pid)
    gate = asyncio.Semaphore(500)

    async def connect(i: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        async with gate:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            message = f"client {i}\n".encode()
            writer.write(message)
            assert await reader.readexactly(len(message)) == message
            return reader, writer

    clients = await asyncio.wait_for(asyncio.gather(*(connect(i) for i in range(count))), 60)
    try:

        async def ping(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
            writer.write(b"ping")
            return await reader.readexactly(4) == b"ping"

        # All of them still open and answered, at the same time.
        answers = await asyncio.wait_for(asyncio.gather(*(ping(r, w) for r, w in clients)), 60)
        assert all(answers)
        grown_mb = (_rss_kb(srv.proc.pid) - before) / 1024
        # About 2 kB per client here (10 MB); the bound leaves room for other allocators.
        assert grown_mb < 60, f"{grown_mb:.1f} MB for {count} clients"
    finally:
        for _, writer in clients:
            writer.close()


_CAPACITY_SCRIPT = """
import asyncio, resource, sys
from comptoir.sites.echo.netecho import FD_RESERVE, TCPEcho, connection_capacity

resource.setrlimit(resource.RLIMIT_NOFILE, (100, 20000))
assert connection_capacity(5000) == 5000
assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == 5000 + FD_RESERVE
# A hard limit below what --max-connections needs: the service holds what the limit allows.
resource.setrlimit(resource.RLIMIT_NOFILE, (FD_RESERVE + 3, FD_RESERVE + 3))

async def main():
    service = TCPEcho("127.0.0.1", 0, max_connections=100)
    await service.start()
    port = service.sockets[0].getsockname()[1]
    clients = [await asyncio.open_connection("127.0.0.1", port) for _ in range(4)]
    for reader, writer in clients[:3]:
        writer.write(b"hi")
        assert await reader.readexactly(2) == b"hi"
    assert await asyncio.wait_for(clients[3][0].read(), 2) == b""
    print(service.capacity, service.refused)
    await service.stop()

asyncio.run(main())
"""


def test_the_open_files_limit_is_raised_or_caps_the_clients() -> None:
    if resource.getrlimit(resource.RLIMIT_NOFILE)[1] < 20000:
        pytest.skip("needs a hard open-files limit of at least 20000 to lower it in a child")
    proc = subprocess.run(
        [sys.executable, "-c", _CAPACITY_SCRIPT],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["3", "1"]
    assert proc.stderr == (
        "comptoir: warning: tcp echo: the open-files limit allows 3 clients,"
        " not --max-connections 100 (raise `ulimit -n`)\n"
    )


def test_udp_echo_answers_each_datagram(srv: LiveServer) -> None:
    port = _port(srv.urls[2])
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(5)]
    try:
        for n, s in enumerate(socks):
            s.settimeout(5)
            for size in (1, 512, 8192):
                payload = os.urandom(size) + bytes([n])
                s.sendto(payload, ("127.0.0.1", port))
                got, addr = s.recvfrom(65536)
                assert got == payload and addr[1] == port
    finally:
        for s in socks:
            s.close()


async def test_busy_ports_are_config_errors() -> None:
    """A ConfigError is what the CLI turns into one line on stderr and exit code 2."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ConfigError, match=f"tcp echo: port {port} is already in use"):
            await TCPEcho("127.0.0.1", port).start()
    service = UDPEcho("127.0.0.1", 0)
    (address,) = await service.start()
    try:
        with pytest.raises(ConfigError, match=r"udp echo: port \d+ is already in use"):
            await UDPEcho("127.0.0.1", int(address.rsplit(":", 1)[1])).start()
    finally:
        await service.stop()


# --- The TCP echo's defences, on the service itself -----------------------------------------


async def _start(**kwargs: float) -> tuple[TCPEcho, int]:
    service = TCPEcho("127.0.0.1", 0, **kwargs)  # type: ignore[arg-type]
    (address,) = await service.start()
    port = service.sockets[0].getsockname()[1]
    assert address == f"tcp://127.0.0.1:{port}"
    return service, port


async def test_idle_clients_are_disconnected_active_ones_kept() -> None:
    service, port = await _start(idle_timeout=0.4)
    try:
        idle_r, idle_w = await asyncio.open_connection("127.0.0.1", port)
        busy_r, busy_w = await asyncio.open_connection("127.0.0.1", port)
        start = time.monotonic()
        for _ in range(8):  # 0.8 s of activity, a message every 0.1 s
            busy_w.write(b"ping")
            assert await busy_r.readexactly(4) == b"ping"
            await asyncio.sleep(0.1)
        assert await asyncio.wait_for(idle_r.read(), 3) == b""
        assert time.monotonic() - start >= 0.35
        busy_w.write(b"still here")
        assert await busy_r.readexactly(10) == b"still here"
        for w in (idle_w, busy_w):
            w.close()
    finally:
        await service.stop()


async def test_a_client_that_never_reads_is_cut_off_with_bounded_memory() -> None:
    service, port = await _start(stall_timeout=0.5, idle_timeout=30)
    peak = 0
    sampling = True

    async def sample() -> None:
        nonlocal peak
        while sampling:
            for conn in service.connections:
                assert conn.transport is not None
                peak = max(peak, conn.transport.get_write_buffer_size())
            await asyncio.sleep(0.002)

    sampler = asyncio.create_task(sample())
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        chunk = b"x" * 65536
        sent = 0
        start = time.monotonic()
        with pytest.raises(OSError):  # reset by the server
            async with asyncio.timeout(15):
                while True:
                    writer.write(chunk)
                    await writer.drain()
                    sent += len(chunk)
        elapsed = time.monotonic() - start
        writer.close()
    finally:
        sampling = False
        await sampler
    assert 0.4 <= elapsed < 10
    # The client pushed far more than the server ever held for it.
    assert peak <= HIGH_WATER + READ_SIZE
    assert sent > peak
    await asyncio.sleep(0.05)
    assert service.connections == set()
    await service.stop()


async def test_clients_beyond_max_connections_are_closed_at_once() -> None:
    service, port = await _start(max_connections=3)
    try:
        clients = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
        for r, w in clients:
            w.write(b"hi")
            assert await r.readexactly(2) == b"hi"
        extra_r, extra_w = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(extra_r.read(), 2) == b""
        assert service.refused == 1
        _, w0 = clients[0]
        w0.close()
        await w0.wait_closed()
        await asyncio.sleep(0.1)
        again_r, again_w = await asyncio.open_connection("127.0.0.1", port)
        again_w.write(b"back")
        assert await asyncio.wait_for(again_r.readexactly(4), 2) == b"back"
        for _, w in [*clients[1:], (extra_r, extra_w), (again_r, again_w)]:
            w.close()
    finally:
        await service.stop()


async def test_stop_drops_every_connection() -> None:
    service, port = await _start()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await asyncio.sleep(0.05)
    assert len(service.connections) == 1
    await service.stop()
    assert await asyncio.wait_for(reader.read(), 2) == b""
    writer.close()


async def test_udp_echo_never_answers_a_source_that_could_loop() -> None:
    from comptoir.sites.echo.netecho import UDPEcho, _loop_risk

    # RFC 862's loop: a datagram "from" another echo (a low port) or from the service itself.
    assert _loop_risk(("127.0.0.1", 7), ("127.0.0.1", 4000))
    assert _loop_risk(("127.0.0.1", 4000), ("127.0.0.1", 4000))
    assert not _loop_risk(("127.0.0.1", 50000), ("127.0.0.1", 4000))
    service = UDPEcho("127.0.0.1", 0)
    [address] = await service.start()
    port = int(address.rsplit(":", 1)[1])
    loop = asyncio.get_running_loop()
    try:
        if os.geteuid() == 0:
            low = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            low.bind(("127.0.0.1", 1019))
            low.setblocking(False)
            low.sendto(b"loop?", ("127.0.0.1", port))
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(loop.sock_recv(low, 100), 0.3)
            low.close()
            assert service.dropped == 1
        ok = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        ok.setblocking(False)
        ok.sendto(b"hello", ("127.0.0.1", port))
        assert await asyncio.wait_for(loop.sock_recv(ok, 100), 5) == b"hello"
        ok.close()
    finally:
        await service.stop()
