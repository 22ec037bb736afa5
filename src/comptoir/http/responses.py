"""Small answers a site builds itself: pages, JSON and text that no cache may keep; empty ones."""

from __future__ import annotations

from comptoir.types import Send


async def send_empty(send: Send, status: int, headers: list[tuple[bytes, bytes]]) -> None:
    """An answer without a body (204, 304, 412, 416, a HEAD): `headers` are sent as they are."""
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


async def send_uncached(
    send: Send,
    status: int,
    body: bytes,
    ctype: bytes | None,
    *,
    head: bool = False,
    vary: bool = False,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Send `body` with `Cache-Control: no-store` (what a capability link shows is private).

    `vary` marks an answer chosen by the `Accept` header (a page for browsers, JSON for scripts);
    `head` sends the headers of the answer without its body.
    """
    hdrs = [
        (b"cache-control", b"no-store"),
        (b"x-content-type-options", b"nosniff"),
        *(headers or []),
    ]
    if status != 204 and not any(k == b"content-length" for k, _ in hdrs):
        hdrs.append((b"content-length", str(len(body)).encode()))
    if ctype is not None:
        hdrs.append((b"content-type", ctype))
    if vary:
        hdrs.append((b"vary", b"Accept"))
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": b"" if head else body})
