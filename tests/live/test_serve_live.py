"""`comptoir serve` as a user runs it: real process, real sockets, real clients."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import httpx

from tests.conftest import comptoir_cmd, live_server


def test_serves_a_file_over_a_real_socket(tmp_path: Path) -> None:
    (tmp_path / "hello.txt").write_text("hello\n")
    with live_server("serve", str(tmp_path)) as srv:
        assert srv.url.startswith("http://127.0.0.1:")
        r = httpx.get(srv.url + "hello.txt")
        assert r.status_code == 200
        assert r.text == "hello\n"
        assert srv.stop() == 0


def test_two_workers_share_one_port(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a")
    with live_server("serve", str(tmp_path), "--workers", "2") as srv:
        with httpx.Client() as c:
            for _ in range(20):
                assert c.get(srv.url + "a.txt").text == "a"
        assert srv.stop(signal.SIGTERM) == 0


def test_missing_folder_is_one_line_exit_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        comptoir_cmd("serve", str(tmp_path / "nope"), "--port", "0"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1
    assert "folder not found" in proc.stderr
    assert "Traceback" not in proc.stderr
