"""Services run by the main process next to the HTTP workers.

What must live outside the workers runs here: listeners besides the workers' HTTP port (echo's TCP
and UDP echo, the plain-HTTP redirect of --redirect-http) and helpers that must act after the
workers are gone (receive's `PartsCleaner` removes what a killed worker left). A site kind declares
its services in `SiteKind.services`, which receives a `ServiceContext` (sites/contract.py) to
publish addresses to the workers. They run on one asyncio event loop in a thread of the main
process: they start before the banner is printed (so a bind error is one clear line and the banner
can show their addresses) and stop after the HTTP workers have stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Sequence
from typing import Protocol

from comptoir.errors import ConfigError


class Service(Protocol):
    """A listener or helper owned by the main process (see the module's docstring)."""

    name: str

    async def start(self) -> list[str]:
        """Start (a listener binds); return the addresses to show (`tcp://127.0.0.1:7`), if any.

        Raise ConfigError for problems the user caused (port in use...).
        """
        ...

    async def stop(self) -> None:
        """Stop: close connections, clean up; called once the workers have stopped."""
        ...


class ServiceRunner:
    """Runs services on an event loop in a daemon thread."""

    def __init__(self, services: Sequence[Service]) -> None:
        self.services = list(services)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self.addresses: list[tuple[str, str]] = []

    def start(self) -> list[tuple[str, str]]:
        """Start every service; return (service name, address) pairs. Raises ConfigError."""
        if not self.services:
            return []
        loop = asyncio.new_event_loop()
        self.loop = loop
        self.thread = threading.Thread(
            target=loop.run_forever, name="comptoir-services", daemon=True
        )
        self.thread.start()
        started: list[Service] = []
        try:
            for service in self.services:
                fut = asyncio.run_coroutine_threadsafe(service.start(), loop)
                addresses = fut.result(timeout=30)
                started.append(service)
                self.addresses.extend((service.name, a) for a in addresses)
        except ConfigError:
            self.services = started
            self.stop()
            raise
        return self.addresses

    def stop(self, timeout: float = 10) -> None:
        """Stop every service and the loop."""
        loop = self.loop
        if loop is None:
            return
        for service in reversed(self.services):
            fut = asyncio.run_coroutine_threadsafe(service.stop(), loop)
            # Shutting down: one failing service must not keep the others running.
            with contextlib.suppress(Exception):
                fut.result(timeout=timeout)
        loop.call_soon_threadsafe(loop.stop)
        if self.thread is not None:
            self.thread.join(timeout)
            if not self.thread.is_alive():
                # Its transports are closed by now; an open loop would be reported as a leak.
                loop.close()
        self.loop = None
