"""POST latency of `comptoir api --write` on a large table, over a real server.

    uv run python bench/api_writes.py                       # 1,000,000 rows, 2,000 POSTs, 1 client
    uv run python bench/api_writes.py --concurrency 8       # 8 clients, each its own connection
    uv run python bench/api_writes.py --rows 10000 --posts 500 --workers 2

Makes a CSV of `--rows` rows, 10 mixed columns (integer id 1…N, text, integers, floats, booleans,
dates, datetimes, empty cells) in a scratch folder, starts `python -m comptoir api DIR --write`
on it (this interpreter: the working tree), and once it answers, POSTs rows on keep-alive
connections (http.client: the least a client adds), each timed from the request to the last byte
of its 201. Prints the percentiles, then how long after the last 201 the CSV on disk had the last
row, and checks after a clean stop that the file has every row and no journal is left.
Every POST is acknowledged only after its journal line is on the disk (fdatasync): the figure is
bounded below by this disk's flush time, which it prints too (median of 200).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import polars as pl

CITIES = ["Paris", "Lyon", "Nice", "Lille", "Nantes", "Brest", "Metz", "Tours", "Caen", "Dijon"]


def make_table(path: Path, rows: int) -> None:
    """The table: about 100 bytes a row."""
    ids = pl.int_range(1, rows + 1, eager=True)
    frame = pl.DataFrame(
        {
            "id": ids,
            "name": [f"name {i}" for i in range(1, rows + 1)],
            "city": [CITIES[i % 10] for i in range(rows)],
            "score": ids % 100,
            "price": ids / 7,
            "active": ids % 3 == 0,
            "born": [dt.date(1950, 1, 1) + dt.timedelta(days=i % 20000) for i in range(rows)],
            "seen": [dt.datetime(2024, 1, 1) + dt.timedelta(seconds=i * 37) for i in range(rows)],
            "kind": [f"k{i % 20}" for i in range(rows)],
            "note": [f"note {i}" if i % 4 else None for i in range(rows)],
        }
    )
    frame.write_csv(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def flush_time(folder: Path) -> float:
    """Median seconds of a small append + fdatasync in `folder` (the disk's floor)."""
    probe = folder / ".probe"
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    times = []
    for _ in range(200):
        started = time.perf_counter()
        os.write(fd, b'{"op":"put","row":{"id":1}}\n')
        os.fdatasync(fd)
        times.append(time.perf_counter() - started)
    os.close(fd)
    probe.unlink()
    return statistics.median(times)


def post_rows(port: int, count: int, prefix: str, out: list[float], last: list[int]) -> None:
    """POST `count` rows on one keep-alive connection; their latencies into `out`."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/json"}
    for i in range(count):
        body = json.dumps(
            {
                "name": f"{prefix}{i}",
                "city": "Paris",
                "score": i % 100,
                "price": 1.5,
                "active": True,
                "born": "2001-12-31",
                "seen": "2024-05-01T10:30:00",
                "kind": "k1",
                "note": None,
            }
        )
        started = time.perf_counter()
        conn.request("POST", "/api/people", body, headers)
        response = conn.getresponse()
        data = response.read()
        out.append(time.perf_counter() - started)
        if response.status != 201:
            raise SystemExit(f"POST answered {response.status}: {data[:200]!r}")
        last[0] = max(last[0], json.loads(data)["id"])
    conn.close()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


def tail(path: Path, size: int = 4096) -> str:
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - size))
        return f.read().decode("utf-8", "replace")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--posts", type=int, default=2000, help="POSTs measured, in all")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=1, help="clients at once")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="comptoir-bench-writes-", dir=Path.cwd()) as scratch:
        folder = Path(scratch)
        csv_file = folder / "people.csv"
        started = time.monotonic()
        make_table(csv_file, args.rows)
        size = csv_file.stat().st_size
        made = time.monotonic() - started
        print(f"table: {args.rows:,} rows, {size / 1e6:.0f} MB ({made:.1f} s)")
        print(f"this disk's append + fdatasync: {flush_time(folder) * 1e3:.2f} ms (median of 200)")
        port = free_port()
        command = [
            sys.executable,
            "-m",
            "comptoir",
            "api",
            str(folder),
            "--write",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--quiet",
            "--workers",
            str(args.workers),
        ]
        print("server:", " ".join(command[1:]))
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL, start_new_session=True)
        try:
            started = time.monotonic()
            while True:
                with contextlib.suppress(OSError):  # not listening yet: try again
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                    conn.request("GET", "/api/people/1")
                    if conn.getresponse().status == 200:
                        break
                if server.poll() is not None or time.monotonic() - started > 300:
                    raise SystemExit("the server did not start")
                time.sleep(0.2)
            print(f"serving after {time.monotonic() - started:.1f} s")
            last = [0]
            post_rows(port, args.warmup, "warm", [], last)
            latencies: list[float] = []
            each = args.posts // args.concurrency
            clients = [
                threading.Thread(target=post_rows, args=(port, each, f"c{n}-", latencies, last))
                for n in range(args.concurrency)
            ]
            started = time.monotonic()
            for client in clients:
                client.start()
            for client in clients:
                client.join()
            took = time.monotonic() - started
            acknowledged = time.monotonic()
            ms = [x * 1e3 for x in latencies]
            print(
                f"{len(ms)} POSTs ({args.concurrency} client(s), {args.workers} worker(s)): "
                f"{len(ms) / took:.0f}/s, p50 {percentile(ms, 50):.2f} ms, "
                f"p90 {percentile(ms, 90):.2f} ms, p99 {percentile(ms, 99):.2f} ms, "
                f"p99.9 {percentile(ms, 99.9):.2f} ms, max {max(ms):.2f} ms"
            )
            marker = f"\n{last[0]},"
            while marker not in tail(csv_file):
                if time.monotonic() - acknowledged > 60:
                    raise SystemExit("the last row never reached the CSV")
                time.sleep(0.01)
            in_file = time.monotonic() - acknowledged
            print(f"the last row was in the CSV {in_file:.2f} s after its 201")
        finally:
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGINT)
            server.wait(120)
        with open(csv_file, "rb") as f:
            rows = sum(1 for _ in f) - 1
        left = sorted(p.name for p in folder.iterdir() if p.name != "people.csv")
        expected = args.rows + args.warmup + each * args.concurrency
        print(f"after a clean stop: {rows:,} rows in the CSV (expected {expected:,}), left: {left}")
        if rows != expected or left:
            raise SystemExit("rows missing or files left behind")


if __name__ == "__main__":
    main()
