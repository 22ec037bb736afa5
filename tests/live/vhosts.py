"""A real `comptoir` process serving host-named sites, reached on 127.0.0.1 with a Host header.

conftest's `live_server` polls the first URL printed, which is of no use when that URL names a host
the test machine cannot resolve (`www.localhost`, `a.test`): this polls 127.0.0.1 instead.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from tests.conftest import comptoir_cmd, read_urls, stop_server


@dataclass
class SitesServer:
    """A running server: the URLs it printed and a client bound to its port on 127.0.0.1."""

    proc: subprocess.Popen[bytes]
    urls: list[str]
    port: int
    client: httpx.Client

    def get(
        self, host: str, path: str = "/", headers: dict[str, str] | None = None
    ) -> httpx.Response:
        """GET `path` with `Host: host`."""
        return self.client.get(path, headers={"Host": host, **(headers or {})})


@contextlib.contextmanager
def sites_server(
    *args: str, url_count: int, timeout: float = 20, env: dict[str, str] | None = None
) -> Iterator[SitesServer]:
    """Run `comptoir ARGS --host 127.0.0.1 --port 0 --quiet` until the block ends."""
    proc = subprocess.Popen(
        comptoir_cmd(*args, "--host", "127.0.0.1", "--port", "0", "--quiet"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    try:
        urls = read_urls(proc, url_count, timeout)
        port = urlsplit(urls[0]).port
        assert port is not None
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            _wait_until_serving(client, timeout)
            yield SitesServer(proc, urls, port, client)
    finally:
        stop_server(proc)


def _wait_until_serving(client: httpx.Client, timeout: float) -> None:
    # Workers start after the URLs are printed; any answer at all means they are up.
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.get("/")
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
