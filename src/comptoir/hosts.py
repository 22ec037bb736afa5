"""Virtual hosts: choose the site for a request from its `Host:` header and path.

Matching rules (the README documents them):
- host names compare case-insensitively, without the port and without a trailing dot; IDNA names
  match in Unicode or punycode (both are reduced to punycode);
- an exact name beats a `*.example.com` wildcard (which covers exactly one label, as in Caddy),
  which beats the site marked `default`; a site with no `hosts` answers any host;
- within the chosen host, the longest `path` prefix wins (on whole components), and the prefix is
  moved from `path` to `root_path`, so the site sees its own root.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from comptoir.http.errors import send_error
from comptoir.types import ASGIApp, Receive, Scope, Send


def normalize_host(host: str) -> str | None:
    """Reduce a host name (from config or a Host header) to its canonical form, or None if bad.

    Lower case, no port, no trailing dot, IDNA labels in punycode; IPv6 literals keep brackets.
    """
    host = host.strip()
    if not host:
        return None
    if host.startswith("["):
        end = host.find("]")
        if end == -1:
            return None
        return host[: end + 1].lower()
    if host.count(":") == 1:
        host, _, port = host.partition(":")
        if port and not port.isdigit():
            return None
    host = host.rstrip(".").lower()
    if not host:
        return None
    if host.isascii():
        return host
    try:
        return ".".join(
            label if label == "*" else label.encode("idna").decode("ascii")
            for label in host.split(".")
        )
    except UnicodeError:
        return None


@dataclass(frozen=True)
class Route:
    """A site as the router sees it."""

    app: ASGIApp
    hosts: tuple[str, ...]  # normalized; empty: any host
    path: str  # "/" or "/prefix" without trailing slash
    default: bool = False


def normalize_mount(path: str) -> str:
    """A mount path in canonical form: leading slash, no trailing slash ("/" for the root)."""
    path = "/" + path.strip("/")
    return path


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
        # One site for everything: skip header parsing entirely on the hot path.
        self.single = (
            routes[0]
            if len(routes) == 1 and not routes[0].hosts and routes[0].path == "/"
            else None
        )

    def candidates(self, host: str | None) -> list[Route]:
        """The routes that may answer for a (normalized) host, most specific host rule first."""
        if host is not None:
            if host in self.exact:
                return self.exact[host]
            _, dot, parent = host.partition(".")
            if dot and parent in self.wildcard:
                return self.wildcard[parent]
        if self.any_host:
            return self.any_host
        return self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Dispatch one request or WebSocket to the site that answers it."""
        if self.single is not None:
            await self.single.app(scope, receive, send)
            return
        raw_host = None
        for k, v in scope["headers"]:
            if k == b"host":
                raw_host = v.decode("latin-1")
                break
        if raw_host is None and scope["type"] == "http" and scope.get("http_version") == "1.1":
            # HTTP/1.1 requires Host (RFC 9112 §3.2); HTTP/2 carries :authority instead.
            await send_error(scope, send, 400, "Missing Host header")
            return
        host = normalize_host(raw_host) if raw_host is not None else None
        if raw_host is not None and host is None:
            await send_error(scope, send, 400, "Malformed Host header")
            return
        path = scope["path"]
        for route in self.candidates(host):
            if route.path == "/":
                await route.app(scope, receive, send)
                return
            if path == route.path or path.startswith(route.path + "/"):
                await route.app(_strip_prefix(scope, route.path), receive, send)
                return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        # Say nothing of which hosts this server does serve.
        await send_error(scope, send, 421 if host else 404, "No site here")


def _strip_prefix(scope: Scope, prefix: str) -> Scope:
    child = dict(scope)
    child["root_path"] = scope.get("root_path", "") + prefix
    child["path"] = scope["path"][len(prefix) :] or "/"
    raw = scope.get("raw_path")
    if raw is not None:
        # The raw path may encode the prefix differently (%41 for A); strip as many components.
        depth = prefix.count("/")
        pieces = raw.split(b"/", depth + 1)
        child["raw_path"] = b"/" + pieces[depth + 1] if len(pieces) > depth + 1 else b"/"
    return child
