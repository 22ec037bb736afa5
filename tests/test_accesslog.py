"""The access log: one line per request, text or JSON, that no client can forge or break."""

from __future__ import annotations

import json
from datetime import datetime

from comptoir.accesslog import AccessLog
from comptoir.app import WorkerApp
from comptoir.types import Message, Receive, Scope, Send


async def log_lines(log_format: str, raw_path: bytes, query: bytes = b"") -> list[str]:
    """The access-log output for one request with an exact raw path."""
    lines: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"nope"})

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        pass

    ticks = iter([10.0, 10.0125])
    log = AccessLog(log_format, write=lines.append, clock=lambda: next(ticks))
    outer = WorkerApp(app, [], access_log=log)
    scope = {
        "type": "http",
        "method": "GET",
        "path": raw_path.decode("utf-8", "replace"),
        "raw_path": raw_path,
        "query_string": query,
        "headers": [],
        "client": ("::1", 5000),
    }
    await outer(scope, receive, send)
    return lines


# Bytes a client could try to smuggle into a log line or a terminal (servers in front of us may
# pass them through even where granian refuses them).
HOSTILE_LOG = b'/a\nFAKE 200\r\x1b[2J\x07"quote"\\back\xe9\xc3\xa9\xe2\x80\xa8\xe2\x80\xae'


async def test_access_log_text_line_is_one_escaped_line() -> None:
    lines = await log_lines("text", HOSTILE_LOG, b"q=\x1b]0;title\x07")
    assert len(lines) == 1
    line = lines[0]
    assert line.isprintable()
    assert line.endswith(" 404 4 12.5ms")
    assert ' [::1] "GET ' in line
    assert (
        '/a\\x0aFAKE 200\\x0d\\x1b[2J\\x07\\"quote\\"\\\\back\\xe9é\\u2028\\u202e'
        "?q=\\x1b]0;title\\x07"
    ) in line


async def test_access_log_json_line_parses() -> None:
    lines = await log_lines("json", HOSTILE_LOG)
    assert len(lines) == 1 and "\n" not in lines[0] and lines[0].isascii()
    record = json.loads(lines[0])
    assert record["path"] == '/a\nFAKE 200\r\x1b[2J\x07"quote"\\back\\xe9é\u2028\u202e'
    assert (record["method"], record["status"], record["bytes"]) == ("GET", 404, 4)
    assert record["client"] == "[::1]"
    assert record["duration_ms"] == 12.5


async def test_access_log_text_line_starts_with_the_local_time() -> None:
    before = datetime.now().replace(microsecond=0)
    first = (await log_lines("text", b"/one", b""))[0]
    stamp = datetime.strptime(first[:19], "%Y-%m-%d %H:%M:%S")
    assert before <= stamp <= datetime.now()


async def test_an_internal_error_log_cannot_forge_lines_or_drive_the_terminal() -> None:
    from comptoir.app import WorkerApp

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("client said: x\nFAKE 200 OK\x1b[2J\u2028")

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    written: list[str] = []
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/a\nFAKE",
        "raw_path": b"/a%0AFAKE",
        "query_string": b"",
        "headers": [],
    }
    await WorkerApp(app, [], log=written.append)(scope, receive, send)
    assert sent[0]["status"] == 500
    [entry] = written
    lines = entry.split("\n")
    assert lines[0] == "comptoir: internal error on GET /a\\x0aFAKE"
    # The message's own line break and escapes are shown, not obeyed: no line starts with FAKE.
    assert not any(line.startswith("FAKE") for line in lines)
    assert all(line.isprintable() for line in lines)
    assert "x\\x0aFAKE 200 OK\\x1b[2J\\u2028" in entry


async def test_answers_of_the_outer_app_are_logged_with_their_status_and_bytes() -> None:
    from comptoir.app import WorkerApp
    from comptoir.errors import HTTPError

    async def refusing(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # refused by the site
            return
        raise HTTPError(404, "Not found")

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        pass

    lines: list[str] = []
    ticks = iter([1.0, 1.001, 2.0, 2.001])
    log = AccessLog("json", write=lines.append, clock=lambda: next(ticks))
    outer = WorkerApp(refusing, [], access_log=log)
    base = {"path": "/x", "raw_path": b"/x", "query_string": b"", "headers": []}
    await outer({**base, "type": "http", "method": "GET"}, receive, send)
    await outer({**base, "type": "websocket"}, receive, send)
    first, second = (json.loads(line) for line in lines)
    assert (first["status"], first["bytes"]) == (404, len("Not found\n"))
    assert (second["method"], second["status"]) == ("WS", 403)
