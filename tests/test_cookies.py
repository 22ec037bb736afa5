"""Reading the Cookie header (Starlette's parser) and writing Set-Cookie."""

from __future__ import annotations

import subprocess
import sys

import pytest

from comptoir.http.cookies import delete_cookie, request_cookie, request_cookies, set_cookie


def scope_with(*cookie_headers: bytes) -> dict[str, object]:
    """A request scope carrying these Cookie headers (and others around them)."""
    headers = [(b"host", b"h"), *((b"cookie", v) for v in cookie_headers), (b"accept", b"*/*")]
    return {"type": "http", "headers": headers}


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ((), {}),
        ((b"",), {}),
        ((b"a=1",), {"a": "1"}),
        ((b"a=1; b=2;c=3 ;  d = 4 ",), {"a": "1", "b": "2", "c": "3", "d": "4"}),
        ((b'q="x y"; e=',), {"q": "x y", "e": ""}),
        # The first value of a name wins: browsers send the most specific cookie first.
        ((b"s=ours; s=theirs",), {"s": "ours"}),
        # HTTP/2 clients may send one header per cookie.
        ((b"a=1", b"b=2; a=3"), {"a": "1", "b": "2"}),
        ((b"t=caf\xc3\xa9",), {"t": "caf\xc3\xa9"}),  # bytes as latin-1, never an error
    ],
)
def test_request_cookies(headers: tuple[bytes, ...], expected: dict[str, str]) -> None:
    assert request_cookies(scope_with(*headers)) == expected


def test_request_cookie() -> None:
    scope = scope_with(b"comptoir_theme=dark; comptoir_session=abc")
    assert request_cookie(scope, "comptoir_session") == "abc"
    assert request_cookie(scope, "missing") is None
    assert request_cookie({"type": "http"}, "comptoir_session") is None


def test_set_and_delete_cookie_attributes() -> None:
    assert set_cookie("n", "v", max_age=60, secure=True) == (
        b"set-cookie",
        b"n=v; Path=/; Max-Age=60; HttpOnly; Secure; SameSite=Lax",
    )
    assert delete_cookie("n", path="/x") == (
        b"set-cookie",
        b"n=; Path=/x; Max-Age=0; HttpOnly; SameSite=Lax",
    )


def test_the_cli_starts_without_starlette() -> None:
    """The cookie parser comes with starlette.requests, which the CLI must not pay for."""
    code = "import sys, comptoir.cli; print(sorted(m for m in sys.modules if 'starlette' in m))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
