"""`comptoir api --write` on real processes: a write acknowledged just before `kill -9` of the
whole server (main process and workers) is there after a restart, and in the CSV soon after; a
normal run puts it in the CSV within about a second; with `--workers 2`, what one worker wrote the
other reads."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import comptoir_cmd, live_server, read_urls, stop_server, wait_until_serving

PEOPLE = "id,name,score\n1,Ada,90\n2,Bob,75\n"


@pytest.fixture
def data(tmp_path: Path) -> Path:
    (tmp_path / "people.csv").write_text(PEOPLE)
    return tmp_path


def wait_for(check: Callable[[], bool], seconds: float) -> float:
    """How long `check` took to hold (AssertionError after `seconds`)."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < seconds, f"not within {seconds} s"
        time.sleep(0.02)
    return time.monotonic() - started


def one_connection_each() -> httpx.Client:
    """A client opening a new connection for every request (each may reach another worker)."""
    return httpx.Client(limits=httpx.Limits(max_keepalive_connections=0), timeout=10)


def test_a_write_acknowledged_before_kill_9_is_there_after_a_restart(data: Path) -> None:
    csv_file = data / "people.csv"
    proc = subprocess.Popen(
        comptoir_cmd("api", str(data), "--write", "--host", "127.0.0.1", "--port", "0", "--quiet"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: the workers go with it
    )
    try:
        [url] = read_urls(proc, 1, 20)
        wait_until_serving(url)
        r = httpx.post(url + "api/people", json={"name": "Zoé", "score": 12}, timeout=10)
        os.killpg(proc.pid, signal.SIGKILL)  # right after the 201: no time to write the CSV
        assert r.status_code == 201, r.text
        proc.wait(10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        stop_server(proc)
    assert "Zoé" not in csv_file.read_text()  # only the journal had it
    assert (data / ".people.csv.comptoir-journal").exists()
    with live_server("api", str(data), "--write") as server:
        row = httpx.get(server.url + "api/people/3").json()
        assert row == {"id": 3, "name": "Zoé", "score": 12}
        took = wait_for(lambda: "Zoé" in csv_file.read_text(), 5)
        print(f"in the CSV {took:.2f} s after the restart")
    assert csv_file.read_text() == PEOPLE + "3,Zoé,12\n"
    assert sorted(os.listdir(data)) == ["people.csv"]  # stopped: no journal left


def test_a_write_is_in_the_csv_within_about_a_second(data: Path) -> None:
    csv_file = data / "people.csv"
    with live_server("api", str(data), "--write") as server:
        r = httpx.post(server.url + "api/people", json={"name": "Eve"})
        assert r.status_code == 201 and r.headers["location"] == "/api/people/3"
        took = wait_for(lambda: "Eve" in csv_file.read_text(), 3)
        print(f"in the CSV {took:.2f} s after the 201")
        # A spreadsheet's view: the whole file, in its column order, never half written.
        assert csv_file.read_text() == PEOPLE + "3,Eve,\n"


def workers_of(pid: int) -> list[int]:
    """The server's worker processes (its children)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in children]


def holds_journal(pid: int) -> bool:
    """Whether a process has the journal open: it followed it, so it read the table."""
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if ".comptoir-journal" in os.readlink(fd):  # or one rotated since: "… (deleted)"
                return True
        except OSError:
            continue
    return False


def test_with_two_workers_one_reads_what_the_other_wrote(data: Path) -> None:
    if not Path("/proc/self/task").exists():
        pytest.skip("needs /proc to tell the workers apart")
    with live_server("api", str(data), "--write", "--workers", "2") as server:
        api = server.url + "api/people"
        with one_connection_each() as client:
            for i in range(30):
                r = client.post(api, json={"name": f"n{i}", "score": i})
                assert r.status_code == 201, r.text
                row = r.json()
                for _ in range(3):
                    got = client.get(f"{api}/{row['id']}")
                    assert got.status_code == 200 and got.json() == row
                    assert got.headers["etag"] == r.headers["etag"]
                got = client.get(api, params={"_limit": 1000})
                assert got.headers["x-total-count"] == str(3 + i)
            workers = workers_of(server.proc.pid)
            assert len(workers) == 2
            # Both workers answered about the table (each holds its journal open).
            wait_for(lambda: all(holds_journal(w) for w in workers), 5)
            r = client.patch(f"{api}/1", json={"score": 1})
            assert r.status_code == 200
            for _ in range(10):
                assert client.get(f"{api}/1").json()["score"] == 1
