"""The hub on its real Unix socket, its worker side in-process (Starlette's TestClient): when the
hub goes away, every connection of the worker is told with close 1011."""

from __future__ import annotations

import asyncio
import threading
import warnings
from pathlib import Path

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from comptoir.app import build_app
from comptoir.config import ServerOptions
from comptoir.sites.chat import ChatOptions
from comptoir.sites.chat.hub import ChatHub
from comptoir.sites.contract import ServiceContext
from tests.conftest import make_config

pytestmark = pytest.mark.timeout(30)


def test_workers_are_told_with_1011_when_the_hub_goes_away(tmp_path: Path) -> None:
    options = ChatOptions(history=tmp_path / "h.sqlite3")
    context = ServiceContext(ServerOptions(), run_dir=tmp_path)
    hub = ChatHub(options, context)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(hub.start(), loop).result(10)
        app = build_app(make_config("chat", options), endpoints=context.endpoints)
        with TestClient(app) as client, client.websocket_connect("/ws") as ws:
            assert ws.receive_text().startswith("* you are in #general with guest")
            ws.send_text("hello")
            assert ws.receive_text().endswith(": hello")
            asyncio.run_coroutine_threadsafe(hub.stop(), loop).result(10)
            message = ws.receive()
            assert message == {
                "type": "websocket.close",
                "code": 1011,
                "reason": "the chat is not available",
            }
            # The HTTP API says so too, without a 500.
            r = client.get("/api/users")
            assert r.status_code == 503
            assert r.json() == {"error": "the chat is not available"}
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_a_hub_only_where_more_than_one_process_needs_the_core(tmp_path: Path) -> None:
    from comptoir.sites.chat import services

    options = ChatOptions(history=tmp_path / "h.sqlite3")
    alone = services(options, ServiceContext(ServerOptions(workers=1), run_dir=tmp_path))
    assert alone == []  # the worker holds the core itself
    two = services(options, ServiceContext(ServerOptions(workers=2), run_dir=tmp_path))
    assert [s.name for s in two] == ["chat"]
    door = ChatOptions(history=tmp_path / "h.sqlite3", tcp=0)
    with_tcp = services(door, ServiceContext(ServerOptions(workers=1), run_dir=tmp_path))
    assert len(with_tcp) == 2  # the TCP door shares the hub's core
