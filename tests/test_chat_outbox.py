"""A connection's way out (outbox.py) and the fan-out around it, with the server's send faked:
the frames granian has in flight are the queue, a slow reader is found by the bounds or by the
send timeout, and one connection's failure stays its own."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from comptoir.sites.chat import outbox as outbox_module
from comptoir.sites.chat.fanout import Fanout
from comptoir.sites.chat.outbox import DirectOutbox
from comptoir.sites.chat.protocol import Outgoing


class Flight:
    """What granian's send returns: a write in progress, done when the client took it."""

    def __init__(self) -> None:
        self.finished = False
        self.cancelled = False

    def done(self) -> bool:
        return self.finished or self.cancelled

    def cancel(self) -> bool:
        self.cancelled = True
        return True


class Server:
    def __init__(self) -> None:
        self.flights: list[tuple[str, Flight]] = []
        self.ready_made = False  # answer as granian does once the connection is closing

    def send(self, message: dict[str, Any]) -> Any:
        if self.ready_made:
            return object()  # granian's PyEmptyAwaitable: no done(), nothing in flight
        flight = Flight()
        self.flights.append((message["text"], flight))
        return flight

    def deliver(self, count: int) -> None:
        for _, flight in self.flights[:count]:
            flight.finished = True
        self.flights = self.flights[count:]


async def test_frames_go_at_once_and_those_delivered_make_room() -> None:
    server = Server()
    box = DirectOutbox(server.send, max_bytes=1000, max_frames=3, timeout=10)  # type: ignore[arg-type]
    assert box.put("a") and box.put("b") and box.put("c")
    assert [text for text, _ in server.flights] == ["a", "b", "c"]  # handed over, in order
    server.deliver(2)
    assert box.put("d") and box.put("e")  # two went: room for two
    assert not box.overflowed
    assert not box.put("f")  # a fourth waiting: the client is too slow
    assert box.overflowed
    assert all(flight.cancelled for _, flight in server.flights)  # granian drops the writes


async def test_bytes_bound_too_and_one_large_frame_still_goes_alone() -> None:
    server = Server()
    box = DirectOutbox(server.send, max_bytes=10, max_frames=100, timeout=10)  # type: ignore[arg-type]
    assert box.put("x" * 50)  # nothing waits: it goes whatever its size
    server.deliver(1)
    assert box.put("y" * 6)
    assert not box.put("z" * 5)  # 11 bytes waiting
    assert box.overflowed


async def test_a_write_that_does_not_move_for_the_timeout_is_a_slow_reader(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [100.0]
    monkeypatch.setattr(outbox_module.time, "monotonic", lambda: now[0])
    server = Server()
    box = DirectOutbox(server.send, max_bytes=10_000, max_frames=100, timeout=5)  # type: ignore[arg-type]
    box.put("a")
    box.put("b")
    now[0] += 4
    server.deliver(1)  # one went: the clock starts again from there
    box.check(now[0])
    now[0] += 4
    box.check(now[0])
    assert not box.overflowed
    now[0] += 1.5
    box.check(now[0])
    assert box.overflowed


async def test_a_ready_made_answer_is_not_kept_in_flight() -> None:
    server = Server()
    box = DirectOutbox(server.send, max_bytes=1000, max_frames=2, timeout=10)  # type: ignore[arg-type]
    server.ready_made = True
    for _ in range(10):
        assert box.put("late")  # the connection is closing: nothing piles up
    assert not box.overflowed and box.waiting() == 0


async def test_replies_wait_for_room_rather_than_cut_the_client_off() -> None:
    server = Server()
    box = DirectOutbox(server.send, max_bytes=1000, max_frames=2, timeout=10)  # type: ignore[arg-type]
    await box.put_wait("1")
    await box.put_wait("2")

    class Awaitable(Flight):
        """A flight that can be awaited, as granian's can (one callback)."""

        _asyncio_future_blocking = False

        def __init__(self) -> None:
            super().__init__()
            self.callbacks: list[Any] = []
            self.loop = asyncio.get_running_loop()

        def get_loop(self) -> asyncio.AbstractEventLoop:
            return self.loop

        def add_done_callback(self, cb: Any, context: Any = None) -> None:
            self.callbacks.append(cb)

        def remove_done_callback(self, cb: Any) -> int:
            return 1

        def __await__(self) -> Any:
            yield self

        def finish(self) -> None:
            self.finished = True
            for cb in self.callbacks:
                self.loop.call_soon(cb, self)

    first = Awaitable()
    box.flying[0] = first
    third = asyncio.create_task(box.put_wait("3"))
    await asyncio.sleep(0.01)
    assert not third.done()  # two in flight: it waits
    first.finish()
    await asyncio.wait_for(third, 1)
    assert [text for text, _ in server.flights][-1] == "3"
    assert not box.overflowed


class Peer:
    def __init__(self, nick: str, fail: bool = False) -> None:
        self.nick = nick
        self.fail = fail
        self.got: list[Outgoing] = []
        self.closed: tuple[int, str] | None = None

    def receive(self, out: Outgoing) -> None:
        if self.fail:
            raise RuntimeError("broken")
        self.got.append(out)

    def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


def test_one_connection_failing_is_cut_off_alone(capfd: pytest.CaptureFixture[str]) -> None:
    fanout = Fanout()
    peers = [Peer("a"), Peer("b", fail=True), Peer("c")]
    for peer in peers:
        fanout.add(peer)
        fanout.enter(peer, "general")
    event = {"type": "message", "id": 1, "ts": 0, "room": "general", "from": "a", "text": "hi"}
    fanout.deliver(event)
    assert [len(p.got) for p in peers] == [1, 0, 1]
    assert peers[1].closed == (1011, "internal error")
    assert "RuntimeError: broken" in capfd.readouterr().err
