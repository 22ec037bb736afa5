"""A password-protected server as users run it: curl -u, browsers' sessions across two workers."""

from __future__ import annotations

import os
import re
import select
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import comptoir_cmd, live_server, need_tool, stop_server, wait_until_serving


def test_curl_basic_auth(tmp_path: Path) -> None:
    curl = need_tool("curl")
    (tmp_path / "a.txt").write_text("a\n")
    with live_server("serve", str(tmp_path), env={"COMPTOIR_PASSWORD": "s3cret"}) as srv:

        def status(*args: str) -> str:
            return subprocess.run(
                [curl, "-sS", "-o", "/dev/null", "-w", "%{http_code}", *args, srv.url + "a.txt"],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            ).stdout

        assert status() == "401"
        assert status("-u", "any:s3cret") == "200"
        assert status("-u", ":s3cret") == "200"
        body = subprocess.run(
            [curl, "-sS", "-u", "me:s3cret", srv.url + "a.txt"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
        assert body == "a\n"
        assert status("-u", "any:wrong") == "401"


def test_password_file(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a\n")
    (tmp_path / "pw").write_text("from a file\n")
    with live_server("serve", str(tmp_path), "--password-file", str(tmp_path / "pw")) as srv:
        assert httpx.get(srv.url + "a.txt").status_code == 401
        assert httpx.get(srv.url + "a.txt", auth=("x", "from a file")).text == "a\n"


# The child makes the pty its controlling terminal, as a shell would: getpass reads /dev/tty.
# It also gives comptoir the default Ctrl-C, as an interactive shell gives its foreground job:
# tests started as a background job (`pytest &` in a script) inherit SIGINT ignored, ignored
# signals stay ignored across exec, and Python then installs no KeyboardInterrupt at all.
_WITH_TERMINAL = (
    "import fcntl, os, signal, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
    "signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
)


def _read_until(fd: int, pattern: bytes, seen: bytearray, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not re.search(pattern, bytes(seen)):
        left = deadline - time.monotonic()
        assert left > 0, f"waited for {pattern!r}, got {bytes(seen)!r}"
        if select.select([fd], [], [], left)[0]:
            try:
                seen += os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                break


def _on_a_terminal(*args: str) -> tuple[subprocess.Popen[bytes], int]:
    """Start comptoir with a new pty as its terminal; return it and the pty's controlling end."""
    controller, terminal = os.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-c", _WITH_TERMINAL, *comptoir_cmd(*args)[1:]],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        start_new_session=True,
    )
    os.close(terminal)
    return proc, controller


def _stop(proc: subprocess.Popen[bytes], controller: int) -> None:
    stop_server(proc)
    os.close(controller)


def test_password_prompt_is_hidden_and_asked_twice(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a\n")
    proc, controller = _on_a_terminal(
        "serve", str(tmp_path), "--password", "--host", "127.0.0.1", "--port", "0", "--quiet"
    )
    seen = bytearray()
    try:
        _read_until(controller, rb"Password: ", seen)
        os.write(controller, b"typed twice\n")
        _read_until(controller, rb"Repeat for confirmation: ", seen)
        os.write(controller, b"typed twice\n")
        _read_until(controller, rb"http://127\.0\.0\.1:\d+/", seen)
        url = re.findall(rb"http://127\.0\.0\.1:\d+/", bytes(seen))[0].decode()
        wait_until_serving(url)
        # Nothing typed was shown: the terminal's echo was off while it was read.
        assert b"typed" not in bytes(seen)
        assert httpx.get(url + "a.txt").status_code == 401
        assert httpx.get(url + "a.txt", auth=("", "typed twice")).text == "a\n"
    finally:
        _stop(proc, controller)


def test_password_prompt_mismatch_asks_again_and_ctrl_c_exits(tmp_path: Path) -> None:
    proc, controller = _on_a_terminal(
        "serve", str(tmp_path), "--password", "--host", "127.0.0.1", "--port", "0", "--quiet"
    )
    seen = bytearray()
    try:
        _read_until(controller, rb"Password: ", seen)
        os.write(controller, b"one\n")
        _read_until(controller, rb"Repeat for confirmation: ", seen)
        os.write(controller, b"two\n")
        _read_until(controller, rb"do not match", seen)
        _read_until(controller, rb"Password: $", seen)
        # Ctrl-C at the prompt: no traceback, exit code 130.
        os.write(controller, b"\x03")
        assert proc.wait(20) == 130
        assert b"Traceback" not in bytes(seen)
    finally:
        _stop(proc, controller)


def test_sessions_and_login_limit_hold_across_two_workers_under_tls(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "a.txt").write_text("a\n")
    data = tmp_path / "data"
    env = {"COMPTOIR_PASSWORD": "s3cret", "COMPTOIR_DATA_DIR": str(data)}
    with live_server("serve", str(site), "--tls", "--workers", "2", env=env) as srv:
        context = ssl.create_default_context(cafile=str(data / "ca.pem"))
        # Log in once, as a browser does: the form, then the POST.
        with httpx.Client(verify=context, base_url=srv.url) as browser:
            page = browser.get("/.comptoir/login", params={"next": "/a.txt"})
            match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            assert match
            r = browser.post(
                "/.comptoir/login",
                data={"csrf_token": match.group(1), "next": "/a.txt", "password": "s3cret"},
            )
            assert r.status_code == 303
            session_id = browser.cookies["comptoir_session_static"]
            cookie = f"comptoir_session_static={session_id}; Path=/; HttpOnly; Secure; SameSite=Lax"
            assert cookie in r.headers.get_list("set-cookie")
        # Twenty requests, each on a new connection: whichever worker answers knows the session.
        for _ in range(20):
            r = httpx.get(
                srv.url + "a.txt",
                verify=context,
                cookies={"comptoir_session_static": session_id},
                headers={"Connection": "close"},
            )
            assert r.status_code == 200 and r.text == "a\n"
        # Failed logins add up across workers too: the fifth one blocks this address.
        statuses = [
            httpx.get(srv.url, verify=context, auth=("x", f"guess{i}")).status_code
            for i in range(5)
        ]
        assert statuses == [401, 401, 401, 401, 429]
        blocked = httpx.get(srv.url, verify=context, auth=("x", "s3cret"))
        assert blocked.status_code == 429
        assert 0 < int(blocked.headers["retry-after"]) <= 300
        # A browser already logged in is not affected.
        r = httpx.get(
            srv.url + "a.txt", verify=context, cookies={"comptoir_session_static": session_id}
        )
        assert r.status_code == 200
