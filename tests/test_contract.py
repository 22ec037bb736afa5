"""The kind contract end to end: what a main-process service publishes reaches every worker's
SiteContext, with the run folder, the worker count and the clock (sites/contract.py)."""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path
from typing import Any

import pytest

from comptoir.config import Config, ServerOptions, SiteConfig
from comptoir.server import Server, WorkerSetup, _load_app
from comptoir.sites import KINDS, ServiceContext, SiteContext
from comptoir.sites.static import StaticOptions


class Publisher:
    """A service that listens on a Unix socket in the run folder and tells the workers where."""

    name = "publisher"

    def __init__(self, context: ServiceContext) -> None:
        self.context = context
        self.sock: socket.socket | None = None

    async def start(self) -> list[str]:
        assert self.context.run_dir is not None
        path = str(self.context.run_dir / "fanout.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.context.publish("fanout", path)
        return [f"unix:{path}"]

    async def stop(self) -> None:
        if self.sock is not None:
            self.sock.close()


def test_a_service_address_reaches_the_workers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    kind = KINDS["static"]
    contexts: list[SiteContext] = []

    def build(options: Any, context: SiteContext) -> Any:
        contexts.append(context)
        return kind.build(options, context)

    monkeypatch.setitem(
        KINDS,
        "static",
        dataclasses.replace(kind, build=build, services=lambda options, ctx: [Publisher(ctx)]),
    )
    setups: list[WorkerSetup] = []

    def run_granian(config: Config, sock: socket.socket, setup: WorkerSetup, tls: Any) -> int:
        # What granian does in each worker: build the app from the setup it was handed.
        setups.append(setup)
        _load_app(config, setup)
        sock.close()
        return 0

    monkeypatch.setattr("comptoir.server._run_granian", run_granian)
    site = SiteConfig("static", StaticOptions(root=tmp_path), name="static")
    server = ServerOptions(host="127.0.0.1", port=0, quiet=True, workers=3)
    assert Server(Config(server=server, sites=(site,))).run() == 0
    [setup] = setups
    [context] = contexts
    assert context.endpoints == {"fanout": str(setup.run_dir / "fanout.sock")}
    assert context.run_dir == setup.run_dir
    assert context.workers == 3
    assert context.clock.time() > 1_700_000_000
    # The run folder is the run's own: gone once the server stopped.
    assert not setup.run_dir.exists()
