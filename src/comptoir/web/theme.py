"""The light/dark/auto theme switch: `/.comptoir/theme?set=dark&next=/here` on every site.

It works without JavaScript: the footer of every page links here, the answer is `303 See Other`
back to `next` with the preferences cookie set, and the server writes the theme into the page it
renders (`data-theme` in base.html), so there is no flash of the wrong colours. "auto" (follow the
system) is the default and removes the cookie.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from comptoir.http.cookies import delete_cookie, set_cookie
from comptoir.http.errors import send_error
from comptoir.http.paths import location_value
from comptoir.types import ASGIApp, Receive, Scope, Send
from comptoir.web.page import THEME_COOKIE, THEMES

OWN_PREFIX = b"/.comptoir/"
SWITCH_PATH = b"/.comptoir/theme"
THEME_MAX_AGE = 365 * 24 * 3600


def safe_next(value: str | None, prefix: str = "") -> str:
    """`value` if it is a path on this site, else the site's root: never an open redirect."""
    if (
        not value
        or not value.startswith("/")
        or value.startswith(("//", "/\\"))
        or not all(0x21 <= ord(c) <= 0x7E and c != "\\" for c in value)
    ):
        return prefix + "/"
    return value


class ThemeSwitch:
    """Answers what comptoir itself serves under `/.comptoir/`: the theme switch and, given
    `assets`, the shared CSS/JS; passes everything else on (`passed`: paths under `/.comptoir/`
    the layers behind answer, the password gate's login and logout).

    One layer for both, not two: each layer costs every request a call.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        secure: bool = False,
        assets: ASGIApp | None = None,
        passed: tuple[bytes, ...] = (),
    ) -> None:
        self.app = app
        # Under TLS the cookie is marked Secure, like every cookie comptoir sets.
        self.secure = secure
        self.assets = assets
        self.passed = passed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Set the theme cookie and go back, serve an asset, or pass the request on."""
        raw = scope.get("raw_path") or scope.get("path", "").encode()
        if scope["type"] != "http" or not raw.startswith(OWN_PREFIX):
            await self.app(scope, receive, send)
            return
        if raw != SWITCH_PATH:
            if self.assets is None or raw in self.passed:
                await self.app(scope, receive, send)
            else:
                await self.assets(scope, receive, send)
            return
        if scope["method"] not in ("GET", "HEAD"):
            await send_error(scope, send, 405, "Method not allowed", {"Allow": "GET, HEAD"})
            return
        # latin-1 both ways: bytes stay bytes, and safe_next only lets printable ASCII through.
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"), encoding="latin-1")
        theme = (query.get("set") or [""])[0]
        if theme not in THEMES:
            await send_error(scope, send, 400, "Unknown theme (auto, light or dark)")
            return
        location = safe_next((query.get("next") or [""])[0], scope.get("root_path", ""))
        if theme == "auto":
            cookie = delete_cookie(THEME_COOKIE, http_only=False, secure=self.secure)
        else:
            cookie = set_cookie(
                THEME_COOKIE,
                theme,
                max_age=THEME_MAX_AGE,
                http_only=False,
                secure=self.secure,
                same_site="Lax",
            )
        headers = [
            (b"location", location_value(location)),
            cookie,
            (b"content-length", b"0"),
            (b"cache-control", b"no-store"),
        ]
        await send({"type": "http.response.start", "status": 303, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
