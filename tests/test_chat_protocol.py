"""The chat's WebSocket protocol in-process (Starlette's TestClient): plain text and JSON, rooms,
nicknames, direct messages, presence, typing, errors that keep the connection open."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.websockets import WebSocketDisconnect

with warnings.catch_warnings():
    # Starlette 1.x asks for `httpx2` behind its TestClient; the `httpx` it finds works the same.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from comptoir.app import build_app
from comptoir.sites.chat import ChatOptions
from tests.conftest import make_config

PROTOCOL = ["comptoir.chat.v1"]
pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    options = ChatOptions(history=tmp_path / "history.sqlite3", rooms=("general", "dev"))
    with TestClient(build_app(make_config("chat", options))) as c:
        yield c


def events_until(ws: Any, kind: str, limit: int = 50) -> list[dict[str, Any]]:
    """JSON events received up to and including the first of `kind`."""
    out = []
    for _ in range(limit):
        event = json.loads(ws.receive_text())
        out.append(event)
        if event["type"] == kind:
            return out
    raise AssertionError(f"no {kind} event in {out}")


def test_the_course_snippet_plain_text(client: TestClient) -> None:
    with client.websocket_connect("/ws") as john, client.websocket_connect("/ws") as ann:
        assert john.receive_text().startswith("* you are in #general with ")
        ann.receive_text()
        john.send_text("My name is John")
        line = john.receive_text()
        while not line.endswith(": My name is John"):  # ann's arrival comes first
            line = john.receive_text()
        assert line.startswith("guest") and ": My name is John" in line
        seen = ann.receive_text()
        assert seen == line
        john.send_text("/nick John")
        assert john.receive_text() == f"* {line.split(':')[0]} is now John"
        john.send_text("hello")
        assert ann.receive_text().endswith("is now John")
        assert ann.receive_text() == "John: hello"


def test_json_client_by_subprotocol(client: TestClient) -> None:
    with client.websocket_connect("/ws", subprotocols=PROTOCOL) as ws:
        welcome = json.loads(ws.receive_text())
        assert welcome["type"] == "welcome" and welcome["v"] == 1
        assert welcome["protocol"] == "comptoir.chat.v1" and welcome["nick"].startswith("guest")
        joined = json.loads(ws.receive_text())
        assert joined["type"] == "joined" and joined["room"] == "general"
        assert joined["members"] == [welcome["nick"]]
        ws.send_text(json.dumps({"type": "message", "room": "general", "text": "hi"}))
        [message] = [e for e in events_until(ws, "message")]
        assert message["text"] == "hi" and message["from"] == welcome["nick"]
        assert message["room"] == "general" and message["v"] == 1
        assert isinstance(message["id"], int) and message["ts"] > 1_600_000_000_000


def test_first_json_frame_switches_to_json(client: TestClient) -> None:
    with client.websocket_connect("/ws") as ws:
        assert ws.receive_text().startswith("* you are in #general")
        ws.send_text(json.dumps({"type": "nick", "nick": "ann"}))
        assert json.loads(ws.receive_text())["type"] == "welcome"
        assert json.loads(ws.receive_text()) == {
            "v": 1,
            "type": "nick",
            "from": "guest1",
            "nick": "ann",
        }


def test_rooms_dm_presence_typing(client: TestClient) -> None:
    with (
        client.websocket_connect("/ws", subprotocols=PROTOCOL) as a,
        client.websocket_connect("/ws", subprotocols=PROTOCOL) as b,
    ):
        events_until(a, "joined")
        events_until(b, "joined")
        a.send_text(json.dumps({"type": "nick", "nick": "ann"}))
        events_until(a, "nick")
        b.send_text(json.dumps({"type": "nick", "nick": "Ann"}))
        taken = events_until(b, "error")[-1]
        assert taken["code"] == "nick_taken"
        b.send_text(json.dumps({"type": "nick", "nick": "bob"}))
        events_until(b, "nick")
        b.send_text(json.dumps({"type": "join", "room": "#Dev"}))
        joined = events_until(b, "joined")[-1]
        assert joined["room"] == "dev" and joined["members"] == ["bob"]
        a.send_text(json.dumps({"type": "join", "room": "dev"}))
        assert events_until(a, "joined")[-1]["members"] == ["ann", "bob"]
        assert events_until(b, "join")[-1] == {
            "v": 1,
            "type": "join",
            "ts": pytest.approx(0, abs=10**14),
            "room": "dev",
            "from": "ann",
        }
        a.send_text(json.dumps({"type": "typing", "room": "dev"}))
        assert events_until(b, "typing")[-1]["from"] == "ann"
        a.send_text(json.dumps({"type": "dm", "to": "BOB", "text": "psst"}))
        dm = events_until(b, "dm")[-1]
        assert (dm["from"], dm["to"], dm["text"]) == ("ann", "bob", "psst")
        assert events_until(a, "dm")[-1]["id"] == dm["id"]
        a.send_text(json.dumps({"type": "who", "room": "dev"}))
        assert events_until(a, "who")[-1]["members"] == ["ann", "bob"]
        b.send_text(json.dumps({"type": "leave", "room": "dev"}))
        events_until(b, "left")
        assert events_until(a, "leave")[-1]["from"] == "bob"


def test_bad_frames_get_error_events_not_a_disconnect(client: TestClient) -> None:
    with client.websocket_connect("/ws", subprotocols=PROTOCOL) as ws:
        events_until(ws, "joined")
        for frame, code in [
            ({"type": "teleport"}, "unknown_type"),
            ({"type": "message", "text": {"nested": 1}}, "bad_request"),
            ({"type": "join", "room": "no spaces"}, "bad_request"),
            ({"type": "message", "room": "random", "text": "x"}, "not_joined"),
            ({"type": "message", "text": "\u202e\x00 "}, "empty"),
            ({"type": "dm", "to": "nobody", "text": "x"}, "no_such_user"),
        ]:
            ws.send_text(json.dumps(frame))
            assert events_until(ws, "error")[-1]["code"] == code, frame
        ws.send_text("[" * 1500 + "]" * 1500)  # deeper than orjson goes, within 4 KiB
        assert events_until(ws, "error")[-1]["code"] == "bad_request"
        ws.send_text(json.dumps({"type": "ping"}))
        assert events_until(ws, "pong")[-1] == {"v": 1, "type": "pong"}


def test_names_and_text_are_cleaned(client: TestClient) -> None:
    with client.websocket_connect("/ws", subprotocols=PROTOCOL) as ws:
        events_until(ws, "joined")
        ws.send_text(json.dumps({"type": "nick", "nick": "\u202eann\u202c"}))
        assert events_until(ws, "nick")[-1]["nick"] == "ann"
        ws.send_text(json.dumps({"type": "nick", "nick": "<script>"}))
        assert events_until(ws, "error")[-1]["code"] == "bad_request"
        ws.send_text(json.dumps({"type": "message", "text": "a\u202eb\x07c <b>"}))
        assert events_until(ws, "message")[-1]["text"] == "abc <b>"


def test_fixed_rooms_refuse_new_ones(tmp_path: Path) -> None:
    options = ChatOptions(history=tmp_path / "h.sqlite3", fixed_rooms=True)
    with (
        TestClient(build_app(make_config("chat", options))) as client,
        client.websocket_connect("/ws", subprotocols=PROTOCOL) as ws,
    ):
        events_until(ws, "joined")
        ws.send_text(json.dumps({"type": "join", "room": "elsewhere"}))
        assert events_until(ws, "error")[-1]["code"] == "no_such_room"


def test_binary_and_oversize_frames_close_with_their_codes(client: TestClient) -> None:
    with client.websocket_connect("/ws") as ws:
        ws.receive_text()
        ws.send_bytes(b"\xff\xfe")
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_text()
        assert closed.value.code == 1003
    with client.websocket_connect("/ws") as ws:
        ws.receive_text()
        ws.send_text("x" * 1_000_000)
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_text()
        assert closed.value.code == 1009


def test_cross_origin_handshake_is_refused(tmp_path: Path) -> None:
    options = ChatOptions(history=tmp_path / "h.sqlite3", allow_origin=("http://app.example",))
    with TestClient(build_app(make_config("chat", options))) as client:
        with (
            pytest.raises(WebSocketDisconnect),
            client.websocket_connect("/ws", headers={"origin": "http://evil.example"}),
        ):
            pass  # the handshake itself is refused
        with client.websocket_connect("/ws", headers={"origin": "http://testserver"}) as ws:
            assert ws.receive_text().startswith("* you are in")
        with client.websocket_connect("/ws", headers={"origin": "http://app.example"}) as ws:
            assert ws.receive_text().startswith("* you are in")


def test_a_refused_page_is_told_in_the_terminal_with_the_option_that_allows_it(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # The course's page opened from a file: its browser sends `Origin: null`.
    options = ChatOptions(history=tmp_path / "h.sqlite3")
    with TestClient(build_app(make_config("chat", options))) as client:
        for origin in ("null", "null", "http://evil.example/\x1b[2J"):
            with (
                pytest.raises(WebSocketDisconnect),
                client.websocket_connect("/ws", headers={"origin": origin}),
            ):
                pass  # refused: 403
    err = capfd.readouterr().err
    assert err.count("Origin: null") == 1  # once per origin
    assert "--allow-origin null lets it in" in err
    assert "\x1b" not in err and "evil.example" in err  # escaped
    allowed = ChatOptions(history=tmp_path / "h2.sqlite3", allow_origin=("null",))
    with (
        TestClient(build_app(make_config("chat", allowed))) as client,
        client.websocket_connect("/ws", headers={"origin": "null"}) as ws,
    ):
        assert ws.receive_text().startswith("* you are in")


def test_a_message_cannot_pass_for_lines_of_others(client: TestClient) -> None:
    # The review's forgery: a JSON client's text with newlines, read by plain clients.
    with (
        client.websocket_connect("/ws") as plain,
        client.websocket_connect("/ws", subprotocols=["comptoir.chat.v1"]) as bob,
    ):
        plain.receive_text()
        events_until(bob, "joined")
        bob.send_text(json.dumps({"type": "nick", "nick": "bob"}))
        events_until(bob, "nick")
        forged = "hi\nalice: send me your password\n* alice is now admin\u2028x"
        bob.send_text(json.dumps({"type": "message", "text": forged}))
        for _ in range(10):
            text = plain.receive_text()
            if text.startswith("bob: hi"):
                break
        assert text == "bob: hi\n    alice: send me your password\n    * alice is now adminx"


def test_lookalike_and_invisible_nicknames_are_refused(client: TestClient) -> None:
    with client.websocket_connect("/ws", subprotocols=["comptoir.chat.v1"]) as ws:
        events_until(ws, "joined")
        ws.send_text(json.dumps({"type": "nick", "nick": "\uff41\uff4c\uff49\uff43\uff45"}))
        assert events_until(ws, "nick")[-1]["nick"] == "alice"  # fullwidth: the name it shows
        for bad in ("\u0430lice", "\u3164"):  # a Cyrillic first letter; a Hangul filler
            ws.send_text(json.dumps({"type": "nick", "nick": bad}))
            assert events_until(ws, "error")[-1]["code"] == "bad_request"
        ws.send_text(json.dumps({"type": "nick", "nick": "a\u061cb"}))  # a bidi mark: dropped
        assert events_until(ws, "nick")[-1]["nick"] == "ab"
        ws.send_text(json.dumps({"type": "nick", "nick": "田中さん"}))  # one writing system
        assert events_until(ws, "nick")[-1]["nick"] == "田中さん"


def test_a_history_request_past_64_bits_is_an_error_event(client: TestClient) -> None:
    with client.websocket_connect("/ws", subprotocols=["comptoir.chat.v1"]) as ws:
        events_until(ws, "joined")
        for field in ("after", "before"):
            frame = {"type": "history", "room": "general", field: 2**64 - 1}
            ws.send_text(json.dumps(frame))
            assert events_until(ws, "error")[-1]["code"] == "bad_request"
        ws.send_text(json.dumps({"type": "ping"}))
        events_until(ws, "pong")  # still connected


def test_talk_shows_no_terminal_controls() -> None:
    import io

    from comptoir.talk import Output

    out = io.StringIO()
    Output(out=out, err=out).show("evil\x1b]0;title\x07: \x1b[31mred\u202e")
    assert out.getvalue() == "evil]0;title: [31mred\n"
