"""Echo's answers computed from the request alone — /get, /headers, /ip, /user-agent — without
Starlette's Request and Response, and offered to the outer fast path (http/reuse.Computed).

/get is what load tests and health checks hit. Through the whole stack (host router, security
headers, theme, the site's CORS and size checks, the Starlette adapter and router, a Request, a
Response) it cost about 45 µs of Python; computed here and answered from the worker's outer app,
a fraction of that. The body is the same, byte for byte: the same functions of `inspection.py`
build it (tests/test_echo_differential.py compares with httpbin itself). Whatever these functions
would not answer as the full stack does — a request with a body (its size is checked there), a
mount the raw path does not spell as configured — is declined (None) and goes the long way.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from starlette.requests import HTTPConnection

from comptoir.hosts import RAW_ROOT_PATH
from comptoir.sites.echo.context import SCOPE_KEY, EchoContext
from comptoir.sites.echo.inspection import (
    ENV_HEADERS,
    header_name,
    origin,
    query_args,
    request_headers,
    request_url,
)
from comptoir.sites.echo.responses import pretty_at, pretty_json
from comptoir.types import Scope

# The headers of every computed answer, in the order the full stack sends them (Starlette's
# Response, then the site's CORS header). The security layer adds its own after them.
JSON_HEADERS = (
    (b"content-length", b"0"),
    (b"content-type", b"application/json"),
    (b"access-control-allow-origin", b"*"),
    (b"content-security-policy", b"sandbox"),
)
# Request headers that announce a body: its size must be checked, so the full stack answers.
_BODY_HEADERS = (b"content-length", b"transfer-encoding")

# What each answer's JSON is written from (its text, final newline included).
Describe = Callable[[HTTPConnection], str]

_json_string = json.encoder.encode_basestring_ascii
_SAFE_PATH = bytes(
    sorted(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~$!'()*+,;/:")
)
# Request headers after which the URL or the origin is not simply the Host, the path and the peer.
_UNUSUAL = frozenset(
    (b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-protocol", b"x-forwarded-ssl")
)


def _strings(obj: dict[str, str], indent: str) -> str:
    """`pretty_at` of a dict of strings (request headers), written in one expression."""
    if not obj:
        return "{}"
    inner = indent + "  "
    lines = [f"{inner}{_json_string(k)}: {_json_string(obj[k])}" for k in sorted(obj)]
    return "{\n" + ",\n".join(lines) + f"\n{indent}}}"


def _url_origin(conn: HTTPConnection) -> tuple[str, str]:
    """(url, origin) as `request_url` and `origin` give them, the usual request found in one
    pass: a plain Host, no forwarding headers, a path with nothing to escape, no mount."""
    scope = conn.scope
    host = b""
    for name, value in scope["headers"]:
        if name == b"host":
            host = value
        elif name in _UNUSUAL:
            return request_url(conn), origin(conn)
    raw = scope.get("raw_path")
    scheme = scope.get("scheme", "http")
    client = scope.get("client")
    if (
        not host
        or not host.isascii()
        or b"xn--" in host.lower()
        or raw is None
        or raw[:1] != b"/"
        or raw.translate(None, _SAFE_PATH)
        or scope.get("root_path")
        or scheme not in ("http", "https")
        or not client
    ):
        return request_url(conn), origin(conn)
    netloc = host.decode("ascii")
    if netloc.endswith(":80" if scheme == "http" else ":443"):
        netloc = netloc.rpartition(":")[0]
    url = f"{scheme}://{netloc}/{raw.lstrip(b'/').decode('ascii')}"
    query = scope.get("query_string", b"")
    if query:
        url = request_url(conn)
    return url, str(client[0])


def _get(conn: HTTPConnection) -> str:
    url, peer = _url_origin(conn)
    args = pretty_at(query_args(conn), "  ")
    headers = _strings(request_headers(conn), "  ")
    return (
        f'{{\n  "args": {args},\n  "headers": {headers},'
        f'\n  "origin": {_json_string(peer)},\n  "url": {_json_string(url)}\n}}\n'
    )


def _headers(conn: HTTPConnection) -> str:
    return f'{{\n  "headers": {_strings(request_headers(conn), "  ")}\n}}\n'


def _ip(conn: HTTPConnection) -> str:
    return f'{{\n  "origin": {_json_string(origin(conn))}\n}}\n'


def _user_agent(conn: HTTPConnection) -> str:
    found = request_headers(conn)
    value = next((v for k, v in found.items() if k.lower() == "user-agent"), None)
    return pretty_json({"user-agent": value}) + "\n"


# Route path → what its JSON holds (endpoints.py's get, headers, ip and user_agent).
DESCRIBE: dict[str, Describe] = {
    "/get": _get,
    "/headers": _headers,
    "/ip": _ip,
    "/user-agent": _user_agent,
}


def body(describe: Describe, scope: Scope) -> bytes | None:
    """The answer's body for a scope in Starlette's convention (the site's context in it), or
    None when the request has a body."""
    for name, _ in scope["headers"]:
        if name in _BODY_HEADERS:
            return None
    return describe(HTTPConnection(scope)).encode()


# Request headers the plain /get below leaves to the general code: what changes the URL, the
# origin or the headers shown (cookies are filtered, proxies' headers hidden), or announces a body.
_NOT_PLAIN = _UNUSUAL | ENV_HEADERS | {b"cookie", b"content-length", b"transfer-encoding"}


def plain_get(scope: Scope) -> bytes | None:
    """/get at the root for the usual request — no query, a plain Host, a path with nothing to
    escape, headers each sent once — written in one pass over the headers; None for anything
    else (the general functions above answer it, byte for byte the same where both do)."""
    raw = scope.get("raw_path")
    client = scope.get("client")
    scheme = scope.get("scheme", "http")
    if (
        scope.get("query_string")
        or scope.get("root_path")
        or raw is None
        or raw[:1] != b"/"
        or raw.translate(None, _SAFE_PATH)
        or not client
        or (scheme != "http" and scheme != "https")
    ):
        return None
    shown: dict[str, str] = {}
    host = b""
    for name, value in scope["headers"]:
        if name in _NOT_PLAIN:
            return None
        title = header_name(name)
        if title in shown:
            return None  # repeated: folded by the general code
        shown[title] = value.decode("latin-1")
        if name == b"host":
            host = value
    if not host or not host.isascii() or b"xn--" in host.lower():
        return None
    netloc = host.decode("ascii")
    if netloc.endswith(":80" if scheme == "http" else ":443"):
        netloc = netloc.rpartition(":")[0]
    url = f"{scheme}://{netloc}/{raw.lstrip(b'/').decode('ascii')}"
    return (
        f'{{\n  "args": {{}},\n  "headers": {_strings(shown, "  ")},'
        f'\n  "origin": {_json_string(str(client[0]))},\n  "url": {_json_string(url)}\n}}\n'
    ).encode()


def outer(describe: Describe, context: EchoContext) -> Callable[[Scope], bytes | None]:
    """The same answer, from the scope the worker receives (before the host router)."""
    prefix = context.prefix
    spelled = prefix.encode("utf-8", "surrogateescape")
    plain = describe is _get and not prefix

    def answer(scope: Scope) -> bytes | None:
        if plain:
            found = plain_get(scope)
            if found is not None:
                return found
        if scope.get("root_path"):
            return None  # a server-level root path: the router's arithmetic, not repeated here
        child = dict(scope)
        child[SCOPE_KEY] = context
        if prefix:
            raw = scope.get("raw_path")
            if raw is None or not raw.startswith(spelled + b"/"):
                return None
            # What the host router and the Starlette adapter make of it: the same paths, the
            # mount in root_path, spelled as in the raw path.
            child["root_path"] = prefix
            child[RAW_ROOT_PATH] = spelled
        return body(describe, child)

    return answer
