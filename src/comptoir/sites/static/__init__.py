"""`static`: a folder served as a web site (what `python -m http.server` does, done right).

The options and the kind are here; the app, imported only by the workers that serve it, is in
app.py.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from comptoir.config import ServerOptions
from comptoir.settings import setting
from comptoir.sites.contract import DemoSite, Problem, SiteContext, SiteKind

if TYPE_CHECKING:
    from comptoir.sites.static.app import StaticSite


@dataclass(frozen=True)
class StaticOptions:
    """Options of a static site."""

    root: Path = setting(
        Path("."), "Folder to serve.", argument="dir", default_text="current folder"
    )
    listing: bool = setting(True, "List folders that have no index.html (else 404).")
    hidden: bool = setting(False, "Serve and list dotfiles (hidden by default).", flag_only=True)
    cache: int = setting(
        0, "Cache-Control max-age in seconds (0: browsers revalidate every time).", minimum=0
    )
    compress: bool = setting(False, "Gzip text files on the fly (never ranges).", flag_only=True)
    spa: bool = setting(
        False, "Answer unknown paths without an extension with /index.html.", flag_only=True
    )
    revalidate: float = setting(
        1.0, "Seconds a file's stat is trusted before it is checked again.", minimum=0, cli=False
    )


def build(options: StaticOptions, context: SiteContext) -> StaticSite:
    """Build the ASGI app of a static site."""
    from comptoir.sites.static.app import StaticSite

    return StaticSite(options, context)


def validate(options: StaticOptions, server: ServerOptions) -> list[Problem]:
    """Problems that would stop this site from starting (missing or unreadable folder)."""
    root = options.root
    if not root.exists():
        return [Problem("root", f"folder not found: {root}")]
    if not root.is_dir():
        return [Problem("root", f"not a folder: {root}")]
    if not os.access(root, os.R_OK | os.X_OK):
        return [Problem("root", f"folder not readable: {root}")]
    return []


DEMO = (
    DemoSite(
        "files",
        "a folder listing of sample files with awkward names (spaces, accents, `%`, `&`, `#`), "
        "served as `comptoir serve` does.",
        lambda demo: StaticOptions(root=demo.samples),
    ),
)


KIND = SiteKind(
    name="static",
    options=StaticOptions,
    build=build,
    command="serve",
    help="Serve DIR (default: the current folder) as a static web site.",
    demo=DEMO,
    validate=validate,
    fds_per_connection=2,  # the socket; the file being sent
)
