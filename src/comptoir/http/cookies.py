"""Cookies: reading the `Cookie` header and writing `Set-Cookie`, with explicit attributes.

comptoir sets only a few cookies of its own (README, "Cookies"); every one is written here, so
their attributes are decided in one place and tests can assert them exactly.
"""

from __future__ import annotations

from typing import Literal

from comptoir.types import Scope

SameSite = Literal["Strict", "Lax"]


def request_cookies(scope: Scope) -> dict[str, str]:
    """The cookies a request carries (the first value wins when a name repeats)."""
    out: dict[str, str] = {}
    for k, v in scope.get("headers", ()):
        if k != b"cookie":
            continue
        for piece in v.decode("latin-1").split(";"):
            name, sep, value = piece.strip().partition("=")
            if sep and name and name not in out:
                out[name] = value.strip().strip('"')
    return out


def request_cookie(scope: Scope, name: str) -> str | None:
    """One cookie of the request, or None."""
    return request_cookies(scope).get(name)


def set_cookie(
    name: str,
    value: str,
    *,
    max_age: int | None = None,
    http_only: bool = True,
    secure: bool = False,
    same_site: SameSite = "Lax",
    path: str = "/",
) -> tuple[bytes, bytes]:
    """A `Set-Cookie` header; `max_age=None` makes a cookie that ends with the browser session."""
    parts = [f"{name}={value}", f"Path={path}"]
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    if http_only:
        parts.append("HttpOnly")
    if secure:
        parts.append("Secure")
    parts.append(f"SameSite={same_site}")
    return b"set-cookie", "; ".join(parts).encode("latin-1")


def delete_cookie(
    name: str, *, http_only: bool = True, secure: bool = False, path: str = "/"
) -> tuple[bytes, bytes]:
    """A `Set-Cookie` header removing a cookie (same attributes, `Max-Age=0`)."""
    return set_cookie(name, "", max_age=0, http_only=http_only, secure=secure, path=path)
