"""`comptoir demo`: a built-in tour on `*.localhost` names, which browsers resolve to loopback.

Each entry of `SITES` is one site, served at `http://<name>.localhost:<port>/`; adding a site to the
demo is adding an entry (and a link on the home page, www/index.html). The first site marked
`default` also answers any other name, so `http://127.0.0.1:<port>/` shows the home page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from comptoir.config import Config, ServerOptions, SiteConfig
from comptoir.sites.static import StaticOptions

# The demo's own folders ship inside the package (see pyproject: the wheel includes them).
DEMO_DIR = Path(__file__).resolve().parent
DOMAIN = "localhost"


@dataclass(frozen=True)
class DemoSite:
    """One site of the demo."""

    name: str  # the host is `<name>.localhost`
    kind: str
    # Builds the kind's options when the demo starts (a kind may need a fresh folder, say).
    options: Callable[[], Any]
    default: bool = False

    @property
    def host(self) -> str:
        """The host name this site answers on."""
        return f"{self.name}.{DOMAIN}"


SITES: tuple[DemoSite, ...] = (
    DemoSite(
        "www",
        "static",
        lambda: StaticOptions(root=DEMO_DIR / "www", listing=False),
        default=True,
    ),
    DemoSite("files", "static", lambda: StaticOptions(root=DEMO_DIR / "files")),
)


def demo_config(server: ServerOptions, sites: tuple[DemoSite, ...] = SITES) -> Config:
    """The Config of `comptoir demo`: every demo site on its `*.localhost` name."""
    return Config(
        server=server,
        sites=tuple(
            SiteConfig(
                kind=s.kind, options=s.options(), hosts=(s.host,), default=s.default, name=s.name
            )
            for s in sites
        ),
    )
