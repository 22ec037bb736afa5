"""Error answers: a status with a short text body, or JSON when the client asks for it."""

from __future__ import annotations

import json
from http import HTTPStatus

from comptoir.types import Scope, Send


def wants_json(scope: Scope) -> bool:
    """True when the client prefers JSON (`Accept: application/json`)."""
    for k, v in scope.get("headers", ()):
        if k.lower() == b"accept":
            return b"application/json" in v and b"text/html" not in v
    return False


def reason(status: int) -> str:
    """The standard reason phrase for a status code."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


async def send_error(
    scope: Scope,
    send: Send,
    status: int,
    message: str = "",
    headers: dict[str, str] | None = None,
) -> None:
    """Send a short error answer (text/plain or JSON), never echoing more than `message`."""
    text = message or reason(status)
    if wants_json(scope):
        body = json.dumps({"error": text, "status": status}).encode()
        ctype = b"application/json"
    else:
        body = (text + "\n").encode()
        ctype = b"text/plain; charset=utf-8"
    hdrs = [
        (b"content-type", ctype),
        (b"content-length", str(len(body)).encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"cache-control", b"no-store"),
    ]
    for k, v in (headers or {}).items():
        hdrs.append((k.lower().encode("latin-1"), v.encode("latin-1")))
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    body_out = b"" if scope.get("method") == "HEAD" else body
    await send({"type": "http.response.body", "body": body_out})
