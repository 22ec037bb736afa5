"""What a site that speaks ASGI directly is made of: redirects, OPTIONS, empty answers, header
lookup, the client leaving, error answers (a 404 page for browsers), and the frame of a
capability link.

`static`, `share` and `receive` answer ASGI themselves (no Starlette: a file answer must not pay
for a Request object). They once carried their own copies of these pieces, which had drifted: a
HEAD on a receive link got its redirect's body, a share's did not. Sites import them from here.

Why `sites/` and not `http/`: the capability-link frame joins security/capability.py (tokens,
link headers) with the error answers, and `http/` is the layer below both (security uses it).
The plain HTTP pieces that `http/` itself needs stay there and are offered from here as well
(`send_empty` from http/responses.py, `ClientGone` from errors.py), so a site has one import.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterable

from comptoir.errors import ClientGone, HTTPError
from comptoir.http.errors import send_error
from comptoir.http.paths import display_name, location_value, unquote_bytes
from comptoir.http.responses import send_empty, send_uncached
from comptoir.security.capability import send_with_link_headers, split_token
from comptoir.types import Receive, Scope, Send
from comptoir.web import render

__all__ = [
    "ClientGone",
    "LinkRoute",
    "header",
    "not_allowed",
    "send_allowed",
    "send_empty",
    "send_http_error",
    "send_redirect",
    "serve_link",
    "wants_html",
]

MOVED = b"Moved Permanently\n"


def header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    """The first value of header `name` (lower-case) in a scope's or a response's headers."""
    for k, v in headers:
        if k.lower() == name:
            return v.decode("latin-1")
    return None


def wants_html(scope: Scope) -> bool:
    """True when the client asks for a page (a browser's `Accept: text/html, …`)."""
    return "text/html" in (header(scope["headers"], b"accept") or "")


async def send_redirect(
    scope: Scope, send: Send, location: str, *, keep_query: bool = False, private: bool = True
) -> None:
    """301 to `location` (any URL; made a valid Location header); HEAD gets no body.

    `keep_query` carries the request's query over (`f/folder?archive` stays a request for the
    archive at `f/folder/`); `private` answers are not kept by caches (`Cache-Control: no-store`,
    what a capability link leads to is nobody else's business).
    """
    if keep_query and scope.get("query_string"):
        location += "?" + scope["query_string"].decode("latin-1")
    headers = [
        (b"location", location_value(location)),
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(MOVED)).encode()),
        (b"x-content-type-options", b"nosniff"),
    ]
    if private:
        headers.append((b"cache-control", b"no-store"))
    await send({"type": "http.response.start", "status": 301, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else MOVED})


async def send_allowed(send: Send, allow: str) -> None:
    """The answer to OPTIONS: 204 and the methods allowed (no Content-Length: RFC 9110 §8.6)."""
    await send_empty(send, 204, [(b"allow", allow.encode())])


def not_allowed(allow: str) -> HTTPError:
    """405 Method Not Allowed, saying which are (raise it)."""
    return HTTPError(405, "Method not allowed", {"Allow": allow})


async def send_http_error(
    scope: Scope, send: Send, exc: HTTPError, home: str | None = None
) -> None:
    """The answer of an HTTPError: short text or JSON (http/errors.py), but a page for a browser
    meeting a 404, in the style of the site's other pages, with a link back to `home` (the
    site's front page) when there is one to offer."""
    if exc.status == 404 and wants_html(scope):
        await _send_not_found_page(scope, send, home, exc.headers)
    else:
        await send_error(scope, send, exc.status, exc.message, exc.headers)


async def _send_not_found_page(
    scope: Scope, send: Send, home: str | None, headers: dict[str, str] | None = None
) -> None:
    """404 as a page: the path asked for, and a link to `home` (else a word on bad links)."""
    body = render(
        "not_found.html",
        prefix=scope.get("root_path", ""),
        path=_requested_path(scope),
        home=home,
    ).encode()
    extra = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    head = scope["method"] == "HEAD"
    await send_uncached(send, 404, body, b"text/html; charset=utf-8", head=head, headers=extra)


def _requested_path(scope: Scope) -> str:
    """The path the client asked for, mount prefix included, decoded for a person to read."""
    raw = scope.get("raw_path")
    if raw is None:
        path = scope["path"]
    else:
        # Malformed escapes (`%zz`) are shown as they were sent.
        try:
            path = os.fsdecode(unquote_bytes(raw))
        except HTTPError:
            path = raw.decode("latin-1")
    # Bad bytes as U+FFFD, bidi controls as `[U+202E]`: the text reads as what was asked.
    return display_name(str(scope.get("root_path", "")) + path)


# A site's routes under its link: (scope, receive, send, the path after `/<token>`).
LinkRoute = Callable[[Scope, Receive, Send, str], Awaitable[None]]
# How a site answers an HTTPError under its link; the last argument is where a 404 page may
# lead back to (None while the token is not known to be right).
ErrorAnswer = Callable[[Scope, Send, HTTPError, str | None], Awaitable[None]]


async def serve_link(
    scope: Scope,
    receive: Receive,
    send: Send,
    token: str,
    route: LinkRoute,
    *,
    home: str | None = None,
    errors: ErrorAnswer = send_http_error,
) -> None:
    """Answer one request under a capability link `/<token>/…`.

    A wrong token is the same 404 as any unknown path; every answer, errors included, carries
    the link headers (no Referer, no indexing); an HTTPError raised by `route` becomes its answer
    through `errors` (a site may answer some itself, as a share's 410 page). `home`, the link's
    own page, is where a 404 page leads back to — only once the token is right: a page answering
    a wrong one must not hand out the link.
    """
    if scope["type"] != "http":
        return
    send = send_with_link_headers(send)
    back = None
    try:
        raw = scope.get("raw_path") or scope["path"].encode()
        rest = split_token(raw.decode("latin-1"), token)
        if rest is None:
            raise HTTPError(404, "Not found")
        back = home
        await route(scope, receive, send, rest)
    except HTTPError as exc:
        await errors(scope, send, exc, back)
