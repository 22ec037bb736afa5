"""Presence in crowded rooms: past PRESENCE_LIVE members, counts instead of one frame to everyone
per arrival (core.py), through the core as every subscriber sees it."""

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
from comptoir.sites.chat import ChatOptions, core
from comptoir.sites.chat.core import ChatCore
from comptoir.sites.chat.history import History
from tests.conftest import make_config


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def crowd(
    tmp_path: Path, live: int, monkeypatch: pytest.MonkeyPatch
) -> tuple[ChatCore, Clock, list[dict[str, Any]]]:
    monkeypatch.setattr(core, "PRESENCE_LIVE", live)
    clock = Clock()
    chat = ChatCore(History(tmp_path / "h.sqlite3"), now=clock)
    events: list[dict[str, Any]] = []
    chat.subscribe(events.append)
    return chat, clock, events


def test_a_room_past_the_limit_gets_counts_at_most_every_few_seconds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat, clock, events = crowd(tmp_path, 3, monkeypatch)
    nicks = [chat.connect(1, f"10.0.0.{i}") for i in range(6)]
    for nick in nicks[:3]:
        assert chat.join(nick, "general")["count"] <= 3
    assert [e["type"] for e in events] == ["join"] * 3
    assert chat.join(nicks[3], "general") == {"count": 4, "members": []}
    # The fourth makes it crowded: a count at once, no join event, no list.
    assert events[-1] == {"type": "presence", "ts": 1_000_000, "room": "general", "count": 4}
    events.clear()
    chat.join(nicks[4], "general")
    chat.join(nicks[5], "general")
    chat.tick()
    assert events == []  # within PRESENCE_EVERY of the last count: nothing yet
    clock.t += core.PRESENCE_EVERY
    chat.tick()
    assert [(e["type"], e["count"]) for e in events] == [("presence", 6)]
    events.clear()
    clock.t += core.PRESENCE_EVERY
    chat.tick()
    assert events == []  # no change, no event
    # Back to three: everyone listed again, then arrivals and departures one by one.
    for nick in nicks[3:]:
        chat.disconnect(nick)
    assert [(e["type"], e["count"]) for e in events] == [("presence", 5)]
    clock.t += core.PRESENCE_EVERY
    chat.tick()
    assert events[-1]["type"] == "presence" and events[-1]["count"] == 3
    assert events[-1]["members"] == sorted(nicks[:3])
    events.clear()
    chat.disconnect(nicks[2])
    assert [(e["type"], e["from"]) for e in events] == [("leave", nicks[2])]
    assert chat.join(nicks[0], "general") == {"count": 2, "members": sorted(nicks[:2])}


def test_clients_in_a_crowded_room_see_its_count_and_can_still_ask_who(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(core, "PRESENCE_LIVE", 2)
    app = build_app(make_config("chat", ChatOptions(history=tmp_path / "h.sqlite3")))
    with TestClient(app) as client, client.websocket_connect("/ws") as a:
        a.receive_text()
        with client.websocket_connect("/ws") as b:
            b.receive_text()
            with client.websocket_connect("/ws", subprotocols=["comptoir.chat.v1"]) as c:
                events = [json.loads(c.receive_text()) for _ in range(2)]
                joined = events[1]
                assert joined["type"] == "joined"
                assert (joined["count"], joined["members"]) == (3, [])
                c.send_text(json.dumps({"type": "who", "room": "general"}))
                who = json.loads(c.receive_text())
                while who["type"] != "who":
                    who = json.loads(c.receive_text())
                assert len(who["members"]) == 3
            with client.websocket_connect("/ws") as d:
                assert d.receive_text() == "* you are in #general, 3 here (/who lists them)"


def test_who_is_kept_sorted_and_follows_every_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat, _, _ = crowd(tmp_path, 100, monkeypatch)
    nicks = [chat.connect(1, f"10.0.0.{i}") for i in range(3)]
    for nick in nicks:
        chat.join(nick, "general")
    first = chat.who("general")
    assert first == sorted(nicks)
    first.clear()  # a caller's copy: the chat's own list is not touched
    assert chat.who("general") == sorted(nicks)
    chat.rename(nicks[0], "zed")
    assert chat.who("general") == sorted([*nicks[1:], "zed"])
    chat.disconnect(nicks[1])
    assert chat.who("general") == sorted([nicks[2], "zed"])
    newcomer = chat.connect(1, "10.0.0.9")
    chat.join(newcomer, "general")
    assert chat.who("general") == sorted([nicks[2], "zed", newcomer])


def test_nobody_is_told_who_types_in_a_crowded_room(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat, _, events = crowd(tmp_path, 2, monkeypatch)
    nicks = [chat.connect(1, f"10.0.0.{i}") for i in range(3)]
    chat.join(nicks[0], "general")
    chat.join(nicks[1], "general")
    chat.typing(nicks[0], "general")
    assert events[-1]["type"] == "typing"
    chat.join(nicks[2], "general")  # now crowded
    events.clear()
    chat.typing(nicks[0], "general")
    assert events == []
