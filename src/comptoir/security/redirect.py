"""`--redirect-http PORT`: a plain-HTTP listener that sends every request to the HTTPS URL.

It runs as a main-process service (services.py), not in the workers: it needs no app, answers one
request per connection with `308 Permanent Redirect` (the method and body are kept, unlike 301) to
the same host, the HTTPS port, the same path and query. Nothing else is ever served in clear text,
and no HSTS header is sent here (browsers ignore it over HTTP).
"""

from __future__ import annotations

import asyncio
import contextlib

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


def _response(status: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
    lines = [f"HTTP/1.1 {status}"]
    lines.extend(f"{k}: {v}" for k, v in headers)
    lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def redirect_answer(head: bytes, https_port: int) -> bytes:
    """The whole HTTP answer to one request head (request line and headers)."""
    text = head.decode("latin-1")
    request_line, _, rest = text.partition("\r\n")
    parts = request_line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        return _response("400 Bad Request", [], b"Bad request\n")
    host = None
    for line in rest.split("\r\n"):
        name, sep, value = line.partition(":")
        if sep and name.strip().lower() == "host":
            host = value.strip()
            break
    location = https_location(host or "", parts[1], https_port) if host else None
    if location is None:
        return _response("400 Bad Request", [], b"Bad request: this port only redirects to HTTPS\n")
    body = f"Use {location}\n".encode()
    headers = [("Location", location), ("Content-Type", "text/plain; charset=utf-8")]
    return _response("308 Permanent Redirect", headers, b"" if parts[0] == "HEAD" else body)


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
        self.server = await asyncio.start_server(self._handle, sock=sock, limit=MAX_HEAD)
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
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
            except asyncio.LimitOverrunError:
                writer.write(_response("431 Request Header Fields Too Large", [], b""))
            except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
                return
            else:
                writer.write(redirect_answer(head, self.https_port))
            with contextlib.suppress(ConnectionError, TimeoutError):
                await asyncio.wait_for(writer.drain(), READ_TIMEOUT)
                await asyncio.wait_for(_linger(reader, writer), LINGER_TIMEOUT)
        finally:
            self.writers.discard(writer)
            writer.close()


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
