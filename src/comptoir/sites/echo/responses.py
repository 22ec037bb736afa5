"""Answers shaped as httpbin's: pretty JSON, status codes with their special cases, redirects,
cookies, and the files shipped in `assets/`."""

from __future__ import annotations

import json
import math
import random
from functools import cache
from http.cookies import CookieError, SimpleCookie
from importlib import resources
from typing import Any

from starlette.responses import Response

from comptoir.errors import HTTPError
from comptoir.http.paths import location_value

TEXT = "text/plain; charset=utf-8"
HTML = "text/html; charset=utf-8"
# Media types /image negotiates, in httpbin's order of preference.
ACCEPTED_IMAGES = ("image/webp", "image/svg+xml", "image/jpeg", "image/png", "image/*")


# C-accelerated: a string as a JSON literal, non-ASCII escaped (json.dumps's ensure_ascii).
_json_string = json.encoder.encode_basestring_ascii


class _NotPlain(Exception):
    """A value pretty_json leaves to the json module (a dict with keys that are not strings)."""


def pretty_at(obj: Any, indent: str) -> str:
    if isinstance(obj, str):
        return _json_string(obj)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        inner = indent + "  "
        try:
            keys = sorted(obj)
        except TypeError:
            raise _NotPlain from None
        lines = []
        for k in keys:
            if not isinstance(k, str):
                raise _NotPlain
            v = obj[k]
            # Most values are strings (headers, args): no recursive call for them.
            shown = _json_string(v) if type(v) is str else pretty_at(v, inner)
            lines.append(f"{inner}{_json_string(k)}: {shown}")
        return "{\n" + ",\n".join(lines) + f"\n{indent}}}"
    if isinstance(obj, list | tuple):
        if not obj:
            return "[]"
        inner = indent + "  "
        return "[\n" + ",\n".join(inner + pretty_at(v, inner) for v in obj) + f"\n{indent}]"
    # Numbers, booleans, None: exactly as the json module writes them.
    return json.dumps(obj)


def pretty_json(obj: Any) -> str:
    """`json.dumps(obj, indent=2, sort_keys=True)`, byte for byte, several times faster.

    With an indent the json module encodes in pure Python; httpbin's answers are small trees of
    strings, which this writes with the C string encoder.
    """
    try:
        try:
            return pretty_at(obj, "")
        except _NotPlain:
            return json.dumps(obj, indent=2, sort_keys=True)
    except RecursionError:
        # A body nested hundreds of levels deep parses, but cannot be written back with indents.
        raise HTTPError(400, "JSON nested too deeply to show") from None


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON answer formatted as httpbin's (2-space indent, sorted keys, ASCII, final newline)."""
    body = pretty_json(obj) + "\n"
    return Response(body.encode(), status, headers, media_type="application/json")


def text_response(
    text: str, status: int = 200, media_type: str = TEXT, headers: dict[str, str] | None = None
) -> Response:
    """A short text answer."""
    return Response(text.encode(), status, headers, media_type=media_type)


def header_text(value: str) -> str:
    """A header value the client chose, made safe to send; HTTPError 400 for control characters.

    Starlette encodes header values as latin-1: UTF-8 text travels as its bytes (obs-text).
    """
    if any((ord(c) < 0x20 and c != "\t") or c == "\x7f" for c in value):
        raise HTTPError(400, "header values cannot hold control characters")
    return value.encode("utf-8").decode("latin-1")


def redirect(location: str, status: int = 302, headers: dict[str, str] | None = None) -> Response:
    """A redirect with an empty body."""
    return Response(b"", status, {**(headers or {}), "location": header_text(location)})


def parse_status(text: str) -> int:
    """A status code a client asked for: 200 to 599, else HTTPError 400.

    1xx codes are refused: they cannot be the final answer to a request.
    """
    try:
        code = int(text)
    except ValueError:
        raise HTTPError(400, "Invalid status code") from None
    if not 200 <= code <= 599:
        raise HTTPError(400, "Invalid status code: must be between 200 and 599")
    return code


def choose_status(spec: str, rng: random.Random | None = None) -> int:
    """The code of `/status/{spec}`: one code, or a weighted pick from `200:0.5,500:0.5`."""
    if "," not in spec:
        return parse_status(spec)
    codes: list[int] = []
    weights: list[float] = []
    for choice in spec.split(","):
        code, _, weight = choice.partition(":")
        codes.append(parse_status(code))
        try:
            w = float(weight) if weight else 1.0
        except ValueError:
            raise HTTPError(400, "Invalid status code weight") from None
        if not 0 <= w < float("inf"):
            raise HTTPError(400, "Invalid status code weight")
        weights.append(w)
    if sum(weights) <= 0:
        raise HTTPError(400, "Invalid status code weights: they add up to 0")
    if not math.isfinite(sum(weights)):
        raise HTTPError(400, "Invalid status code weights: their sum is too large")
    return (rng or random).choices(codes, weights)[0]


def status_response(code: int, prefix: str) -> Response:
    """The answer of `/status/{code}`, with httpbin's special headers and bodies."""
    if code in (301, 302, 303, 305, 307):
        return Response(
            b"",
            code,
            {"location": location_value(prefix + "/redirect/1").decode()},
            media_type=HTML,
        )
    if code == 401:
        return Response(b"", code, {"www-authenticate": 'Basic realm="Fake Realm"'})
    if code == 402:
        return text_response("Pay me!", code, headers={"x-more-info": "http://vimeo.com/22053820"})
    if code == 406:
        body = {
            "message": "Client did not request a supported media type.",
            "accept": list(ACCEPTED_IMAGES),
        }
        return Response(json.dumps(body).encode(), code, media_type="application/json")
    if code == 407:
        return Response(b"", code, {"proxy-authenticate": 'Basic realm="Fake Realm"'})
    if code == 418:
        return text_response(
            "I'm a teapot!\n", code, headers={"x-more-info": "http://tools.ietf.org/html/rfc2324"}
        )
    return Response(b"", code, media_type=None if code in (204, 304) else HTML)


def cookie_header(name: str, value: str, path: str, *, delete: bool = False) -> str:
    """A Set-Cookie value (quoted as werkzeug quotes); HTTPError 400 for an impossible name."""
    jar: SimpleCookie = SimpleCookie()
    try:
        # Non-ASCII values travel as their UTF-8 bytes, octal-escaped inside quotes.
        jar[name] = value.encode("utf-8").decode("latin-1")
    except CookieError:
        raise HTTPError(400, f"invalid cookie name: {name!r}") from None
    morsel = jar[name]
    morsel["path"] = path
    if delete:
        morsel.set(name, "", "")
        morsel["expires"] = "Thu, 01 Jan 1970 00:00:00 GMT"
        morsel["max-age"] = 0
    return morsel.OutputString()


def parse_cookies(header: str | None) -> dict[str, str]:
    """The cookies of a Cookie header, as a browser meant them (quotes and escapes undone)."""
    out: dict[str, str] = {}
    for chunk in (header or "").split(";"):
        name, eq, value = chunk.partition("=")
        name, value = name.strip(), value.strip()
        if not name or not eq:
            continue
        out.setdefault(name, _unquote_cookie(value))
    return out


def _unquote_cookie(value: str) -> str:
    if len(value) < 2 or value[0] != '"' or value[-1] != '"':
        return value.encode("latin-1", "replace").decode("utf-8", "replace")
    inner = value[1:-1]
    out = bytearray()
    i = 0
    while i < len(inner):
        c = inner[i]
        octal = inner[i + 1 : i + 4]
        if c == "\\" and len(octal) == 3 and all(d in "01234567" for d in octal):
            out.append(int(octal, 8) & 0xFF)
            i += 4
        elif c == "\\" and i + 1 < len(inner):
            out += inner[i + 1].encode("latin-1", "replace")
            i += 2
        else:
            out += c.encode("latin-1", "replace")
            i += 1
    return out.decode("utf-8", "replace")


@cache
def asset(name: str) -> bytes:
    """A file shipped in the echo site's assets/ folder."""
    return (resources.files("comptoir.sites.echo") / "assets" / name).read_bytes()
