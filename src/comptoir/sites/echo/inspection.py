"""What httpbin reports about a request: url, args, form, data, files, json, headers, origin.

Every field is computed the way httpbin 0.10 (Flask on werkzeug 2.2 behind a WSGI server)
computes it, so that a suite written against httpbin sees the same JSON here: header names in
WSGI's Title-Case, the URL as werkzeug's IRI, binary data as `data:` URLs, one file per field.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, unquote_to_bytes

from python_multipart import MultipartParser
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header
from starlette.requests import HTTPConnection, Request

from comptoir.errors import HTTPError
from comptoir.http.cookies import without_own_cookies
from comptoir.http.numbers import parse_decimal
from comptoir.sites.echo.context import echo_context
from comptoir.sites.starlette import route_path, route_raw_path

# Headers a proxy in front of httpbin.org added; hidden unless the query has `show_env`.
ENV_HEADERS = frozenset(
    h.lower().encode("latin-1")
    for h in (
        "X-Varnish",
        "X-Request-Start",
        "X-Heroku-Queue-Depth",
        "X-Real-Ip",
        "X-Forwarded-Proto",
        "X-Forwarded-Protocol",
        "X-Forwarded-Ssl",
        "X-Heroku-Queue-Wait-Time",
        "X-Forwarded-For",
        "X-Heroku-Dynos-In-Use",
        "X-Forwarded-Port",
        "X-Request-Id",
        "Via",
        "Total-Route-Time",
        "Connect-Time",
    )
)

FORM_TYPES = frozenset(("application/x-www-form-urlencoded", "application/x-url-encoded"))

# werkzeug's URL quoting: characters safe in any part of a URL, plus those safe in paths/queries.
_ALWAYS_SAFE = frozenset(
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~$!'()*+,;"
)
_PATH_SAFE = _ALWAYS_SAFE | frozenset(b"/:")
_QUERY_SAFE = _ALWAYS_SAFE | frozenset(b":&%=+$!*'(),")
_HEX = frozenset(b"0123456789abcdefABCDEF")
_SAFE_BYTES = {safe: bytes(sorted(safe)) for safe in (_PATH_SAFE, _QUERY_SAFE)}


def json_safe(data: bytes, content_type: str = "application/octet-stream") -> str:
    """`data` as text when it is UTF-8, else as a `data:` URL (base64), as httpbin shows bodies."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return f"data:{content_type};base64,{base64.b64encode(data).decode('ascii')}"


def semiflatten(pairs: Iterable[tuple[str, str]]) -> dict[str, str | list[str]]:
    """A dict of the pairs: a key seen once maps to its value, a repeated key to a list."""
    lists: dict[str, list[str]] = {}
    for k, v in pairs:
        lists.setdefault(k, []).append(v)
    return {k: v[0] if len(v) == 1 else v for k, v in lists.items()}


def parse_pairs(raw: bytes) -> list[tuple[str, str]]:
    """Decode `a=1&b=%C3%A9` (query string or form body): `+` is a space, UTF-8 with U+FFFD."""
    if not raw:
        return []
    # parse_qsl refuses non-ASCII bytes; latin-1 maps bytes to characters one to one and back.
    pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True, encoding="latin-1")
    return [(_utf8(k), _utf8(v)) for k, v in pairs]


def _utf8(text: str) -> str:
    return text.encode("latin-1").decode("utf-8", "replace")


def query_args(conn: HTTPConnection) -> dict[str, str | list[str]]:
    """The query string as httpbin's `args`."""
    return semiflatten(parse_pairs(conn.scope.get("query_string", b"")))


def query_value(conn: HTTPConnection, name: str) -> str | None:
    """The first value of a query parameter, matched case-insensitively (as httpbin does)."""
    wanted = name.lower()
    for k, v in parse_pairs(conn.scope.get("query_string", b"")):
        if k.lower() == wanted:
            return v
    return None


def query_int(conn: HTTPConnection, name: str, default: int) -> int:
    """A whole number from the query string, or HTTPError 400."""
    raw = query_value(conn, name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise HTTPError(400, f"invalid {name}: not a whole number") from None


_HEADER_NAMES: dict[bytes, str] = {}


def header_name(raw: bytes) -> str:
    """A header name as a WSGI app sees it: `x_my-header` → `X-My-Header`."""
    # The same few names come in every request: remember them (a bounded table).
    name = _HEADER_NAMES.get(raw)
    if name is None:
        name = raw.decode("latin-1").replace("_", "-").title()
        if len(_HEADER_NAMES) < 1024:
            _HEADER_NAMES[bytes(raw)] = name
    return name


def request_headers(conn: HTTPConnection, *, hide_env: bool = True) -> dict[str, str]:
    """The request's headers as httpbin's `headers` (proxy headers hidden unless `show_env`)."""
    if hide_env and "show_env" in dict(parse_pairs(conn.scope.get("query_string", b""))):
        hide_env = False
    out: dict[str, str] = {}
    for k, v in conn.scope.get("headers", ()):
        if hide_env and k.lower() in ENV_HEADERS:
            continue
        name = header_name(k)
        if name == "Cookie":
            # comptoir's own cookies (a session) are never shown back.
            v = without_own_cookies(v)
            if v is None:
                continue
        value = v.decode("latin-1")
        if name in out:
            # A WSGI server folds repeated headers into one; cookies fold with "; ".
            out[name] += ("; " if name == "Cookie" else ",") + value
        else:
            out[name] = value
    return out


def header(conn: HTTPConnection, name: str) -> str | None:
    """The value of one request header (latin-1 decoded), or None."""
    wanted = name.lower().encode("latin-1")
    for k, v in conn.scope.get("headers", ()):
        if k.lower() == wanted:
            return bytes(v).decode("latin-1")
    return None


def origin(conn: HTTPConnection) -> str:
    """httpbin's `origin`: X-Forwarded-For as given, else the peer's address."""
    forwarded = header(conn, "x-forwarded-for")
    if forwarded is not None:
        return forwarded
    client = conn.scope.get("client")
    return str(client[0]) if client else ""


def request_host(conn: HTTPConnection) -> str:
    """The host (and port) the client addressed, as werkzeug's `request.host`."""
    host = header(conn, "host")
    scheme = conn.scope.get("scheme", "http")
    if host is None:
        server = conn.scope.get("server")
        host = f"{server[0]}:{server[1]}" if server and server[1] is not None else "localhost"
    if scheme in ("http", "ws") and host.endswith(":80"):
        host = host[:-3]
    elif scheme in ("https", "wss") and host.endswith(":443"):
        host = host[:-4]
    return host


_FORWARDED_SCHEME = (b"x-forwarded-proto", b"x-forwarded-protocol", b"x-forwarded-ssl")


def request_scheme(conn: HTTPConnection) -> str:
    """The scheme the client used, trusting X-Forwarded-Proto/-Protocol/-Ssl as httpbin does."""
    if not any(k.lower() in _FORWARDED_SCHEME for k, _ in conn.scope.get("headers", ())):
        # The usual case, found in one pass.
        scheme = str(conn.scope.get("scheme", "http"))
        return {"ws": "http", "wss": "https"}.get(scheme, scheme)
    proto = header(conn, "x-forwarded-proto") or header(conn, "x-forwarded-protocol")
    if proto is None and header(conn, "x-forwarded-ssl") == "on":
        proto = "https"
    if proto is not None:
        return proto
    scheme = str(conn.scope.get("scheme", "http"))
    return {"ws": "http", "wss": "https"}.get(scheme, scheme)


def base_url(conn: HTTPConnection) -> str:
    """`scheme://host` + the site's prefix: what absolute links of the site start with."""
    return f"{request_scheme(conn)}://{request_host(conn)}{echo_context(conn).prefix}"


def request_path(conn: HTTPConnection) -> str:
    """The path below the site's prefix, percent-decoded as UTF-8 (U+FFFD for bad bytes)."""
    raw = route_raw_path(conn.scope)
    if raw is None:
        return route_path(conn.scope)
    # Some servers and test clients leave the query in raw_path; it never contains a literal "?".
    raw = raw.split(b"?", 1)[0]
    return unquote_to_bytes(raw).decode("utf-8", "replace")


def raw_request_target(conn: HTTPConnection) -> bytes:
    """The request-target as the client sent it: the whole raw path, the mount included as the
    client spelled it (sites/starlette.py puts it back in `raw_path`), and the query."""
    raw: bytes | None = conn.scope.get("raw_path")
    if raw is None:
        # No raw path from the server: the decoded one, encoded again.
        path = quote(conn.scope["path"], errors="surrogateescape").encode()
    else:
        # Some servers and test clients leave the query in raw_path; it has no literal "?".
        path = raw.split(b"?", 1)[0]
    query: bytes = conn.scope.get("query_string", b"")
    return path + b"?" + query if query else path


def request_target(conn: HTTPConnection) -> str:
    """`raw_request_target` as text, byte for byte (latin-1), as a digest's `uri` is compared."""
    return raw_request_target(conn).decode("latin-1")


def request_url(conn: HTTPConnection) -> str:
    """httpbin's `url`: the request's URL as werkzeug rebuilds it (an IRI)."""
    prefix = echo_context(conn).prefix
    raw = route_raw_path(conn.scope)
    if not prefix and raw and raw[:1] == b"/" and not raw.translate(None, _SAFE_BYTES[_PATH_SAFE]):
        # The usual case: nothing escaped, nothing to escape; the path is the URL's as sent.
        path = "/" + raw.lstrip(b"/").decode("ascii")
    else:
        path = _quote(prefix.rstrip("/").encode(), _PATH_SAFE) + "/"
        path += _quote(request_path(conn).lstrip("/").encode(), _PATH_SAFE)
        path = _to_iri(path)
    url = f"{request_scheme(conn)}://{_decode_netloc(request_host(conn))}{path}"
    query = conn.scope.get("query_string", b"")
    if query:
        url += "?" + _to_iri(_quote(query, _QUERY_SAFE))
    return url


def _quote(data: bytes, safe: frozenset[int]) -> str:
    # Most URLs need no quoting: find that out at C speed (translate deletes every safe byte).
    if not data.translate(None, _SAFE_BYTES[safe]):
        return data.decode("ascii")
    return "".join(chr(b) if b in safe else f"%{b:02X}" for b in data)


def _to_iri(uri: str) -> str:
    """Undo the percent-encoding of non-ASCII UTF-8 and unreserved characters (uri_to_iri)."""
    if "%" not in uri:
        return uri
    pieces = uri.encode("ascii").split(b"%")
    out = bytearray(pieces[0])
    for piece in pieces[1:]:
        code = piece[:2]
        if len(code) == 2 and code[0] in _HEX and code[1] in _HEX:
            byte = int(code, 16)
            if byte >= 0x80 or byte in _ALWAYS_SAFE:
                out.append(byte)
                out += piece[2:]
                continue
        out += b"%" + piece
    text = out.decode("utf-8", "surrogateescape")
    # Bytes that are not UTF-8 stay percent-encoded.
    return "".join(f"%{ord(c) - 0xDC00:02X}" if "\udc80" <= c <= "\udcff" else c for c in text)


def _decode_netloc(host: str) -> str:
    if "xn--" not in host.lower():
        return host
    name, colon, port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
    if not colon or not port.isdigit():
        name, colon, port = host, "", ""
    labels = []
    for label in name.split("."):
        try:
            labels.append(label.encode("ascii").decode("idna"))
        except UnicodeError:
            labels.append(label)
    return ".".join(labels) + colon + port


@dataclass
class Body:
    """A request body as httpbin describes it."""

    form: dict[str, str | list[str]] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    # The raw body unless a form parser consumed it (then empty), as werkzeug's `request.data`.
    data: bytes = b""

    @property
    def json(self) -> Any:
        """The body parsed as JSON, or None."""
        try:
            return json.loads(self.data.decode("utf-8"))
        except (ValueError, RecursionError):
            return None


async def read_body(request: Request, limit: int) -> bytes:
    """The whole request body, or HTTPError 413 as soon as it is known to exceed `limit`."""
    declared = request.headers.get("content-length")
    if declared is not None:
        length = parse_decimal(declared.strip())
        if length is None:
            raise HTTPError(400, "invalid Content-Length")
        if length > limit:
            raise HTTPError(413, f"request body larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPError(413, f"request body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_body(content_type: str, raw: bytes) -> Body:
    """Split a body into form fields, files and data, as werkzeug's form parser does."""
    mimetype, params = parse_options_header(content_type)
    mime = mimetype.decode("latin-1").lower()
    if mime in FORM_TYPES:
        return Body(form=semiflatten(parse_pairs(raw)))
    boundary = params.get(b"boundary")
    if mime == "multipart/form-data" and boundary:
        form, files = _parse_multipart(raw, boundary)
        return Body(form=form, files=files)
    return Body(data=raw)


def _parse_multipart(
    raw: bytes, boundary: bytes
) -> tuple[dict[str, str | list[str]], dict[str, str]]:
    parts: list[tuple[dict[bytes, bytes], bytearray]] = []
    header_field = bytearray()
    header_value = bytearray()

    def on_part_begin() -> None:
        parts.append(({}, bytearray()))
        header_field.clear()
        header_value.clear()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        parts[-1][1].extend(data[start:end])

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_field.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        parts[-1][0][bytes(header_field).lower()] = bytes(header_value)
        header_field.clear()
        header_value.clear()

    callbacks: Any = {
        "on_part_begin": on_part_begin,
        "on_part_data": on_part_data,
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
    }
    parser = MultipartParser(boundary, callbacks)
    try:
        parser.write(raw)
        parser.finalize()
    except FormParserError:
        raise HTTPError(400, "malformed multipart body") from None
    fields: list[tuple[str, str]] = []
    files: dict[str, str] = {}
    for headers, data in parts:
        _, disposition = parse_options_header(headers.get(b"content-disposition", b""))
        name = disposition.get(b"name")
        if name is None:
            continue
        key = name.decode("utf-8", "replace")
        if b"filename" in disposition:
            # httpbin shows the first file of each field only.
            if key not in files:
                ctype = headers.get(b"content-type", b"").decode("latin-1")
                files[key] = json_safe(bytes(data), ctype or "application/octet-stream")
        else:
            fields.append((key, bytes(data).decode("utf-8", "replace")))
    return semiflatten(fields), files


async def request_body(request: Request) -> Body:
    """Read (within the site's max body) and parse the request body."""
    raw = await read_body(request, echo_context(request).options.max_body)
    return parse_body(request.headers.get("content-type", ""), raw)


async def describe(request: Request, *keys: str, **extra: Any) -> dict[str, Any]:
    """httpbin's `get_dict(*keys, **extra)`: the named fields of the request, plus `extra`."""
    body = Body()
    if {"form", "data", "files", "json"} & set(keys):
        body = await request_body(request)
    values: dict[str, Any] = {
        "url": lambda: request_url(request),
        "args": lambda: query_args(request),
        "form": lambda: body.form,
        "data": lambda: json_safe(body.data),
        "origin": lambda: origin(request),
        "headers": lambda: request_headers(request),
        "files": lambda: body.files,
        "json": lambda: body.json,
        "method": lambda: request.method,
    }
    out = {key: values[key]() for key in keys}
    out.update(extra)
    return out
