"""Cookies: reading the `Cookie` header and writing `Set-Cookie`, with explicit attributes.

comptoir sets only a few cookies of its own (README, "Cookies"); every one is written here, so
their attributes are decided in one place and tests can assert them exactly.
"""

from __future__ import annotations

from typing import Literal

from starlette.requests import cookie_parser

from comptoir.types import Scope

SameSite = Literal["Strict", "Lax"]


def request_cookies(scope: Scope) -> dict[str, str]:
    """The cookies a request carries (the first value wins when a name repeats)."""
    # HTTP/2 may split the header in several: RFC 9113 §8.2.3 joins them with "; ".
    header = "; ".join(v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"cookie")
    if not header:
        return {}
    # cookie_parser keeps the last value of a name. Browsers send the cookie of the longest path,
    # then the oldest, first (RFC 6265 §5.4): ours, not one that a sibling host set later for the
    # parent domain. So the pieces go to it in reverse order.
    return cookie_parser(";".join(reversed(header.split(";"))))


def request_cookie(scope: Scope, name: str) -> str | None:
    """One cookie of the request, or None."""
    return request_cookies(scope).get(name)


def request_cookie_values(scope: Scope, name: str, limit: int = 8) -> list[str]:
    """Every value a request carries for cookie `name`, in the order sent (at most `limit`).

    A name can come several times: the same cookie set for different paths or domains. Which one
    is "ours" is not for the order to decide (a sibling site can plant one with a longer path,
    which browsers send first), so a caller that checks values checks each.
    """
    header = "; ".join(v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"cookie")
    values = []
    for piece in header.split(";"):
        value = cookie_parser(piece).get(name)
        if value is not None:
            values.append(value)
            if len(values) >= limit:
                break
    return values


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


# What names comptoir's own cookies (session, login form, theme): an echo site neither shows
# them (/cookies, /headers, /dump/request…) nor sets them.
OWN_PREFIX = b"comptoir_"


def is_own_cookie(name: str) -> bool:
    """True for the name of one of comptoir's own cookies."""
    return name.strip().encode("latin-1", "replace").startswith(OWN_PREFIX)


def without_own_cookies(value: bytes) -> bytes | None:
    """A Cookie header's value without comptoir's own cookies (None when nothing is left).

    A page the client chose (echo) must not read an HttpOnly session cookie back: a browser sends
    a host's cookies to every port and, for a Path=/ cookie, to every path of it.
    """
    if OWN_PREFIX not in value:
        return value
    kept = [p for p in value.split(b";") if not p.lstrip().startswith(OWN_PREFIX)]
    joined = b";".join(kept).lstrip()
    return joined or None
