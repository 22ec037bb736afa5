"""A slowloris against `comptoir serve` while a normal client keeps asking: issue 10, item 2.

    uv run python bench/slowloris.py                       # 2,000 connections for 30 s
    uv run python bench/slowloris.py --connections 5000 --workers 2 --duration 20
    PYTHONPATH=/other/tree/src uv run python bench/slowloris.py   # comptoir from another tree

Starts `python -m comptoir serve` on a scratch folder (127.0.0.1, a free port, `--quiet`), then
from the same address opens `--connections` connections that never complete a request head — half
send nothing, half send a head a line per second that never ends — and opens again at once every
one the server closes, for `--duration` seconds. Meanwhile a normal client (httpx, a new
connection each time, a 5 s timeout) GETs a 1 KB file every 50 ms. It prints one JSON line: the
normal client's latencies (median, p99, max), its failures, the connections the server closed and
when it first did, and the workers' RSS and open descriptors at the end. Extra arguments after
`--` go to comptoir (e.g. `-- --header-timeout 5`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

PARTIAL_HEAD = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
TRICKLE = b"X-Slow: 1\r\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--duration", type=float, default=30)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("comptoir_args", nargs="*", help="more arguments for comptoir (after --)")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = args.connections + 500
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "1k.bin").write_bytes(b"x" * 1024)
        command = [sys.executable, "-m", "comptoir", "serve", folder, "--quiet"]
        command += ["--host", "127.0.0.1", "--port", "0", "--workers", str(args.workers)]
        server = subprocess.Popen(command + args.comptoir_args, stdout=subprocess.PIPE)
        try:
            assert server.stdout is not None
            url = server.stdout.readline().decode().strip()
            print(json.dumps(attack(url, server.pid, args.connections, args.duration)))
        finally:
            server.terminate()
            server.wait(30)


def attack(url: str, pid: int, connections: int, duration: float) -> dict[str, object]:
    host, _, port = url.split("//")[1].rstrip("/").partition(":")
    where = (host, int(port))
    # A new connection per request, as new visitors (or curl) come: a kept-alive one, accepted
    # before the attack, would not meet the connection cap.
    fresh = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(timeout=5, limits=fresh) as client:
        deadline = time.monotonic() + 10
        while True:  # the workers start after the URL is printed
            try:
                client.get(url + "1k.bin")
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        sel = selectors.DefaultSelector()

        def open_one(trickling: bool) -> None:
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(where)
            sel.register(sock, selectors.EVENT_READ, [trickling, False])

        started = time.monotonic()
        for i in range(connections):
            open_one(i % 2 == 0)
        latencies: list[float] = []
        failures: dict[str, int] = {}
        closed, first_closed = 0, None
        trickled = started
        while time.monotonic() - started < duration:
            if time.monotonic() - trickled >= 1:
                trickled = time.monotonic()
                for key in sel.get_map().values():
                    if key.data[0]:
                        with contextlib.suppress(OSError):
                            key.fileobj.send(TRICKLE if key.data[1] else PARTIAL_HEAD)  # type: ignore[union-attr]
                            key.data[1] = True
            for key, _ in sel.select(0):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    gone = sock.recv(4096) == b""
                except OSError:
                    gone = True
                if gone:
                    closed += 1
                    first_closed = first_closed or time.monotonic() - started
                    sel.unregister(sock)
                    sock.close()
                    open_one(key.data[0])
            asked = time.monotonic()
            try:
                response = client.get(url + "1k.bin")
                response.raise_for_status()
                latencies.append(time.monotonic() - asked)
            except httpx.HTTPError as exc:
                failures[type(exc).__name__] = failures.get(type(exc).__name__, 0) + 1
            time.sleep(0.05)
        workers = _workers(pid)
        result: dict[str, object] = {
            "connections": connections,
            "duration_s": duration,
            "requests_answered": len(latencies),
            "failures": failures,
            "latency_ms": {
                "median": round(statistics.median(latencies) * 1000, 1) if latencies else None,
                "p99": round(_p99(latencies) * 1000, 1) if latencies else None,
                "max": round(max(latencies) * 1000, 1) if latencies else None,
            },
            "closed_by_server": closed,
            "first_closed_after_s": round(first_closed, 1) if first_closed else None,
            "workers_rss_mb": [round(_rss_kb(w) / 1024, 1) for w in workers],
            "workers_open_fds": [len(os.listdir(f"/proc/{w}/fd")) for w in workers],
        }
        for key in list(sel.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        return result


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _workers(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(x) for x in f.read().split()]


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


if __name__ == "__main__":
    main()
