"""Security headers, added in one place to what every site sends.

- Pages comptoir renders itself (listings, login, share/receive/echo pages: anything from a template
  extending base.html) get a strict Content-Security-Policy with no inline script or style, and
  `Referrer-Policy: no-referrer` (a capability token in the URL must not leak to other sites).
- A user's own HTML files (a static site, a shared file) may rely on inline scripts or be framed
  by the user's other local apps, so comptoir does not impose its CSP on them. They get
  `Referrer-Policy: strict-origin-when-cross-origin` (unless they set one): whatever the browser's
  default, a link to another site never carries the path, where a share's token may be.
- Every response gets `X-Content-Type-Options: nosniff`.
- `Strict-Transport-Security` only with a certificate the user brought, and never for `localhost`
  or an IP address: a browser remembers HSTS for every port of a host, and a local CA's
  certificate may not be trusted by the next browser that visits.

Which pages are comptoir's is known without guessing: base.html calls `page_state()`, which marks
the request's PageState (web/page.py) as rendered.
"""

from __future__ import annotations

import ipaddress

from comptoir.hosts import normalize_host
from comptoir.types import ASGIApp, Message, Receive, Scope, Send
from comptoir.web.page import PageState, page_for

CSP = (
    b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    b"frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
PAGE_HEADERS = (
    (b"content-security-policy", CSP),
    (b"referrer-policy", b"no-referrer"),
)
# For HTML comptoir did not write: other sites see at most the origin, never the path.
USER_PAGE_REFERRER = (b"referrer-policy", b"strict-origin-when-cross-origin")
NOSNIFF = (b"x-content-type-options", b"nosniff")
HSTS = (b"strict-transport-security", b"max-age=31536000")


def hsts_applies(host_header: bytes | None) -> bool:
    """True for a host name HSTS may be pinned to (not localhost, not an IP address)."""
    if not host_header:
        return False
    host = normalize_host(host_header.decode("latin-1"))
    if host is None or host == "localhost" or host.endswith(".localhost"):
        return False
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return True
    return False


class SecurityHeaders:
    """Opens the request's PageState and adds the security headers to the response."""

    def __init__(self, app: ASGIApp, *, hsts: bool = False) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer through the site, adding headers to the response start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with page_for(scope) as page:

            async def send_with_headers(message: Message) -> None:
                if message["type"] == "http.response.start":
                    message = self._add_headers(message, page, scope)
                await send(message)

            await self.app(scope, receive, send_with_headers)

    def _add_headers(self, message: Message, page: PageState, scope: Scope) -> Message:
        # This runs for every response, a small file's included: one pass over the headers,
        # whose names ASGI gives in lower case, and nothing built unless something is added.
        ctype = b""
        nosniff = False
        for k, v in message.get("headers", ()):
            if k == b"content-type":
                ctype = bytes(v)
            elif k == b"x-content-type-options":
                nosniff = True
        html = ctype[:9].lower() == b"text/html"
        if not html and not self.hsts and nosniff:
            return message  # nothing to add (files: nosniff is already there)
        names = {bytes(k) for k, _ in message.get("headers", ())}
        headers = list(message.get("headers", ()))
        if not nosniff:
            headers.append(NOSNIFF)
        if html:
            if page.rendered:
                headers.extend(h for h in PAGE_HEADERS if h[0] not in names)
            elif USER_PAGE_REFERRER[0] not in names:
                headers.append(USER_PAGE_REFERRER)
        if self.hsts and HSTS[0] not in names:
            host = next((bytes(v) for k, v in scope["headers"] if k == b"host"), None)
            if hsts_applies(host):
                headers.append(HSTS)
        return {**message, "headers": headers}
