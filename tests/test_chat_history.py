"""The chat's history: recovery with last_id (exactly what was missed, or `truncated`), retention,
and the HTTP API beside the WebSocket."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import httpx
import pytest

from comptoir.app import build_app
from comptoir.sites.chat import ChatOptions
from comptoir.sites.chat.history import History
from tests.conftest import asgi_client, make_config

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette's TestClient asks for `httpx2`
    from starlette.testclient import TestClient

PROTOCOL = ["comptoir.chat.v1"]
pytestmark = pytest.mark.timeout(30)


def frames(ws: Any, until: str) -> list[dict[str, Any]]:
    out = []
    for _ in range(10_000):
        event = json.loads(ws.receive_text())
        out.append(event)
        if event["type"] == until:
            return out
    raise AssertionError(until)


def post(ws: Any, text: str) -> int:
    ws.send_text(json.dumps({"type": "message", "text": text}))
    return int(frames(ws, "message")[-1]["id"])


def test_rejoin_with_last_id_gets_exactly_what_was_missed(tmp_path: Path) -> None:
    options = ChatOptions(history=tmp_path / "h.sqlite3")
    with (
        TestClient(build_app(make_config("chat", options))) as client,
        client.websocket_connect("/ws", subprotocols=PROTOCOL) as writer,
    ):
        frames(writer, "joined")
        before = [post(writer, f"old {i}") for i in range(3)]
        # A reader was there up to `before[-1]`, then went away while 7 more were sent.
        missed = [post(writer, f"missed {i}") for i in range(7)]
        with client.websocket_connect(f"/ws?last_id={before[-1]}", subprotocols=PROTOCOL) as reader:
            got = frames(reader, "joined")
            got = [json.loads(reader.receive_text()) for _ in missed]
            assert [e["id"] for e in got] == missed
            assert [e["text"] for e in got] == [f"missed {i}" for i in range(7)]
            live = post(writer, "live")
            nxt = json.loads(reader.receive_text())
            assert (nxt["type"], nxt["id"]) == ("message", live)  # no duplicate, no gap
            # The same with a join frame, and nothing missed: nothing replayed.
            reader.send_text(json.dumps({"type": "join", "room": "general", "last_id": live}))
            frames(reader, "joined")
            reader.send_text(json.dumps({"type": "ping"}))
            assert json.loads(reader.receive_text())["type"] == "pong"


def test_a_gap_retention_removed_is_marked_truncated(tmp_path: Path) -> None:
    options = ChatOptions(history=tmp_path / "h.sqlite3", keep=5, rate="10000/s")
    with (
        TestClient(build_app(make_config("chat", options))) as client,
        client.websocket_connect("/ws", subprotocols=PROTOCOL) as writer,
    ):
        frames(writer, "joined")
        first = post(writer, "first")
        for i in range(300):  # retention runs every 200 writes
            post(writer, f"m{i}")
        with client.websocket_connect(f"/ws?last_id={first}", subprotocols=PROTOCOL) as r:
            frames(r, "joined")
            marker = json.loads(r.receive_text())
            assert marker["type"] == "truncated" and marker["last_id"] == first
            rest = [json.loads(r.receive_text())]
            while rest[-1]["text"] != "m299":
                rest.append(json.loads(r.receive_text()))
            # The recent history instead, from the id the marker names.
            assert marker["first_id"] == rest[0]["id"] and len(rest) == 50


def test_plain_client_recovers_lines(tmp_path: Path) -> None:
    options = ChatOptions(history=tmp_path / "h.sqlite3")
    with (
        TestClient(build_app(make_config("chat", options))) as client,
        client.websocket_connect("/ws") as john,
    ):
        john.receive_text()
        john.send_text("/nick john")
        john.receive_text()
        for text in ("a", "b", "c"):
            john.send_text(text)
            john.receive_text()
        history = History(tmp_path / "h.sqlite3", writer=False)
        first = history.recent("general", 3)[0]["id"]
        with client.websocket_connect(f"/ws?last_id={first}") as back:
            assert back.receive_text().startswith("* you are in #general")
            assert [back.receive_text(), back.receive_text()] == ["john: b", "john: c"]


def test_history_survives_a_restart_and_ids_keep_growing(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    h = History(path)
    a = h.append("general", "ann", "one")
    h.close()
    h = History(path)
    b = h.append("general", "ann", "two")
    assert b["id"] > a["id"] and [e["text"] for e in h.recent("general", 10)] == ["one", "two"]


def test_age_retention(tmp_path: Path) -> None:
    now = [1_000_000.0]
    h = History(tmp_path / "h.sqlite3", keep_for=60, now=lambda: now[0])
    old = h.append("general", "ann", "old")
    now[0] += 120
    h.append("general", "ann", "new")
    h.prune()
    assert [e["text"] for e in h.recent("general", 10)] == ["new"]
    assert h.pruned_upto("general") == old["id"]


@pytest.fixture
def api(tmp_path: Path) -> httpx.AsyncClient:
    options = ChatOptions(history=tmp_path / "h.sqlite3", rooms=("general", "dev"))
    return asgi_client(build_app(make_config("chat", options)))


async def test_http_api(api: httpx.AsyncClient) -> None:
    async with api:
        rooms = (await api.get("/api/rooms")).json()["rooms"]
        assert [r["name"] for r in rooms] == ["dev", "general"]
        r = await api.post("/api/rooms/dev/messages", json={"text": "hi <b>", "nick": "bot"})
        assert r.status_code == 201 and r.json()["text"] == "hi <b>" and r.json()["from"] == "bot"
        r = await api.post("/api/rooms/dev/messages", json={"text": "two", "nick": "bot"})
        page = (await api.get("/api/rooms/dev/messages")).json()
        assert [m["text"] for m in page["messages"]] == ["hi <b>", "two"]
        first = page["messages"][0]["id"]
        page = (await api.get(f"/api/rooms/dev/messages?after={first}")).json()
        assert [m["text"] for m in page["messages"]] == ["two"]
        assert (await api.get("/api/users")).json() == {"users": []}
        for method, url, kwargs, status in [
            ("GET", "/api/rooms/nowhere/messages", {}, 404),
            ("GET", "/api/rooms/dev/messages?after=-1", {}, 400),
            ("GET", "/api/rooms/a%20b/messages", {}, 400),
            ("POST", "/api/rooms/dev/messages", {"content": b"text"}, 415),
            ("POST", "/api/rooms/dev/messages", {"json": [1]}, 400),
            ("POST", "/api/rooms/dev/messages", {"json": {"text": "x"}}, 400),
            ("POST", "/api/rooms/dev/messages", {"json": {"text": "", "nick": "a"}}, 400),
            ("POST", "/api/rooms/dev/messages", {"json": {"text": "x", "nick": "a b"}}, 400),
            ("POST", "/api/rooms/dev/messages", {"json": {"text": "x" * 9000, "nick": "a"}}, 413),
        ]:
            r = await api.request(method, url, **kwargs)
            assert r.status_code == status, (url, kwargs, r.text)
            assert "error" in r.json()


def test_http_post_is_delivered_live(tmp_path: Path) -> None:
    options = ChatOptions(history=tmp_path / "h.sqlite3")
    with (
        TestClient(build_app(make_config("chat", options))) as client,
        client.websocket_connect("/ws") as ws,
    ):
        ws.receive_text()
        r = client.post("/api/rooms/general/messages", json={"text": "from curl", "nick": "bot"})
        assert r.status_code == 201
        assert ws.receive_text() == "bot: from curl"
        users = client.get("/api/users").json()["users"]
        assert users == [{"nick": "guest1", "rooms": ["general"]}]
        r = client.post("/api/rooms/general/messages", json={"text": "x", "nick": "GUEST1"})
        assert r.status_code == 409
        messages = client.get("/api/rooms/general/messages").json()["messages"]
        assert messages[-1]["text"] == "from curl" and messages[-1]["from"] == "bot"
        # The page is the browser's client (web/static/chat.js), which reads the same history.
        page = client.get("/", headers={"accept": "text/html"})
        assert page.status_code == 200 and "chat.js" in page.text


def test_http_posts_are_held_to_the_rate_and_new_rooms_to_the_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from comptoir.sites.chat import core

    monkeypatch.setattr(core, "MAX_ROOMS", 2)  # general, and one more
    options = ChatOptions(history=tmp_path / "h.sqlite3", rate="3/s")
    with TestClient(build_app(make_config("chat", options))) as client:
        answers = [
            client.post("/api/rooms/general/messages", json={"text": f"{i}", "nick": "bot"})
            for i in range(5)
        ]
        assert [r.status_code for r in answers][:3] == [201, 201, 201]
        refused = answers[-1]
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        assert "3/s" in refused.json()["error"]
    with TestClient(
        build_app(make_config("chat", ChatOptions(history=tmp_path / "i.sqlite3")))
    ) as client:
        assert (
            client.post("/api/rooms/one/messages", json={"text": "x", "nick": "a"}).status_code
            == 201
        )
        full = client.post("/api/rooms/two/messages", json={"text": "x", "nick": "a"})
        assert full.status_code == 409 and "rooms" in full.json()["error"]
