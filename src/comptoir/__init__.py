"""comptoir: one command, one port — share files, receive uploads, serve sites.

The public surface for code that runs comptoir or adds a site kind: the one `Config` and its
parts, the kind contract, and the errors comptoir raises on purpose. `comptoir.server.Server`
runs a Config; `comptoir.app.build_app` makes the ASGI app of one worker (tests use it directly).
"""

__version__ = "0.1.0"

from comptoir.config import Config, ServerOptions, SiteConfig
from comptoir.errors import ClientGone, ConfigError, HTTPError
from comptoir.sites import (
    KINDS,
    DemoContext,
    DemoSite,
    Problem,
    ServiceContext,
    SiteContext,
    SiteKind,
)

__all__ = [
    "KINDS",
    "ClientGone",
    "Config",
    "ConfigError",
    "DemoContext",
    "DemoSite",
    "HTTPError",
    "Problem",
    "ServerOptions",
    "ServiceContext",
    "SiteConfig",
    "SiteContext",
    "SiteKind",
    "__version__",
]
