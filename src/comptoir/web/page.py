"""What a page comptoir renders needs to know about its request: theme, CSRF token, login state.

`security.headers.SecurityHeaders` opens one `PageState` per request (`page_for(scope)`); the auth
middleware fills in the CSRF token; templates read it through the `page_state()` global, which
base.html calls. Calling it also marks the response as a page comptoir rendered, so it gets the
strict Content-Security-Policy — a user's own HTML file served as is does not (see headers.py).

A context variable carries the state, so `web.render()` keeps its signature: any template rendered
while a request is being answered (also in a thread, or a child task) sees that request's state.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import cached_property
from urllib.parse import quote

from comptoir.types import Scope

THEMES = ("auto", "light", "dark")
THEME_COOKIE = "comptoir_theme"


@dataclass(eq=False)
class PageState:
    """Per-request facts for templates; `rendered` is set once a template used them."""

    scope: Scope = field(default_factory=dict)
    # The session's CSRF token ("" when there is no session): forms and scripts send it back.
    csrf_token: str = ""
    # True when a password protects the server and this request has a session (shows "Log out").
    logged_in: bool = False
    rendered: bool = False

    @cached_property
    def theme(self) -> str:
        """The theme chosen with the preferences cookie: auto, light or dark."""
        # Imported here: the CLI imports this module (listings render pages), and the cookie
        # parser comes with starlette.requests, 0.15-0.2 s more at every command's start.
        from comptoir.http.cookies import request_cookie

        value = request_cookie(self.scope, THEME_COOKIE) if self.scope else None
        return value if value in THEMES else "auto"

    @property
    def prefix(self) -> str:
        """The path the site is mounted under ("" at the root)."""
        return str(self.scope.get("root_path", ""))

    @property
    def here(self) -> str:
        """This request's URL path and query, to come back to after a login or theme switch."""
        raw = self.scope.get("raw_path")
        path = raw.decode("latin-1") if raw is not None else quote(self.scope.get("path", "/"))
        query = self.scope.get("query_string", b"").decode("latin-1")
        return self.prefix + path + ("?" + query if query else "")


_current: ContextVar[PageState | None] = ContextVar("comptoir_page", default=None)


def current_page() -> PageState:
    """The state of the request being answered (a blank one outside any request)."""
    state = _current.get()
    return state if state is not None else PageState()


def page_state() -> PageState:
    """Template global: the request's page state; marks the response as a rendered page."""
    state = current_page()
    state.rendered = True
    return state


class _PageContext:
    """Makes a PageState the current one for a `with` block.

    A class rather than @contextlib.contextmanager: this runs for every request, and a generator
    based context manager costs several times more.
    """

    __slots__ = ("_token", "state")

    def __init__(self, state: PageState) -> None:
        self.state = state

    def __enter__(self) -> PageState:
        self._token = _current.set(self.state)
        return self.state

    def __exit__(self, *exc: object) -> None:
        _current.reset(self._token)


def page_for(scope: Scope) -> _PageContext:
    """Make a fresh PageState the current one while a request is answered (`with page_for(…)`)."""
    return _PageContext(PageState(scope))
