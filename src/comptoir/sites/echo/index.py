"""The echo site's index page: every endpoint with a ready-to-copy command line.

Commands hold `{url}` where the endpoint's full URL goes: the base URL the client used (scheme,
Host, mount prefix) plus the example's target, shell-quoted so a pasted line runs as shown.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from comptoir.sites.echo.context import echo_context
from comptoir.sites.echo.inspection import base_url, request_host
from comptoir.sites.echo.responses import HTML
from comptoir.web import render


@dataclass(frozen=True)
class Example:
    """One endpoint as the index shows it."""

    method: str
    path: str
    summary: str
    target: str
    command: str = "curl {url}"

    def line(self, base: str) -> str:
        """The command line, with the endpoint's full URL in place."""
        url = base + self.target
        if self.command.startswith("websocat"):
            url = "ws" + url.removeprefix("http")
        return self.command.replace("{url}", shlex.quote(url))


SECTIONS: tuple[tuple[str, tuple[Example, ...]], ...] = (
    (
        "HTTP methods",
        (
            Example("GET", "/get", "The query, headers, origin and URL.", "/get?name=value"),
            Example(
                "POST",
                "/post",
                "Everything sent: form, files, JSON, data.",
                "/post",
                "curl -d 'name=value' {url}",
            ),
            Example(
                "PUT",
                "/put",
                "As /post, for PUT.",
                "/put",
                "curl -X PUT -H 'Content-Type: application/json' -d '{\"a\": 1}' {url}",
            ),
            Example(
                "PATCH", "/patch", "As /post, for PATCH.", "/patch", "curl -X PATCH -d 'a=1' {url}"
            ),
            Example(
                "DELETE", "/delete", "As /post, for DELETE.", "/delete", "curl -X DELETE {url}"
            ),
            Example(
                "ANY",
                "/anything/…",
                "Any method, any path below: everything, method included.",
                "/anything/path?x=1",
                "curl -X PUT -F 'file=@README.md' {url}",
            ),
        ),
    ),
    (
        "Request inspection",
        (
            Example("GET", "/headers", "The request's headers.", "/headers"),
            Example("GET", "/ip", "The client's address.", "/ip"),
            Example("GET", "/user-agent", "The User-Agent header.", "/user-agent"),
            Example(
                "ANY",
                "/dump/request",
                "The raw request as received.",
                "/dump/request",
                "curl -d 'hello' {url}",
            ),
            Example("GET", "/hostname", "The server's name.", "/hostname"),
        ),
    ),
    (
        "Status codes and response headers",
        (
            Example(
                "ANY",
                "/status/{codes}",
                "That status; a weighted pick of several.",
                "/status/200:0.9,500:0.1",
                "curl -i {url}",
            ),
            Example(
                "GET",
                "/response-headers",
                "The query's pairs as response headers.",
                "/response-headers?X-Hello=world",
                "curl -i {url}",
            ),
            Example(
                "GET",
                "/cache",
                "304 for conditional requests, else /get.",
                "/cache",
                "curl -i -H 'If-None-Match: x' {url}",
            ),
            Example("GET", "/cache/{n}", "Cache-Control: max-age=n.", "/cache/60", "curl -i {url}"),
            Example(
                "GET",
                "/etag/{etag}",
                "If-None-Match / If-Match against that ETag.",
                "/etag/abc",
                "curl -i -H 'If-None-Match: \"abc\"' {url}",
            ),
        ),
    ),
    (
        "Authentication",
        (
            Example(
                "GET",
                "/basic-auth/{user}/{passwd}",
                "Basic auth; 401 when wrong.",
                "/basic-auth/user/passwd",
                "curl -u user:passwd {url}",
            ),
            Example(
                "GET",
                "/hidden-basic-auth/{user}/{passwd}",
                "Basic auth; 404 when wrong.",
                "/hidden-basic-auth/user/passwd",
                "curl -u user:passwd {url}",
            ),
            Example(
                "GET",
                "/bearer",
                "Any bearer token.",
                "/bearer",
                "curl -H 'Authorization: Bearer token' {url}",
            ),
            Example(
                "GET",
                "/digest-auth/{qop}/{user}/{passwd}[/{algorithm}[/{stale_after}]]",
                "Digest auth (auth, auth-int; MD5, SHA-256, SHA-512), verified.",
                "/digest-auth/auth/user/passwd",
                "curl --digest -u user:passwd {url}",
            ),
        ),
    ),
    (
        "Redirects",
        (
            Example(
                "GET",
                "/redirect/{n}",
                "n redirects to /get (?absolute=true for full URLs).",
                "/redirect/3",
                "curl -L {url}",
            ),
            Example(
                "GET",
                "/relative-redirect/{n}",
                "n path-only redirects.",
                "/relative-redirect/3",
                "curl -L {url}",
            ),
            Example(
                "GET",
                "/absolute-redirect/{n}",
                "n full-URL redirects.",
                "/absolute-redirect/3",
                "curl -L {url}",
            ),
            Example(
                "ANY",
                "/redirect-to",
                "A redirect to ?url= (status ?status_code=3xx).",
                "/redirect-to?url=/get&status_code=307",
                "curl -i {url}",
            ),
        ),
    ),
    (
        "Cookies",
        (
            Example("GET", "/cookies", "The cookies sent.", "/cookies", "curl -b 'a=1' {url}"),
            Example(
                "GET",
                "/cookies/set",
                "Set the query's cookies, then go to /cookies.",
                "/cookies/set?a=1&b=2",
                "curl -L -c - {url}",
            ),
            Example(
                "GET",
                "/cookies/set/{name}/{value}",
                "Set one cookie.",
                "/cookies/set/a/1",
                "curl -L -c - {url}",
            ),
            Example(
                "GET",
                "/cookies/delete",
                "Expire the query's cookies.",
                "/cookies/delete?a",
                "curl -L -b 'a=1' {url}",
            ),
        ),
    ),
    (
        "Dynamic data",
        (
            Example("GET", "/uuid", "A UUID4.", "/uuid"),
            Example("ANY", "/delay/{seconds}", "Answer after a delay.", "/delay/2"),
            Example(
                "GET",
                "/drip",
                "Bytes dripped over a duration, after a delay.",
                "/drip?numbytes=5&duration=2&delay=0",
                "curl -N {url}",
            ),
            Example("GET", "/stream/{n}", "n lines of JSON.", "/stream/3", "curl -N {url}"),
            Example(
                "GET",
                "/bytes/{n}",
                "n random bytes (?seed= for the same ones).",
                "/bytes/16?seed=1",
                "curl -s {url} | xxd",
            ),
            Example(
                "GET",
                "/stream-bytes/{n}",
                "n random bytes, streamed in ?chunk_size=.",
                "/stream-bytes/64?chunk_size=16",
                "curl -s -N {url} | xxd",
            ),
            Example(
                "GET",
                "/range/{n}",
                "n bytes a…z with Range support.",
                "/range/26",
                "curl -r 0-9 {url}",
            ),
            Example(
                "GET",
                "/base64/{value}",
                "URL-safe base64 decoded.",
                "/base64/SFRUUEJJTiBpcyBhd2Vzb21l",
            ),
            Example("GET", "/links/{n}/{offset}", "A page of n links.", "/links/5/0"),
            Example(
                "GET",
                "/sse",
                "Server-sent events (?count, ?duration, ?delay).",
                "/sse?count=3&duration=2",
                "curl -N {url}",
            ),
            Example(
                "WS",
                "/websocket/echo",
                "WebSocket: every message sent back.",
                "/websocket/echo",
                "websocat {url}",
            ),
        ),
    ),
    (
        "Formats",
        (
            Example("GET", "/json", "A JSON document.", "/json"),
            Example("GET", "/html", "An HTML page.", "/html"),
            Example("GET", "/xml", "An XML document.", "/xml"),
            Example("GET", "/encoding/utf8", "Text in many scripts, UTF-8.", "/encoding/utf8"),
            Example("GET", "/gzip", "gzip-encoded JSON.", "/gzip", "curl --compressed {url}"),
            Example(
                "GET", "/deflate", "deflate-encoded JSON.", "/deflate", "curl --compressed {url}"
            ),
            Example("GET", "/brotli", "brotli-encoded JSON.", "/brotli", "curl --compressed {url}"),
            Example(
                "GET",
                "/image",
                "The image type Accept prefers.",
                "/image",
                "curl -H 'Accept: image/webp' -o image.webp {url}",
            ),
            Example(
                "GET",
                "/image/{png|jpeg|webp|svg}",
                "That image.",
                "/image/png",
                "curl -o image.png {url}",
            ),
            Example("GET", "/forms/post", "An HTML form posting to /post.", "/forms/post"),
            Example("GET", "/robots.txt", "robots.txt rules.", "/robots.txt"),
            Example("GET", "/deny", "What robots.txt denies.", "/deny"),
        ),
    ),
)


def _netecho_lines(request: Request) -> list[str]:
    """`nc` lines for the TCP/UDP echo, when they run on a fixed port (port 0 is not known here)."""
    options = echo_context(request).options
    host = request_host(request)
    # The Host header without its port (and without brackets around an IPv6 address).
    host = host[1 : host.find("]")] if host.startswith("[") else host.rsplit(":", 1)[0]
    out = []
    if options.tcp:
        out.append(f"nc {shlex.quote(host)} {options.tcp}")
    if options.udp:
        out.append(f"nc -u {shlex.quote(host)} {options.udp}")
    return out


async def index_page(request: Request) -> Response:
    """GET /: the list of endpoints with examples."""
    base = base_url(request)
    sections = [(title, [(e, e.line(base)) for e in examples]) for title, examples in SECTIONS]
    page = render(
        "echo_index.html",
        prefix=echo_context(request).prefix,
        base=base,
        sections=sections,
        netecho=_netecho_lines(request),
    )
    return Response(page, media_type=HTML, headers={"cache-control": "no-cache"})


ROUTES: list[BaseRoute] = [Route("/", index_page, methods=["GET"])]
