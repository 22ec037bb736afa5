"""The chat on a real server (granian, 127.0.0.1, port 0), with the `websockets` library as the
client: several workers, raw TCP, a slow consumer, connection limits, the password."""

from __future__ import annotations

import asyncio
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


@pytest.mark.xfail(
    strict=True,
    reason="known gap: once a non-reading client's socket buffers are full (about 4 MB on "
    "loopback), granian's WebSocket send stalls the whole worker, so the bounded queue never "
    "gets the chance to overflow and close it (investigation pending)",
)
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
            text = "y" * 3000
            started = time.monotonic()
            for i in range(1500):  # 4.5 MB: more than the kernel's buffers hold
                await sender.send(json.dumps({"type": "message", "text": f"{i} {text}"}))
                event = await until(reader, "message")
                assert event["text"].startswith(f"{i} ")
            took = time.monotonic() - started
            assert took < 15, took
            # The slow one was closed with 1008 once its queue was full.
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(slow.recv(), 10)
            assert closed.value.rcvd is None or closed.value.rcvd.code == 1008
            await sender.close()
            await reader.close()

        asyncio.run(main())


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
