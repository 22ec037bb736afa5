"""`--redirect-http PORT`: a plain-HTTP listener that sends every request to the HTTPS URL.

It runs as a main-process service (services.py), not in the workers: it needs no app, answers one
request per connection with `308 Permanent Redirect` (the method and body are kept, unlike 301) to
the same host, the HTTPS port, the same path and query. Nothing else is ever served in clear text,
and no HSTS header is sent here (browsers ignore it over HTTP). Request heads are parsed by h11:
what is not HTTP/1 gets a 400, a head larger than MAX_HEAD a 431.
"""

from __future__ import annotations

import asyncio
import contextlib
from http import HTTPStatus

import h11

from comptoir.hosts import normalize_host

# A request head larger than this is not a browser following a link.
MAX_HEAD = 16 * 1024
READ_TIMEOUT = 10.0
# After the answer, what the client still sends (a POST's body) is read and dropped for a while:
# closing with unread bytes would make the kernel reset the connection, and a client busy
# sending its body would see the reset instead of the 308.
LINGER_TIMEOUT = 2.0
LINGER_BYTES = 16 * 1024 * 1024
# Plain-HTTP clients at once; more are closed at once (each holds a file descriptor for at most
# READ_TIMEOUT + LINGER_TIMEOUT seconds).
MAX_CONNECTIONS = 512


def https_location(host_header: str, target: str, https_port: int) -> str | None:
    """The HTTPS URL for a request's Host header and target, or None if either is unusable."""
    host = normalize_host(host_header)
    if host is None or host.startswith("*"):
        return None
    if target.startswith(("http://", "https://")):
        # Absolute form (proxies): keep only the path and query.
        after = target.split("://", 1)[1]
        slash = after.find("/")
        target = after[slash:] if slash != -1 else "/"
    if not target.startswith("/") or not all(0x21 <= ord(c) <= 0x7E for c in target):
        return None
    port = "" if https_port == 443 else f":{https_port}"
    return f"https://{host}{port}{target}"


def new_connection() -> h11.Connection:
    """The server side of one plain-HTTP connection, refusing heads larger than MAX_HEAD."""
    return h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)


def redirect_answer(conn: h11.Connection, https_port: int) -> bytes | None:
    """The whole HTTP answer once `conn` has received a request head; None until then."""
    try:
        event = conn.next_event()
    except h11.RemoteProtocolError as exc:
        # Not HTTP/1, no Host in HTTP/1.1, a head larger than MAX_HEAD (431)...
        status = exc.error_status_hint
        return _answer(conn, status, [], b"Bad request\n" if status == 400 else b"")
    if not isinstance(event, h11.Request):
        return None
    host = next((v for k, v in event.headers if k == b"host"), None)
    target = event.target.decode("latin-1")
    location = https_location(host.decode("latin-1"), target, https_port) if host else None
    if location is None:
        return _answer(conn, 400, [], b"Bad request: this port only redirects to HTTPS\n")
    headers = [("Location", location), ("Content-Type", "text/plain; charset=utf-8")]
    body = f"Use {location}\n".encode()
    return _answer(conn, 308, headers, body, send_body=event.method != b"HEAD")


def _answer(
    conn: h11.Connection,
    status: int,
    headers: list[tuple[str, str]],
    body: bytes,
    *,
    send_body: bool = True,
) -> bytes:
    headers = [*headers, ("Content-Length", str(len(body))), ("Connection", "close")]
    response = h11.Response(status_code=status, headers=headers, reason=HTTPStatus(status).phrase)
    # An answer to HEAD says the body's length and leaves the body out.
    parts = [conn.send(response), conn.send(h11.Data(data=body)) if send_body else b""]
    parts.append(conn.send(h11.EndOfMessage()))
    return b"".join(part or b"" for part in parts)


class RedirectToHTTPS:
    """The --redirect-http service: 308 from plain HTTP on one port to HTTPS on another."""

    name = "redirect to HTTPS"

    def __init__(
        self, host: str, port: int, https_port: int, max_connections: int = MAX_CONNECTIONS
    ) -> None:
        self.host = host
        self.port = port
        self.https_port = https_port
        self.max_connections = max_connections
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> list[str]:
        """Bind the plain-HTTP port and start answering; return its primary URL."""
        from comptoir.server import bind_socket, listen_urls

        sock = bind_socket(self.host, self.port)
        self.server = await asyncio.start_server(self._handle, sock=sock)
        return [listen_urls(sock, self.host, scheme="http")[0][0] + "/"]

    async def stop(self) -> None:
        """Stop listening and drop open connections."""
        if self.server is not None:
            self.server.close()
        for writer in list(self.writers):
            writer.close()
        if self.server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self.writers) >= self.max_connections:
            writer.close()
            return
        self.writers.add(writer)
        try:
            try:
                answer = await asyncio.wait_for(self._answer(reader), READ_TIMEOUT)
            except (TimeoutError, ConnectionError):
                return
            if answer is None:
                return
            writer.write(answer)
            with contextlib.suppress(ConnectionError, TimeoutError):
                await asyncio.wait_for(writer.drain(), READ_TIMEOUT)
                await asyncio.wait_for(_linger(reader, writer), LINGER_TIMEOUT)
        finally:
            self.writers.discard(writer)
            writer.close()

    async def _answer(self, reader: asyncio.StreamReader) -> bytes | None:
        """Read until a request head is whole (or refused); None if the client left before."""
        conn = new_connection()
        while True:
            data = await reader.read(MAX_HEAD)
            if not data:
                return None
            conn.receive_data(data)
            answer = redirect_answer(conn, self.https_port)
            if answer is not None:
                return answer


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Say we are done, then drop what the client still sends until it closes (or too much)."""
    if writer.can_write_eof():
        writer.write_eof()
    dropped = 0
    while dropped <= LINGER_BYTES:
        chunk = await reader.read(64 * 1024)
        if not chunk:
            return
        dropped += len(chunk)
