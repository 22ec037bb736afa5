"""The chat on a real server (granian, 127.0.0.1, port 0), with the `websockets` library as the
client: several workers, raw TCP, a slow consumer, connection limits, the password."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.conftest import live_server

pytestmark = pytest.mark.timeout(40)
PROTOCOL = "comptoir.chat.v1"


def ws_url(url: str, path: str = "/ws") -> str:
    return "ws" + url.rstrip("/").removeprefix("http") + path


async def until(ws: Any, kind: str) -> dict[str, Any]:
    while True:
        event = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if event["type"] == kind:
            return dict(event)


def test_messages_reach_clients_of_every_worker(tmp_path: Path) -> None:
    history = tmp_path / "h.sqlite3"
    with live_server("chat", "--history", str(history), "--workers", "2") as server:

        async def main() -> None:
            clients = [
                await websockets.connect(ws_url(server.url), subprotocols=[PROTOCOL])
                for _ in range(8)
            ]
            nicks = [(await until(c, "welcome"))["nick"] for c in clients]
            assert len(set(nicks)) == 8  # unique across the workers
            for c in clients:
                await until(c, "joined")
            await clients[0].send(json.dumps({"type": "message", "text": "to all"}))
            got = [await until(c, "message") for c in clients]
            assert {(e["text"], e["id"]) for e in got} == {("to all", got[0]["id"])}
            users = httpx.get(server.url + "api/users").json()["users"]
            assert sorted(u["nick"] for u in users) == sorted(nicks)
            for c in clients:
                await c.close()

        asyncio.run(main())


def test_tcp_clients_meet_websocket_clients(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    history = tmp_path / "h.sqlite3"
    with live_server("chat", "--history", str(history), "--tcp", str(port), url_count=2) as server:
        assert server.urls[1] == f"tcp://127.0.0.1:{port}"

        async def main() -> None:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)

            async def line() -> str:
                return (await asyncio.wait_for(reader.readline(), 10)).decode().rstrip("\n")

            assert (await line()).startswith("* welcome, you are guest")
            assert (await line()).startswith("* you are in #general")
            writer.write(b"/nick tom\n")
            assert await line() == "* you are now tom"
            async with websockets.connect(ws_url(server.url)) as ws:
                assert (await ws.recv()).startswith("* you are in #general with ")
                assert await line() == f"* {'guest2'} joined #general"
                writer.write("héllo \x1b[31mred\u202e\n".encode())
                assert await ws.recv() == "tom: héllo [31mred"
                assert await line() == "tom: héllo [31mred"  # its own message, as everyone's
                await ws.send("hi tom")
                assert await line() == "guest2: hi tom"
                writer.write(b"/who\n")
                assert await line() == "* in #general: guest2, tom"
            assert await line() == "* guest2 left #general"
            # A line without a newline is bounded: refused once past --max-message.
            writer.write(b"x" * 10_000)
            assert (await line()).startswith("! line longer than 4096 bytes")
            writer.write(b"\n/quit\n")
            assert await line() == "* bye"
            writer.close()

        asyncio.run(main())


def test_a_burst_reaches_every_reader_in_order_and_whole(tmp_path: Path) -> None:
    # Under granian each frame is handed to the server at once, not awaited (outbox.py): what
    # keeps them in order is granian's runtime; this is the check that it does.
    history = tmp_path / "h.sqlite3"
    with live_server("chat", "--history", str(history), "--rate", "100000/s") as server:

        async def main() -> None:
            url = ws_url(server.url)
            readers = [await websockets.connect(url, subprotocols=[PROTOCOL]) for _ in range(5)]
            plain = await websockets.connect(url)  # plain text lines
            for reader in readers:
                await until(reader, "joined")
            sender = await websockets.connect(url, subprotocols=[PROTOCOL])
            await until(sender, "joined")
            drain = asyncio.create_task(read_all(sender))
            count = 900  # under the queue's 1,000 frames: none is cut off
            for i in range(count):
                await sender.send(json.dumps({"type": "message", "text": f"{i:04d} " + "b" * 200}))
            for reader in readers:
                got = [(await until(reader, "message"))["text"][:4] for _ in range(count)]
                assert got == [f"{i:04d}" for i in range(count)]
            lines = []
            while len(lines) < count:
                line = await asyncio.wait_for(plain.recv(), 10)
                if " bbbb" in line:
                    lines.append(re.search(r"(\d{4}) b", line)[1])  # type: ignore[index]
            assert lines == [f"{i:04d}" for i in range(count)]
            drain.cancel()
            for ws in (*readers, plain, sender):
                await ws.close()

        asyncio.run(main())


def test_a_recovery_longer_than_the_queue_waits_for_room_and_arrives_whole(
    tmp_path: Path,
) -> None:
    # 60 missed messages through a queue of 10 frames: the replies wait for granian to finish
    # sending the oldest (outbox.DirectOutbox._wait_room), none is dropped, none cut off.
    history = tmp_path / "h.sqlite3"
    args = ["--queue-messages", "10", "--rate", "100000/s"]
    with live_server("chat", "--history", str(history), *args) as server:

        async def main() -> None:
            url = ws_url(server.url)
            sender = await websockets.connect(url, subprotocols=[PROTOCOL], max_queue=None)
            await until(sender, "joined")
            for i in range(60):
                await sender.send(json.dumps({"type": "message", "text": f"missed {i}"}))
            for _ in range(60):
                await until(sender, "message")
            back = await websockets.connect(url + "?last_id=0", subprotocols=[PROTOCOL])
            got = [(await until(back, "message"))["text"] for _ in range(60)]
            assert got == [f"missed {i}" for i in range(60)]
            await back.send(json.dumps({"type": "ping"}))
            await until(back, "pong")  # still connected
            await sender.close()
            await back.close()

        asyncio.run(main())


def test_a_slow_consumer_is_cut_off_and_does_not_slow_others(tmp_path: Path) -> None:
    history = tmp_path / "h.sqlite3"
    args = ["chat", "--history", str(history), "--queue-messages", "50", "--queue-bytes", "64K"]
    with live_server(*args, "--rate", "100000/s") as server:

        async def main() -> None:
            url = ws_url(server.url)
            # The slow client reads nothing (its library stops reading once one frame waits).
            slow = await websockets.connect(url, max_queue=1)
            sender = await websockets.connect(url, subprotocols=[PROTOCOL])
            await until(sender, "joined")
            reader = await websockets.connect(url, subprotocols=[PROTOCOL])
            await until(reader, "joined")
            # The sender reads its own events: a client that does not is a slow consumer too.
            drain = asyncio.create_task(read_all(sender))
            before = server_rss(server)
            text = "y" * 3000
            started = time.monotonic()
            latencies = []
            for i in range(1500):  # 4.5 MB: more than the kernel's buffers hold
                sent = time.monotonic()
                await sender.send(json.dumps({"type": "message", "text": f"{i} {text}"}))
                event = await until(reader, "message")
                latencies.append(time.monotonic() - sent)
                assert event["text"].startswith(f"{i} ")
            took = time.monotonic() - started
            assert took < 15, took
            latencies.sort()
            assert latencies[int(len(latencies) * 0.99)] < 0.25, latencies[-20:]
            assert latencies[-1] < 1.0, latencies[-20:]
            # Its queue overflowed, it was closed (1008 if it reads again), its socket reset.
            assert slow_socket_gone(server, slow, within=5)
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(slow.recv(), 10)
            assert closed.value.rcvd is None or closed.value.rcvd.code == 1008
            assert server_rss(server) - before < 40 * 1024 * 1024
            drain.cancel()
            await sender.close()
            await reader.close()

        asyncio.run(main())


def test_a_reader_too_slow_for_the_send_timeout_is_cut_off(tmp_path: Path) -> None:
    history = tmp_path / "h.sqlite3"
    # Queue bounds too high to be reached: only --send-timeout can find this client.
    args = ["--queue-messages", "100000", "--queue-bytes", "64M", "--send-timeout", "1s"]
    with live_server("chat", "--history", str(history), *args, "--rate", "100000/s") as server:

        async def main() -> None:
            url = ws_url(server.url)
            slow = await websockets.connect(url, max_queue=1)
            sender = await websockets.connect(url, subprotocols=[PROTOCOL])
            await until(sender, "joined")
            drain = asyncio.create_task(read_all(sender))
            text = "z" * 3000
            for i in range(1700):  # 5.1 MB: the socket fills, the rest waits in the queue
                await sender.send(json.dumps({"type": "message", "text": f"{i} {text}"}))
            full = time.monotonic()
            assert slow_socket_gone(server, slow, within=10)
            assert time.monotonic() - full < 8
            with pytest.raises(ConnectionClosed):
                while True:
                    await asyncio.wait_for(slow.recv(), 10)
            drain.cancel()
            await sender.close()

        asyncio.run(main())


async def read_all(ws: Any) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for _ in ws:
            pass  # drained until the server closes


def server_rss(server: Any) -> int:
    """Resident bytes of the server's process and its workers (Linux)."""
    pids = [server.proc.pid]
    for status in Path("/proc").glob("[0-9]*/status"):
        with contextlib.suppress(OSError):
            fields = dict(
                line.split(":", 1) for line in status.read_text().splitlines() if ":" in line
            )
            if int(fields.get("PPid", "0")) == server.proc.pid:
                pids.append(int(status.parent.name))
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


def slow_socket_gone(server: Any, client: Any, within: float) -> bool:
    """Whether the server's side of `client`'s connection is gone or has nothing left to send,
    within `within` seconds (Linux's /proc/net/tcp: a socket reset frees its buffers)."""
    port = int(server.url.rsplit(":", 1)[1].strip("/"))
    peer = client.local_address[1]
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        waiting = 0
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            cols = line.split()
            local, remote = cols[1], cols[2]
            if int(local.split(":")[1], 16) == port and int(remote.split(":")[1], 16) == peer:
                waiting += int(cols[4].split(":")[0], 16)
        if waiting == 0:
            return True
        time.sleep(0.1)
    return False


def test_limits_close_with_1013_and_origin_is_checked(tmp_path: Path) -> None:
    history = tmp_path / "h.sqlite3"
    with live_server("chat", "--history", str(history), "--max-per-ip", "2") as server:

        async def main() -> None:
            url = ws_url(server.url)
            a = await websockets.connect(url)
            b = await websockets.connect(url)
            c = await websockets.connect(url)
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(c.recv(), 10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
            assert "too many connections" in closed.value.rcvd.reason
            with pytest.raises(InvalidStatus) as refused:
                await websockets.connect(url, origin="http://evil.example")  # type: ignore[arg-type]
            assert refused.value.response.status_code == 403
            await a.send("x" * 5000)
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(a.recv(), 10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
            await b.close()

        asyncio.run(main())


def test_the_password_gate_covers_the_websocket(tmp_path: Path) -> None:
    history = tmp_path / "h.sqlite3"
    env = {"COMPTOIR_PASSWORD": "sesame-sesame"}
    with live_server("chat", "--history", str(history), "--password", env=env) as server:
        url = ws_url(server.url)

        async def main(cookie: str | None) -> str:
            headers = {"cookie": cookie} if cookie else None
            async with websockets.connect(url, additional_headers=headers) as ws:
                return str(await asyncio.wait_for(ws.recv(), 10))

        with pytest.raises(InvalidStatus):
            asyncio.run(main(None))
        with httpx.Client(base_url=server.url) as http:
            page = http.get("/.comptoir/login").text
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
            assert csrf is not None
            r = http.post(
                "/.comptoir/login",
                data={"csrf_token": csrf.group(1), "next": "/", "password": "sesame-sesame"},
                headers={"origin": server.url.rstrip("/")},
            )
            assert r.status_code in (302, 303), r.text
            cookie = "; ".join(f"{k}={v}" for k, v in http.cookies.items())
        assert asyncio.run(main(cookie)).startswith("* you are in #general")
