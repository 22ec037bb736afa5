"""Capability URLs: a random token in the path is the key to a share or an upload page.

A wrong token must be indistinguishable from any unknown path (same 404, same timing class), so
tokens are compared in constant time and never echoed back.
"""

from __future__ import annotations

import hmac
import re
import secrets

from comptoir.types import Message, Send

# On every answer under a capability link: the token in the URL must not leak through the Referer
# header of a link followed from the page, nor the page end up in a search engine.
LINK_HEADERS = ((b"referrer-policy", b"no-referrer"), (b"x-robots-tag", b"noindex"))

_TOKEN_CHARS = re.compile(r"^[A-Za-z0-9_-]+$")
# A token chosen by hand must still be too long to guess (a random one has 22 characters).
MIN_TOKEN_LENGTH = 16

# 128 bits of randomness, URL-safe base64 without padding (22 characters).
TOKEN_BYTES = 16


def new_token() -> str:
    """A fresh random capability token of 128 bits."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_problems(token: str) -> list[str]:
    """What is wrong with a token chosen by hand (`--token`), one sentence each."""
    if not _TOKEN_CHARS.match(token):
        return ["use only letters, digits, - and _"]
    if len(token) < MIN_TOKEN_LENGTH:
        return [f"use at least {MIN_TOKEN_LENGTH} characters"]
    return []


def token_matches(given: str, expected: str) -> bool:
    """Constant-time comparison of a token from a request with the expected one."""
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode())


def split_token(path: str, expected: str) -> str | None:
    """The rest of `path` after a matching `/<token>` prefix, or None if the token is wrong.

    `/<token>/a/b` gives `/a/b`, `/<token>/` gives `/`, and exactly `/<token>` gives "" (so the
    caller can redirect to the slash form).
    """
    head, sep, rest = path.lstrip("/").partition("/")
    if not token_matches(head, expected):
        return None
    return "/" + rest if sep else ""


def send_with_link_headers(send: Send) -> Send:
    """`send`, adding LINK_HEADERS to the response start."""

    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), *LINK_HEADERS]}
        await send(message)

    return send_with_headers
