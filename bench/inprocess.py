"""Python time per request, without a server: comptoir's ASGI app called in a loop.

    uv run python bench/inprocess.py                 # 1 KB file and echo /get: fast, full, bare
    uv run python bench/inprocess.py --requests 50000 --rounds 7

What granian adds per request (its Rust↔Python hand-off) is not here: this isolates comptoir's own
code, the part a change to comptoir can move. Each figure is CPU time (process_time) per request,
the best of several rounds, for a GET of a 1 KB file with the headers wrk sends (Host only), with
the access log on (written to a list) as in a default run:

- `fast`: the default stack, where a repeat of a small file's answer comes from the outer cache;
- `full`: the same stack with that cache off (every request through router, security, site);
- `fast -q`, `full -q`: the same with `--quiet` (no access log), as bench/run.py runs comptoir;
- `echo fast`, `echo full`: GET /get of an echo site (httpbin's JSON of the request), with
  `--quiet`: computed at the outer app from the second request on, or through the whole stack;
- `bare`: the least an ASGI app can do (bench/floor_app.py's answer), for scale.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from comptoir.app import build_app
from comptoir.config import Config, ServerOptions, SiteConfig
from comptoir.sites.echo import EchoOptions
from comptoir.sites.static import StaticOptions
from comptoir.types import ASGIApp, Message

BODY = b"x" * 1024


async def _bare(scope: dict[str, Any], receive: Any, send: Any) -> None:
    headers = [(b"content-type", b"application/octet-stream"), (b"content-length", b"1024")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": BODY})


async def _loop(app: ASGIApp, requests: int, path: str = "/1k.bin") -> float:
    """CPU seconds for `requests` GETs of `path` through `app`."""

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    statuses: list[int] = []

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    def scope() -> dict[str, Any]:
        # A fresh scope per request, as a server gives.
        return {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"127.0.0.1:8000")],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "extensions": {"http.response.pathsend": {}},
        }

    for _ in range(200):  # warm the caches
        await app(scope(), receive, send)
    statuses.clear()
    start = time.process_time()
    for _ in range(requests):
        await app(scope(), receive, send)
    took = time.process_time() - start
    assert statuses == [200] * requests, set(statuses)
    return took


def _app(root: Path, *, fast_path: bool, quiet: bool = False, echo: bool = False) -> ASGIApp:
    site = SiteConfig(kind="static", options=StaticOptions(root=root), name="static")
    if echo:
        site = SiteConfig(kind="echo", options=EchoOptions(), name="echo")
    config = Config(server=ServerOptions(quiet=quiet), sites=(site,))
    lines: list[str] = []
    return build_app(config, fast_path=fast_path, log_write=lines.append)


def main() -> None:
    """Print µs per request for each variant."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "1k.bin").write_bytes(BODY)
        variants: dict[str, ASGIApp] = {
            "fast": _app(root, fast_path=True),
            "full": _app(root, fast_path=False),
            "fast -q": _app(root, fast_path=True, quiet=True),
            "full -q": _app(root, fast_path=False, quiet=True),
            "echo fast": _app(root, fast_path=True, quiet=True, echo=True),
            "echo full": _app(root, fast_path=False, quiet=True, echo=True),
            "bare": _bare,
        }
        best = {name: float("inf") for name in variants}
        for _ in range(args.rounds):
            # Interleaved rounds: a slower moment of the machine hits every variant alike.
            for name, app in variants.items():
                path = "/get" if name.startswith("echo") else "/1k.bin"
                took = asyncio.run(_loop(app, args.requests, path))
                best[name] = min(best[name], took / args.requests * 1e6)
    for name, us in best.items():
        print(f"{name:9} {us:6.2f} µs/request")


if __name__ == "__main__":
    main()
