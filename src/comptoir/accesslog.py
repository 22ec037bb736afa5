"""Access log: one line per request (method, path, status, bytes, duration, client).

Paths come from clients, so every control character (and backslash, quote) is escaped before it
is written: a request cannot forge log lines or terminal escape sequences.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime

from comptoir import terminal
from comptoir.http.client import client_label
from comptoir.types import Scope


def _escape_char(c: str) -> str:
    o = ord(c)
    if 0xDC80 <= o <= 0xDCFF:
        # A byte that was not UTF-8 (a surrogate escape): shown as the byte it was.
        return f"\\x{o - 0xDC00:02x}"
    if c in '\\"':
        return "\\" + c
    if c.isprintable():
        return c
    # Controls, C1, line/paragraph separators, bidi overrides, lone surrogates: nothing that could
    # end a line, move the cursor or reorder what a terminal shows.
    if o <= 0xFF:
        return f"\\x{o:02x}"
    return f"\\u{o:04x}" if o <= 0xFFFF else f"\\U{o:08x}"


def escape_for_log(text: str) -> str:
    """Escape control characters, quotes and backslashes (log injection); keep the rest."""
    if text.isprintable() and '"' not in text and "\\" not in text:
        return text
    return "".join(map(_escape_char, text))


def escape_controls(text: str) -> str:
    """Escape what could end a line or drive a terminal; keep quotes and backslashes as they are.

    For text that is not a field of a line (a traceback's lines): readable, but never more
    than the one line it is.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape_char(c) for c in text)


class AccessLog:
    """Writes one access-log line per HTTP request or WebSocket session.

    Not a middleware: the worker's outer app (app.WorkerApp) already sees every message of every
    answer, and gives each finished one to `log` — a separate layer would wrap `send` once more.
    """

    def __init__(
        self,
        log_format: str = "text",
        write: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.json = log_format == "json"
        self.write = write or _write_stderr
        # Measures durations: the outer app reads it when a request starts and when it ends.
        self.clock = clock
        self._stamp_second = -1
        self._stamp_text = ""

    def _stamp(self) -> str:
        # Formatted once a second, not once a request: strftime is a good part of a line's cost.
        now = int(time.time())
        if now != self._stamp_second:
            self._stamp_second = now
            self._stamp_text = datetime.fromtimestamp(now).strftime("%Y-%m-%d %H:%M:%S")
        return self._stamp_text

    def target(self, scope: Scope) -> str:
        """The request's path and query as this log shows them (escaped for text lines).

        The fast path keeps it with each answer it keeps: repeats of a request log the same
        target, so it is escaped once.
        """
        # Raw bytes as UTF-8 (what browsers send), undecodable bytes kept apart for escaping.
        raw = scope.get("raw_path")
        path = raw.decode("utf-8", "surrogateescape") if raw is not None else scope["path"]
        query = scope.get("query_string", b"")
        if query:
            path += "?" + query.decode("utf-8", "surrogateescape")
        return _show_bad_bytes(path) if self.json else escape_for_log(path)

    def log(
        self, scope: Scope, status: int, sent: int, duration: float, target: str | None = None
    ) -> None:
        """Write the line of one finished request: `sent` bytes of body in `duration` seconds.

        `target` is `self.target(scope)` when the caller has it already.
        """
        method = scope.get("method", "WS")
        if target is None:
            target = self.target(scope)
        client = client_label(scope)
        if self.json:
            line = json.dumps(
                {
                    "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                    "client": client,
                    "method": method,
                    "path": target,
                    "status": status,
                    "bytes": sent,
                    "duration_ms": round(duration * 1000, 3),
                },
                ensure_ascii=True,
            )
        else:
            if method != "GET" and method != "HEAD":
                method = escape_for_log(method)
            line = (
                f'{self._stamp()} {client} "{method} {target}" '
                f"{status} {sent} {duration * 1000:.1f}ms"
            )
        self.write(line)


def _show_bad_bytes(text: str) -> str:
    # JSON escapes everything else itself; bytes that were not UTF-8 read better as `\xNN`.
    if text.isascii():
        return text
    return "".join(f"\\x{ord(c) - 0xDC00:02x}" if 0xDC80 <= ord(c) <= 0xDCFF else c for c in text)


def _write_stderr(line: str) -> None:
    # Through terminal.py: a live display on stderr (share's progress) must not be torn.
    terminal.write_line(line)
