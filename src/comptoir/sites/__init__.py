"""Site kinds: each is a typed options class plus a function that builds an ASGI app from it.

Adding a kind touches its own module under sites/ and one line of `KINDS` below; the CLI, sites.toml
and the banner pick it up from here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from comptoir.services import Service
from comptoir.state import StateStore
from comptoir.types import ASGIApp


@dataclass
class SiteContext:
    """What the server hands a site when it builds it, beyond the site's own options."""

    # Path prefix the site is mounted under ("" at the root): links a site generates include it.
    prefix: str = ""
    # Asks the whole server to stop (e.g. a share whose downloads are used up).
    request_shutdown: Callable[[], None] = field(default=lambda: None)
    # True when the server prints nothing but URLs (the site must not draw progress either).
    quiet: bool = False
    # State shared by all worker processes (counters, sessions).
    store: StateStore = field(default_factory=StateStore)
    # Number of worker processes (a site that keeps state in memory may refuse more than one).
    workers: int = 1


@dataclass(frozen=True)
class SiteKind:
    """A kind of site: its name, options class, app builder and one-line summary."""

    name: str
    options: type[Any]
    build: Callable[[Any, SiteContext], ASGIApp]
    summary: str
    # Problems that stop the site from starting (missing folder...), as short sentences.
    validate: Callable[[Any], list[str]] = field(default=lambda options: [])
    # Path shown in the banner after the site's URL (e.g. a share's capability token).
    url_suffix: Callable[[Any], str] = field(default=lambda options: "")
    # Non-HTTP listeners run by the main process (TCP/UDP echo...), see services.py; called with
    # the kind's options and the ServerOptions (listeners use the server's --host).
    services: Callable[[Any, Any], list[Service]] = field(default=lambda options, server: [])


def _registry() -> dict[str, SiteKind]:
    from comptoir.sites import echo, receive, share, static

    kinds = [static.KIND, receive.KIND, echo.KIND, share.KIND]
    return {k.name: k for k in kinds}


KINDS: dict[str, SiteKind] = _registry()


def get_kind(name: str) -> SiteKind:
    """The registered kind called `name` (KeyError if there is none)."""
    return KINDS[name]
