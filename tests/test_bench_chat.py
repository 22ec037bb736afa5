"""bench/chat_load.py reads its mark in whatever frame a server makes of a message (no timing)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
chat_load = pytest.importorskip("chat_load")


@pytest.mark.parametrize(
    "frame",
    [
        "{text}",  # the bare broadcast server: the text as sent
        "guest12: {text}",  # comptoir's plain line
        json.dumps(  # comptoir's JSON event
            {"v": 1, "type": "message", "id": 7, "from": "guest3", "text": "{text}"}
        ),
    ],
)
def test_a_delivery_is_found_in_any_frame(frame: str) -> None:
    text = chat_load.marked(3, 41, 32)
    sent = int(text.split("~")[2])
    stats = chat_load.Stats()
    stats.record(frame.replace("{text}", text).encode(), sent + 5_000_000)
    assert stats.count == {3: 1}
    assert stats.latency == {3: [5_000_000]}
    assert len(text) == 32


def test_other_frames_are_not_deliveries() -> None:
    stats = chat_load.Stats()
    stats.record(b'{"v":1,"type":"join","room":"general","from":"guest9"}', 0)
    stats.record(b'{"v":1,"type":"error","code":"rate_limited","message":"slow down"}', 0)
    assert stats.count == {}
    assert stats.rate_limited == 1
    assert stats.frames == 2


def test_percentiles_in_milliseconds() -> None:
    values = [i * 1_000_000 for i in range(1, 101)]
    assert chat_load.percentile(values, 0.99) == 99.0
    assert chat_load.percentile(values, 1.0) == 100.0
    assert chat_load.percentile([], 0.99) is None


def test_clients_come_from_many_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chat_load, "_opened", 0)
    monkeypatch.setattr(chat_load, "PER_ADDRESS", 2)
    sources = [chat_load.next_source() for _ in range(5)]
    assert sources == ["127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.3", "127.0.0.4"]
    monkeypatch.setattr(chat_load, "_opened", 2 * 300)
    assert chat_load.next_source() == "127.0.1.46"
