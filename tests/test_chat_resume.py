"""Resuming a connection (`?resume=TOKEN&last_id=N`): the nickname back, and the direct
messages to or from it that were missed — only for the holder of the token, since nicknames are
not accounts (in-process, Starlette's TestClient)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from comptoir.app import build_app
from comptoir.sites.chat import ChatOptions
from tests.conftest import make_config

PROTOCOL = ["comptoir.chat.v1"]
pytestmark = pytest.mark.timeout(30)


def until(ws: Any, kind: str) -> dict[str, Any]:
    for _ in range(100):
        event = json.loads(ws.receive_text())
        if event["type"] == kind:
            return dict(event)
    raise AssertionError(kind)


def send(ws: Any, **frame: Any) -> None:
    ws.send_text(json.dumps(frame))


def named(ws: Any, nick: str) -> None:
    """A connection just made takes `nick`."""
    until(ws, "joined")
    send(ws, type="nick", nick=nick)
    until(ws, "nick")


def test_resume_gives_back_the_nickname_and_the_missed_direct_messages(tmp_path: Path) -> None:
    options = ChatOptions(history=tmp_path / "h.sqlite3")
    with (
        TestClient(build_app(make_config("chat", options))) as client,
        client.websocket_connect("/ws", subprotocols=PROTOCOL) as bob,
    ):
        named(bob, "bob")
        with client.websocket_connect("/ws", subprotocols=PROTOCOL) as ann:
            welcome = until(ann, "welcome")
            token = welcome["resume"]
            assert isinstance(token, str) and len(token) >= 20
            send(ann, type="nick", nick="ann")
            until(ann, "nick")
            send(ann, type="dm", to="bob", text="before")
            seen = until(ann, "dm")["id"]
            # A direct message the server took while ann's connection was still there, but
            # that she did not read: what recovery is for.
            send(bob, type="dm", to="ann", text="as she left")
            until(bob, "dm")
        # ann is gone: nobody can write to her now.
        send(bob, type="dm", to="ann", text="while away")
        assert until(bob, "error")["code"] == "no_such_user"
        send(bob, type="message", text="in the room")
        until(bob, "message")
        # Someone else taking "ann" reads nothing of hers: DMs are not in any history.
        with client.websocket_connect("/ws", subprotocols=PROTOCOL) as other:
            named(other, "ann")
            send(bob, type="dm", to="ann", text="to the new ann")
            assert until(other, "dm")["text"] == "to the new ann"
        # The real ann comes back with her token: her nickname, then what she missed.
        url = f"/ws?resume={token}&last_id={seen}"
        with client.websocket_connect(url, subprotocols=PROTOCOL) as ann:
            welcome = until(ann, "welcome")
            assert welcome["nick"] == "ann" and welcome["resume"] != token
            dms = [until(ann, "dm")]
            assert [d["text"] for d in dms] == ["as she left"]  # not the new ann's
            joined = until(ann, "joined")
            assert joined["room"] == "general"
            assert until(ann, "message")["text"] == "in the room"
            new_token = welcome["resume"]
        # A token resumes once; an unknown one is an error event, the connection goes on.
        with client.websocket_connect(url, subprotocols=PROTOCOL) as again:
            welcome = until(again, "welcome")
            assert welcome["nick"].startswith("guest")
            assert until(again, "error")["code"] == "bad_resume"
            until(again, "joined")
        # The nickname held by someone else: said, and the guest name kept.
        send(bob, type="nick", nick="ann")
        until(bob, "nick")
        with client.websocket_connect(f"/ws?resume={new_token}", subprotocols=PROTOCOL) as c:
            assert until(c, "welcome")["nick"].startswith("guest")
            assert until(c, "error")["code"] == "nick_taken"


def test_a_token_never_reads_what_came_before_its_connection_took_the_nickname(
    tmp_path: Path,
) -> None:
    # The review's attack: alice leaves a direct message unread; mallory takes the free name
    # "alice", leaves, and resumes her own token from id 0: none of alice's messages.
    options = ChatOptions(history=tmp_path / "h.sqlite3")
    with (
        TestClient(build_app(make_config("chat", options))) as client,
        client.websocket_connect("/ws", subprotocols=PROTOCOL) as bob,
    ):
        named(bob, "bob")
        with client.websocket_connect("/ws", subprotocols=PROTOCOL) as alice:
            named(alice, "alice")
            send(bob, type="dm", to="alice", text="SECRET for alice")
            until(bob, "dm")
        with client.websocket_connect("/ws", subprotocols=PROTOCOL) as mallory:
            token = until(mallory, "welcome")["resume"]
            send(mallory, type="nick", nick="alice")
            until(mallory, "nick")
            send(bob, type="dm", to="alice", text="for whoever is alice now")
            until(bob, "dm")
        with client.websocket_connect(
            f"/ws?resume={token}&last_id=0", subprotocols=PROTOCOL
        ) as back:
            assert until(back, "welcome")["nick"] == "alice"
            assert until(back, "dm")["text"] == "for whoever is alice now"
            until(back, "joined")
            send(back, type="ping")
            seen = []
            for _ in range(100):
                event = json.loads(back.receive_text())
                if event["type"] == "pong":
                    break
                seen.append(event)
            assert not [e for e in seen if e.get("type") == "dm"]
