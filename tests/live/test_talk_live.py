"""`comptoir talk` against a real `comptoir chat`: --send, piped lines within the site's rate, a
terminal session (a pseudo-terminal: incoming lines above the prompt, /who, /quit), a mount path
with a password, and the errors users meet, each one line without a traceback."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import comptoir_cmd, live_server

pytestmark = pytest.mark.timeout(60)


def talk(
    *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        comptoir_cmd("talk", *args),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **(env or {})},
    )


def messages(url: str, room: str = "general") -> list[tuple[str, str]]:
    got = httpx.get(f"{url}api/rooms/{room}/messages", params={"limit": 500}).json()
    return [(m["from"], m["text"]) for m in got["messages"]]


def test_send_and_piped_lines_are_stored(tmp_path: Path) -> None:
    args = [
        "chat",
        "--history",
        str(tmp_path / "h.sqlite3"),
        "--rate",
        "5/s",
        "--rooms",
        "general,dev",
    ]
    with live_server(*args) as srv:
        done = talk(srv.url, "--nick", "bob", "--send", "hello from a script")
        assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
        assert messages(srv.url) == [("bob", "hello from a script")]
        # ws:// works as well; 12 lines at 5/s: none dropped by the rate limit, all acknowledged.
        ws = "ws" + srv.url.removeprefix("http") + "ws"
        lines = [f"line {i}" for i in range(12)]
        done = talk(
            ws, "--nick", "carl", "--room", "dev", stdin="\n".join([*lines, "", "/who"]) + "\n"
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout == "* in #dev: carl\n"
        assert messages(srv.url, "dev") == [("carl", t) for t in lines]
        # A room name the chat refuses is the user's to fix (exit 2); a message too long is
        # refused by the server (exit 1): one line each.
        done = talk(srv.url, "--room", "nowhere!", "--send", "x")
        assert done.returncode == 2
        assert done.stderr.startswith("comptoir: error: --room: ") and "room name" in done.stderr
        done = talk(srv.url, "--send", "x" * 5000)
        assert done.returncode == 1 and "longer than 4096 bytes" in done.stderr


def test_a_terminal_session(tmp_path: Path) -> None:
    with live_server("chat", "--history", str(tmp_path / "h.sqlite3")) as srv:
        httpx.post(srv.url + "api/rooms/general/messages", json={"text": "earlier", "nick": "zed"})
        main, child = pty.openpty()
        proc = subprocess.Popen(
            comptoir_cmd("talk", srv.url, "--nick", "ann"),
            stdin=child,
            stdout=child,
            stderr=child,
            env={**os.environ, "TERM": "dumb"},
        )
        os.close(child)
        seen = b""

        def until(text: str) -> None:
            nonlocal seen
            deadline = time.monotonic() + 15
            while text.encode() not in seen:
                left = deadline - time.monotonic()
                assert left > 0, f"{text!r} not in {seen!r}"
                if select.select([main], [], [], left)[0]:
                    try:
                        seen += os.read(main, 4096)
                    except OSError:
                        break
            assert text.encode() in seen, seen

        try:
            until("zed: earlier")  # the room's history at the start
            until("is now ann")
            until("> ")
            # Typed half a line; a message arrives: printed above, the half line drawn again.
            os.write(main, b"half")
            time.sleep(0.3)
            httpx.post(
                srv.url + "api/rooms/general/messages", json={"text": "live one", "nick": "zed"}
            )
            until("zed: live one")
            until("> half")
            os.write(main, b" done\r")
            until("ann: half done")
            os.write(main, b"/who\r")
            until("* in #general: ann")
            os.write(main, b"/quit\r")
            assert proc.wait(15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            os.close(main)
        assert b"Traceback" not in seen
        assert ("ann", "half done") in messages(srv.url)


def test_a_mount_path_and_a_password(tmp_path: Path) -> None:
    sites = tmp_path / "sites.toml"
    sites.write_text(
        '[[site]]\ndefault = true\npath = "/team"\nkind = "chat"\nhistory = "h.sqlite3"\n',
        encoding="utf-8",
    )
    with live_server(
        "run", str(sites), "--password", env={"COMPTOIR_PASSWORD": "sesame-sesame"}
    ) as srv:
        assert srv.url.endswith("/team/")
        done = talk(srv.url, "--send", "x")
        assert done.returncode == 1
        assert "asks for a password: add --password" in done.stderr
        done = talk(srv.url, "--password", "--send", "x", env={"COMPTOIR_PASSWORD": "wrong"})
        assert done.returncode == 1 and "wrong password" in done.stderr
        good = {"COMPTOIR_PASSWORD": "sesame-sesame"}
        done = talk(srv.url, "--password", "--nick", "ann", "--send", "in", env=good)
        assert done.returncode == 0, done.stderr
        got = httpx.get(srv.url + "api/rooms/general/messages", auth=("", "sesame-sesame")).json()
        assert [(m["from"], m["text"]) for m in got["messages"]] == [("ann", "in")]


def test_usage_and_connection_errors_are_one_line() -> None:
    for args, code, text in [
        (["ftp://host/"], 2, "not a chat URL"),
        (["http://127.0.0.1:99999/"], 2, "bad port"),
        (["http://127.0.0.1:1/"], 1, "connection refused"),
        ([], 2, "Missing argument 'URL'"),
        (["http://127.0.0.1:1/", "--nick", "bad name"], 2, "--nick: a nickname is made of"),
        (["http://127.0.0.1:1/", "--room", "a/b"], 2, "--room: a room name is made of"),
    ]:
        done = talk(*args, "--send", "x")
        assert done.returncode == code, (args, done.stderr)
        assert text in done.stderr
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    done = talk("http://127.0.0.1:1/", "--send", " ")
    assert done.returncode == 2 and "the message is empty" in done.stderr
