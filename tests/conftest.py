"""Shared fixtures: an in-process client for HTTP semantics, a real server for sockets and CLI."""

from __future__ import annotations

import asyncio
import contextlib
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from comptoir.app import build_app
from comptoir.config import Config, ServerOptions, SiteConfig
from comptoir.types import ASGIApp, Message

# The api kind's cache of parsed tables (sites/api/cache.py): a folder of this run's, for this
# process and the servers it starts, never the user's own cache.
_CACHE = tempfile.TemporaryDirectory(prefix="comptoir-test-cache-")
os.environ["COMPTOIR_CACHE_DIR"] = _CACHE.name


def make_config(kind: str, options: Any, **server: Any) -> Config:
    """A one-site Config at the root, as the kind's CLI command would build it."""
    server.setdefault("quiet", True)
    return Config(server=ServerOptions(**server), sites=(SiteConfig(kind, options, name=kind),))


def http_scope(path: str, headers: dict[str, str], *, pathsend: bool = False) -> dict[str, Any]:
    """The scope a server gives an app for `GET path` from 127.0.0.1 (for tests that drive the
    ASGI messages themselves: a client that leaves at a chosen byte)."""
    return {
        "type": "http",
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.encode(), v.encode()) for k, v in {"accept": "*/*", **headers}.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "extensions": {"http.response.pathsend": {}} if pathsend else {},
    }


async def leaving_client(
    app: ASGIApp, scope: dict[str, Any], leaves: Callable[[Message, bytes], bool]
) -> tuple[Message, bytes]:
    """GET through `app` as a client that hangs up as soon as `leaves(start, body so far)` says
    so (a disconnect from `receive()`, before any later message); (the start message, the body).
    """
    gone = asyncio.Event()
    asked = False
    start: Message = {}
    body = bytearray()

    async def receive() -> Message:
        nonlocal asked
        if not asked:
            asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            start = message
        elif message["type"] == "http.response.body" and message.get("body"):
            body.extend(message["body"])
            if leaves(start, bytes(body)):
                gone.set()

    await asyncio.wait_for(app(scope, receive, send), 10)
    return start, bytes(body)


def asgi_client(app: ASGIApp, base_url: str = "http://testserver") -> httpx.AsyncClient:
    """An httpx client talking to an ASGI app in-process."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


@pytest.fixture
def client_for() -> Callable[[Config], httpx.AsyncClient]:
    """Build the app of a Config and return an in-process client for it."""

    def make(config: Config) -> httpx.AsyncClient:
        return asgi_client(build_app(config))

    return make


@dataclass
class LiveServer:
    """A `comptoir` process started from the real CLI."""

    proc: subprocess.Popen[bytes]
    urls: list[str]
    stderr_lines: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The first URL printed (the primary one)."""
        return self.urls[0]

    def stop(self, sig: int = signal.SIGINT, timeout: float = 20) -> int:
        """Signal the server and wait for it to exit; return its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def read_stderr(self) -> str:
        """What the server wrote on stderr (call after stop)."""
        assert self.proc.stderr is not None
        return self.proc.stderr.read().decode("utf-8", "replace")


def need_tool(name: str) -> str:
    """The path of an external client (curl, wget, unzip, openssl, chromium).

    Missing on a developer's machine: the test is skipped. Missing in CI: the test fails, since
    .ci/run installs every one of them.
    """
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is required in CI")
        pytest.skip(f"{name} is not installed")
    return path


def comptoir_cmd(*args: str) -> list[str]:
    """The command line running comptoir's CLI with this interpreter."""
    return [sys.executable, "-m", "comptoir", *args]


@contextlib.contextmanager
def live_server(
    *args: str,
    url_count: int = 1,
    timeout: float = 20,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
) -> Iterator[LiveServer]:
    """Run `comptoir ARGS --quiet --host 127.0.0.1 --port 0`; yield once its URLs are printed."""
    full = [*args]
    if "--host" not in full and "-b" not in full:
        full += ["--host", "127.0.0.1"]
    if "--port" not in full and "-p" not in full:
        full += ["--port", "0"]
    if "--quiet" not in full and "-q" not in full:
        full.append("--quiet")
    proc = subprocess.Popen(
        comptoir_cmd(*full),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )
    urls = read_urls(proc, url_count, timeout)
    server = LiveServer(proc, urls)
    wait_until_serving(urls[0])
    try:
        yield server
    finally:
        stop_server(proc)


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server started by a test as a user would (Ctrl-C), killing it if it hangs."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def read_urls(proc: subprocess.Popen[bytes], count: int, timeout: float) -> list[str]:
    """Read `count` URL lines from a starting server's stdout, failing clearly on exit."""
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    urls: list[str] = []
    buf = b""
    while len(urls) < count:
        left = deadline - time.monotonic()
        if left <= 0 or not sel.select(left):
            proc.kill()
            raise AssertionError(f"server printed no URL in {timeout}s")
        chunk = os.read(proc.stdout.fileno(), 4096)
        if not chunk:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise AssertionError(f"server exited with {proc.wait()}: {err}")
        buf += chunk
        *lines, buf = buf.split(b"\n")
        urls.extend(line.decode() for line in lines if line.strip())
    return urls


def wait_until_serving(url: str, timeout: float = 10) -> None:
    """Poll until the server accepts connections (workers start after the URL is printed)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(url, timeout=2, verify=False)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.fixture
async def aclient() -> AsyncIterator[Callable[[ASGIApp], httpx.AsyncClient]]:
    """Factory of in-process clients, closed at the end of the test."""
    clients: list[httpx.AsyncClient] = []

    def make(app: ASGIApp) -> httpx.AsyncClient:
        c = asgi_client(app)
        clients.append(c)
        return c

    yield make
    for c in clients:
        await c.aclose()
