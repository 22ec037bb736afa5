"""What one client may hold (issue 10, item 2), in process: requests in flight per address and in
all (503), a stalled request body (408, an upload's part file removed), the open-files limit and
what granian is given. tests/live/test_limits_live.py holds them against real sockets."""

from __future__ import annotations

import asyncio
import dataclasses
import resource
from pathlib import Path
from typing import Any

import pytest

from comptoir.app import build_app
from comptoir.clientlimits import ClientLimits, PacedBody, client_key
from comptoir.config import Config, ServerOptions
from comptoir.errors import BodyTimeout, HTTPError
from comptoir.openfiles import connections_within, raise_open_files_limit
from comptoir.sites.receive import ReceiveOptions
from comptoir.sites.static import StaticOptions
from comptoir.types import Message, Receive, Scope, Send
from tests.conftest import http_scope, make_config

TOKEN = "t0ken-for-tests_123"


def scope_from(host: str, method: str = "GET", path: str = "/") -> dict[str, Any]:
    scope = http_scope(path, {"host": "testserver"})
    scope["method"] = method
    scope["client"] = (host, 50000)
    return scope


async def nothing_sent() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def ignore(message: Message) -> None:
    """A server's `send` whose messages nobody looks at."""


# -- who counts as one client ------------------------------------------------------------------


def test_an_ipv6_client_is_its_64() -> None:
    assert client_key("192.0.2.7") == "192.0.2.7"
    one = client_key("2001:db8:1:2:aaaa::1")
    assert one == client_key("2001:0db8:0001:0002:ffff:ffff:ffff:ffff")
    assert one != client_key("2001:db8:1:3::1")
    assert client_key("fe80::1%eth0") == client_key("fe80::2")
    # IPv4 through a dual-stack socket is the IPv4 address.
    assert client_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert client_key("not an address:") == "not an address:"


# -- requests in flight ------------------------------------------------------------------------


class Holding:
    """An app whose requests stay in progress until released."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.entered = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.entered += 1
        await self.release.wait()


async def test_one_address_may_hold_so_many_requests_then_503() -> None:
    inner = Holding()
    limits = ClientLimits(inner, per_client=3, in_all=100, body_timeout=30)
    held = [
        asyncio.create_task(limits(scope_from("192.0.2.1"), nothing_sent, ignore)) for _ in range(3)
    ]
    await asyncio.sleep(0)
    assert inner.entered == 3
    with pytest.raises(HTTPError) as refused:
        await limits(scope_from("192.0.2.1"), nothing_sent, ignore)
    assert refused.value.status == 503
    assert refused.value.headers == {"Retry-After": "5", "Connection": "close"}
    assert "this client" in refused.value.message
    # Another address, or another /64, is not this client.
    other = asyncio.create_task(limits(scope_from("192.0.2.2"), nothing_sent, ignore))
    await asyncio.sleep(0)
    assert inner.entered == 4
    inner.release.set()
    await asyncio.gather(*held, other)
    assert limits.counts == {}
    assert limits.in_flight == 0
    # Done, they make room again.
    await limits(scope_from("192.0.2.1"), nothing_sent, ignore)


async def test_the_worker_refuses_beyond_its_connections_in_all() -> None:
    inner = Holding()
    limits = ClientLimits(inner, per_client=10, in_all=2, body_timeout=30)
    held = [
        asyncio.create_task(limits(scope_from(f"192.0.2.{i}"), nothing_sent, ignore))
        for i in (1, 2)
    ]
    await asyncio.sleep(0)
    with pytest.raises(HTTPError) as refused:
        await limits(scope_from("192.0.2.3"), nothing_sent, ignore)
    assert refused.value.status == 503
    assert "the server" in refused.value.message
    inner.release.set()
    await asyncio.gather(*held)


async def test_a_request_that_fails_is_counted_out() -> None:
    async def failing(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("boom")

    limits = ClientLimits(failing, per_client=1, in_all=1, body_timeout=30)
    for _ in range(3):
        with pytest.raises(RuntimeError):
            await limits(scope_from("192.0.2.1"), nothing_sent, ignore)
    assert limits.counts == {}
    assert limits.in_flight == 0


async def test_the_whole_stack_answers_503_and_logs_it(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello")
    lines: list[str] = []
    options = StaticOptions(root=tmp_path)
    config = make_config("static", options, max_client_requests=1, quiet=False)
    app = build_app(config, log_write=lines.append, fast_path=False)
    stalled = asyncio.Event()

    async def slow_reader(message: Message) -> None:
        await stalled.wait()  # a client that does not read its answer

    first = asyncio.create_task(
        app(scope_from("192.0.2.9", path="/a.txt"), nothing_sent, slow_reader)
    )
    await asyncio.sleep(0.01)
    sent: list[Message] = []

    async def keep(message: Message) -> None:
        sent.append(message)

    await app(scope_from("192.0.2.9", path="/a.txt"), nothing_sent, keep)
    assert sent[0]["status"] == 503
    headers = dict(sent[0]["headers"])
    assert headers[b"retry-after"] == b"5"
    assert headers[b"connection"] == b"close"
    assert " 503 " in lines[-1]
    stalled.set()
    await first


def test_a_client_gets_half_the_connections_at_most() -> None:
    from comptoir.clientlimits import client_limits

    limits = client_limits(build_app, ServerOptions(worker_connections=100))  # type: ignore[arg-type]
    assert (limits.per_client, limits.in_all) == (50, 100)
    limits = client_limits(build_app, ServerOptions())  # type: ignore[arg-type]
    assert (limits.per_client, limits.in_all, limits.body_timeout) == (256, 4096, 30)


# -- the pace of a body ------------------------------------------------------------------------


async def test_a_stalled_body_times_out_and_stays_timed_out() -> None:
    gate = asyncio.Event()
    chunks = [{"type": "http.request", "body": b"abc", "more_body": True}]

    async def receive() -> Message:
        if chunks:
            return chunks.pop(0)
        await gate.wait()  # the client sends nothing more
        return {"type": "http.disconnect"}

    paced = PacedBody(receive, 0.05)
    assert (await paced())["body"] == b"abc"
    with pytest.raises(BodyTimeout) as timed_out:
        await paced()
    assert timed_out.value.status == 408
    assert timed_out.value.headers == {"Connection": "close"}
    # Nothing more is read of it: at once, not after another wait.
    with pytest.raises(BodyTimeout):
        await asyncio.wait_for(paced(), 0.01)


async def test_once_the_body_ended_receive_waits_as_long_as_it_takes() -> None:
    # A download watching for the client's disconnect is not a stalled body.
    async def receive() -> Message:
        if not ended:
            ended.append(True)
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.sleep(0.1)
        return {"type": "http.disconnect"}

    ended: list[bool] = []
    paced = PacedBody(receive, 0.02)
    await paced()
    assert (await paced())["type"] == "http.disconnect"


async def test_a_stalled_put_is_408_and_leaves_no_part_file(tmp_path: Path) -> None:
    options = ReceiveOptions(root=tmp_path, token=TOKEN)
    app = build_app(make_config("receive", options, body_timeout=0.05))
    stalled = asyncio.Event()
    sent_body = False

    async def receive() -> Message:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": b"abc", "more_body": True}
        await stalled.wait()  # 3 bytes of a promised 100,000, then nothing
        return {"type": "http.disconnect"}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = scope_from("192.0.2.1", "PUT", f"/{TOKEN}/big.bin")
    scope["headers"].append((b"content-length", b"100000"))
    await asyncio.wait_for(app(scope, receive, send), 5)
    assert sent[0]["status"] == 408
    assert dict(sent[0]["headers"])[b"connection"] == b"close"
    assert b"timed out" in sent[1]["body"]
    assert list(tmp_path.iterdir()) == []


async def test_a_stalled_multipart_upload_is_408_and_leaves_nothing(tmp_path: Path) -> None:
    options = ReceiveOptions(root=tmp_path, token=TOKEN)
    app = build_app(make_config("receive", options, body_timeout=0.05))
    part = b"--BB\r\nContent-Disposition: form-data; name=f; filename=m.bin\r\n\r\n" + b"m" * 500
    messages = [{"type": "http.request", "body": part, "more_body": True}]

    async def receive() -> Message:
        if messages:
            return messages.pop(0)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = scope_from("192.0.2.1", "POST", f"/{TOKEN}/")
    scope["headers"].append((b"content-type", b"multipart/form-data; boundary=BB"))
    await asyncio.wait_for(app(scope, receive, send), 5)
    assert sent[0]["status"] == 408
    assert list(tmp_path.iterdir()) == []


async def test_a_stalled_body_is_408_on_a_starlette_site_too() -> None:
    # Echo reads its bodies through Starlette: the 408 comes out of the adapter all the same.
    from comptoir.sites.echo import EchoOptions

    app = build_app(make_config("echo", EchoOptions(), body_timeout=0.05))
    messages = [{"type": "http.request", "body": b"{", "more_body": True}]

    async def receive() -> Message:
        if messages:
            return messages.pop(0)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = scope_from("192.0.2.1", "POST", "/anything")
    scope["headers"].append((b"content-length", b"1000"))
    await asyncio.wait_for(app(scope, receive, send), 5)
    assert sent[0]["status"] == 408
    assert dict(sent[0]["headers"])[b"connection"] == b"close"


# -- open files and what granian is given ------------------------------------------------------


def test_the_open_files_limit_is_raised_to_the_hard_one() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lower = 256 if hard == resource.RLIM_INFINITY else min(hard, 256)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lower, hard))
    try:
        now = raise_open_files_limit()
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == now
        if hard != resource.RLIM_INFINITY:
            assert now == hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_connections_fit_the_open_files_limit() -> None:
    assert connections_within(4096, None) == 4096
    assert connections_within(4096, 1_048_576) == 4096
    # Four descriptors a connection (its socket; an upload's part file, folder and DIR).
    assert connections_within(4096, 1024) == (1024 - 128) // 4
    assert connections_within(4096, 100) == 16
    # A kind whose connections hold only their socket (chat, echo) fits four times as many.
    assert connections_within(20_000, 20_000, per_connection=1) == 20_000 - 128


def test_a_low_limit_cuts_worker_connections_and_says_so_when_asked_for(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    from comptoir import server as server_module

    monkeypatch.setattr(server_module, "raise_open_files_limit", lambda: 1024)
    server = server_module.Server(Config(server=ServerOptions(worker_connections=1000)))
    server._fit_open_files()
    assert server.config.server.worker_connections == 224
    assert "allows 224 connections per worker, not 1000" in capfd.readouterr().err
    # The default is cut to fit without a word.
    server = server_module.Server(Config())
    server._fit_open_files()
    assert server.config.server.worker_connections == 224
    assert capfd.readouterr().err == ""
    monkeypatch.setattr(server_module, "raise_open_files_limit", lambda: 1_048_576)
    server = server_module.Server(Config())
    server._fit_open_files()
    assert server.config.server == ServerOptions()


def test_sites_whose_connections_hold_only_their_socket_fit_more_of_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from comptoir import server as server_module
    from comptoir.sites.chat import ChatOptions

    monkeypatch.setattr(server_module, "raise_open_files_limit", lambda: 20_000)
    chat = make_config(
        "chat", ChatOptions(history=tmp_path / "h.sqlite3"), worker_connections=10_512
    )
    server = server_module.Server(chat)
    server._fit_open_files()
    assert server.config.server.worker_connections == 10_512
    # With a site receiving uploads beside it, four descriptors a connection again.
    both = dataclasses.replace(
        chat, sites=(*chat.sites, *make_config("receive", ReceiveOptions(root=tmp_path)).sites)
    )
    server = server_module.Server(both)
    server._fit_open_files()
    assert server.config.server.worker_connections == (20_000 - 128) // 4


def test_granian_is_given_the_caps_and_the_header_timeout(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import socket

    from granian.server import mp

    from comptoir.server import WorkerSetup, _run_granian

    given: dict[str, Any] = {}

    def capture(self: object, **kwargs: object) -> None:
        given.update(kwargs)

    monkeypatch.setattr(mp.MPServer, "__init__", capture)
    monkeypatch.setattr(mp.MPServer, "serve", lambda self, **kwargs: None, raising=False)
    config = Config(server=ServerOptions(worker_connections=5000, header_timeout=7.5))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        _run_granian(config, sock, WorkerSetup("", tmp_path, {}))
    # Per worker, whatever their number (granian's default divides the backlog among them).
    assert given["backpressure"] == 5000
    assert given["http1_settings"].header_read_timeout == 7500
    assert given["http2_settings"].keep_alive_interval == 7500
