"""Virtual hosts: choose the site for a request from its `Host:` header and path.

Matching rules (the README's "Virtual hosts" section documents them):
- host names compare case-insensitively, without the port and without a trailing dot; IDNA names
  match in Unicode or punycode (both are reduced to punycode, as browsers send them);
- an exact name beats a `*.example.com` wildcard (which covers exactly one label, as in Caddy),
  which beats the site marked `default`; a site with no `hosts` answers any host;
- among the sites of the chosen host, the longest `path` prefix wins (on whole components); when
  none of them is mounted at a prefix of the path, the next rule down is tried;
- the prefix is moved from `path` to `root_path`, so the site sees its own root; a request for
  exactly `/prefix` is redirected to `/prefix/` so that relative links resolve inside the site;
  the prefix as the client spelled it (`/%65cho` for /echo) is kept under `RAW_ROOT_PATH`;
- an HTTP/1.1 request without `Host:`, or with two, gets 400 whatever the sites, a single one too.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote, unquote_to_bytes

from comptoir.http.errors import send_error
from comptoir.types import ASGIApp, Receive, Scope, Send

# One ASCII label of a host name; underscores appear in real-world names (e.g. Docker services).
# Scope key: the bytes of `raw_path` that spelled `root_path`, as the client sent them (absent when
# they cannot be told apart from the rest): a site reporting the request as sent puts them back.
RAW_ROOT_PATH = "comptoir.raw_root_path"

_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")


def normalize_host(host: str, *, wildcard: bool = False) -> str | None:
    """Reduce a host name (from config or a Host header) to its canonical form, or None if bad.

    Lower case, no port, no trailing dot, non-ASCII labels in punycode; IPv6 literals keep their
    brackets. With `wildcard`, a leading `*` label is allowed (for names in the configuration).
    """
    host = host.strip()
    if host.startswith("["):
        return _normalize_ipv6(host)
    if host.count(":") == 1:
        host, _, port = host.partition(":")
        if not _valid_port(port):
            return None
    elif ":" in host:
        # An IPv6 address without brackets is not a valid Host value.
        return None
    if host.endswith("."):
        host = host[:-1]
    if not host or len(host) > 253:
        return None
    labels = host.split(".")
    out = []
    for i, label in enumerate(labels):
        if label == "*" and wildcard and i == 0 and len(labels) > 1:
            out.append(label)
            continue
        ascii_label = _ascii_label(label)
        if ascii_label is None:
            return None
        out.append(ascii_label)
    return ".".join(out)


def _valid_port(port: str) -> bool:
    # An empty port is allowed by RFC 3986 ("host:").
    return port == "" or (port.isascii() and port.isdigit())


def _ascii_label(label: str) -> str | None:
    if not label.isascii():
        # What browsers do (UTS #46, non-transitional: "ß" stays "ß"): map compatibility forms,
        # lower-case, then punycode, so Unicode and punycode spellings compare equal.
        folded = unicodedata.normalize("NFKC", label.lower())
        try:
            label = folded if folded.isascii() else "xn--" + folded.encode("punycode").decode()
        except UnicodeError:
            return None
    label = label.lower()
    return label if _LABEL.fullmatch(label) else None


def _normalize_ipv6(host: str) -> str | None:
    end = host.find("]")
    if end == -1:
        return None
    rest = host[end + 1 :]
    if rest and not (rest[0] == ":" and _valid_port(rest[1:])):
        return None
    try:
        address = ipaddress.IPv6Address(host[1:end])
    except ValueError:
        return None
    return f"[{address.compressed}]"


def url_host(host: str) -> str:
    """The name a URL shows for a configured host: `www.example.test` for `*.example.test`."""
    return "www" + host[1:] if host.startswith("*.") else host


def wildcard_under_top_level(name: str) -> bool:
    """True for `*.localhost`, `*.test`: a wildcard TLS clients refuse (two labels must follow)."""
    return name.startswith("*.") and "." not in name[2:]


def certificate_name(text: str) -> str:
    """A name for a TLS certificate (host, `*.` wildcard or IP address), canonical; ValueError."""
    name = text.strip()
    with contextlib.suppress(ValueError):  # not an address: a host name, checked below
        return str(ipaddress.ip_address(name.removeprefix("[").removesuffix("]")))
    # No port (normalize_host would drop it): a certificate names hosts, not services.
    normalized = normalize_host(name, wildcard=True) if ":" not in name else None
    if normalized is None:
        raise ValueError(f"not a host name or IP address: {text!r}")
    if wildcard_under_top_level(normalized):
        raise ValueError(
            f"{text}: clients refuse a wildcard directly under a top-level name;"
            f" name each host (e.g. {url_host(normalized)})"
        )
    return normalized


def normalize_mount(path: str) -> str:
    """A mount path in canonical form: leading slash, no trailing slash ("/" for the root)."""
    return "/" + path.strip("/")


@dataclass(frozen=True)
class Route:
    """A site as the router sees it."""

    app: ASGIApp
    hosts: tuple[str, ...]  # normalized; empty: any host
    path: str  # "/" or "/prefix" without trailing slash
    default: bool = False

    def covers(self, path: str) -> bool:
        """True when the request path lies under this route's mount point."""
        if self.path == "/":
            return True
        return path == self.path or path.startswith(self.path + "/")


class HostRouter:
    """The ASGI app in front of all sites: dispatches by Host header, then by path prefix."""

    def __init__(self, routes: Sequence[Route]) -> None:
        self.exact: dict[str, list[Route]] = {}
        self.wildcard: dict[str, list[Route]] = {}
        self.any_host: list[Route] = []
        self.default: list[Route] = []
        for r in routes:
            if not r.hosts:
                self.any_host.append(r)
            for h in r.hosts:
                if h.startswith("*."):
                    self.wildcard.setdefault(h[2:], []).append(r)
                else:
                    self.exact.setdefault(h, []).append(r)
            if r.default:
                self.default.append(r)
        for table in (*self.exact.values(), *self.wildcard.values(), self.any_host, self.default):
            # Longest prefix first, so the first match is the most specific one.
            table.sort(key=lambda r: len(r.path), reverse=True)
        # One site for everything (`comptoir serve`...): the Host header is still checked, but no
        # route is looked up.
        self.single = (
            routes[0]
            if len(routes) == 1 and not routes[0].hosts and routes[0].path == "/"
            else None
        )

    def host_tables(self, host: str | None) -> list[list[Route]]:
        """The route tables configured for a (normalized) host name: exact, then wildcard."""
        tables = []
        if host is not None:
            if host in self.exact:
                tables.append(self.exact[host])
            _, dot, parent = host.partition(".")
            if dot and parent in self.wildcard:
                tables.append(self.wildcard[parent])
        return tables

    def route_for(self, host: str | None, path: str) -> Route | None:
        """The route answering `path` on a (normalized) host, or None."""
        for table in (*self.host_tables(host), self.any_host, self.default):
            for route in table:
                if route.covers(path):
                    return route
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Dispatch one request or WebSocket to the site that answers it."""
        if scope["type"] not in ("http", "websocket"):
            return
        raw_host = _host_header(scope)
        if not raw_host and (raw_host is None or scope.get("http_version") == "1.1"):
            # Two Host headers, or none on HTTP/1.1 (granian turns a missing one into an empty
            # one): RFC 9112 §3.2 asks every server for a 400, as nginx, Caddy and uvicorn's h11
            # answer, so a single site gets it too. HTTP/1.0 may omit Host; HTTP/2 and HTTP/3
            # carry it as :authority.
            await _refuse(scope, send, 400, "Missing or repeated Host header")
            return
        if self.single is not None:
            # No name to match: the value goes to the site as sent (sites quote it).
            await self.single.app(scope, receive, send)
            return
        host = None
        if raw_host:
            host = _request_host(raw_host)
            if host is None:
                await _refuse(scope, send, 400, "Malformed Host header")
                return
        path = scope["path"]
        route = self.route_for(host, path)
        if route is None:
            # Say nothing of which hosts this server does serve.
            if self.host_tables(host):
                await _refuse(scope, send, 404, "Not found")
            else:
                await _refuse(scope, send, 421, "No site is configured for this host name")
            return
        if route.path == "/":
            await route.app(scope, receive, send)
        elif path == route.path and scope["type"] == "http":
            await _redirect_to_slash(scope, send)
        else:
            await route.app(_strip_prefix(scope, route.path), receive, send)


# Longer than any valid name with a port: refused without filling the cache below.
_MAX_HOST_VALUE = 300


@functools.lru_cache(maxsize=256)
def _cached_normalize(host: str) -> str | None:
    return normalize_host(host)


def _request_host(raw: str) -> str | None:
    """normalize_host for a Host header; a request's host repeats, so the answers are cached."""
    return _cached_normalize(raw) if len(raw) <= _MAX_HOST_VALUE else None


def _host_header(scope: Scope) -> str | None:
    """The Host header's value ("" when absent), or None when there are several."""
    value = ""
    seen = False
    for k, v in scope["headers"]:
        if k == b"host":
            if seen:
                return None
            seen = True
            try:
                # Non-browser clients may send a Unicode name as UTF-8.
                value = v.decode("utf-8")
            except UnicodeDecodeError:
                value = "\x00"  # refused by normalize_host
    return value


async def _refuse(scope: Scope, send: Send, status: int, message: str) -> None:
    if scope["type"] == "websocket":
        # Closing before accepting makes the server answer the handshake with 403.
        await send({"type": "websocket.close", "code": 1008})
        return
    await send_error(scope, send, status, message)


async def _redirect_to_slash(scope: Scope, send: Send) -> None:
    # A site mounted at /prefix is its own root at /prefix/: relative links need the slash.
    raw = scope.get("raw_path") or quote(scope["path"], errors="surrogateescape").encode()
    location = raw + b"/"
    if scope.get("query_string"):
        location += b"?" + scope["query_string"]
    # 301 as for the static site's folders; 308 for other methods, which must keep their body.
    status = 301 if scope["method"] in ("GET", "HEAD") else 308
    body = b"Moved Permanently\n" if status == 301 else b"Permanent Redirect\n"
    headers = [
        (b"location", location),
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})


def _strip_prefix(scope: Scope, prefix: str) -> Scope:
    child = dict(scope)
    child["root_path"] = scope.get("root_path", "") + prefix
    rest = scope["path"][len(prefix) :] or "/"
    child["path"] = rest
    raw = scope.get("raw_path")
    if raw is not None:
        spelled, child["raw_path"] = _strip_raw_prefix(raw, prefix, rest)
        outer = scope.get(RAW_ROOT_PATH, b"" if not scope.get("root_path") else None)
        if spelled is not None and outer is not None:
            child[RAW_ROOT_PATH] = outer + spelled
        else:
            child.pop(RAW_ROOT_PATH, None)
    return child


def _strip_raw_prefix(raw: bytes, prefix: str, rest: str) -> tuple[bytes | None, bytes]:
    """(the components of the raw path that spell `prefix`, the raw path without them).

    The first is None when the prefix cannot be cut from the raw path as it is.
    """
    # The raw path may encode the prefix differently (%41 for A): decode it component by component.
    target = prefix.encode()
    pieces = raw.split(b"/")
    consumed = b""
    for i, piece in enumerate(pieces[1:], start=1):
        consumed += b"/" + unquote_to_bytes(piece)
        if consumed == target:
            remainder = pieces[i + 1 :]
            return b"/".join(pieces[: i + 1]), b"/" + b"/".join(remainder) if remainder else b"/"
        if len(consumed) >= len(target):
            break
    # An encoded slash straddles the end of the prefix: the decoded rest is all we can give.
    return None, quote(rest, errors="surrogateescape").encode()
