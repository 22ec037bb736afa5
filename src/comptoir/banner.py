"""The startup banner (stderr): every URL each site answers at, and a QR code of the primary one.

With --quiet only the URLs are printed, one per line, on stdout: scripts read them.
"""

from __future__ import annotations

import io
import sys
from typing import TextIO

import segno
from rich.console import Console
from rich.text import Text

from comptoir import __version__
from comptoir.config import Config
from comptoir.server import SiteURL


def qr_text(url: str) -> str:
    """A QR code of `url` drawn with Unicode half blocks, for a terminal."""
    buf = io.StringIO()
    segno.make(url, error="l").terminal(out=buf, compact=True, border=2)
    return buf.getvalue()


def print_banner(
    config: Config,
    urls: list[SiteURL],
    out: TextIO | None = None,
    err: TextIO | None = None,
    services: list[tuple[str, str]] | None = None,
) -> None:
    """Print the banner, or only the URLs when the server is quiet.

    `services` are (name, address) pairs of non-HTTP listeners (e.g. `tcp://…` echo), printed
    after the URLs.
    """
    out = out or sys.stdout
    if config.server.quiet:
        for u in urls:
            out.write(u.url + "\n")
        for _, address in services or []:
            out.write(address + "\n")
        out.flush()
        return
    console = Console(file=err or sys.stderr, highlight=False, soft_wrap=True)
    console.print(Text(f"comptoir {__version__}", style="bold"))
    several = len({u.site for u in urls}) > 1
    current = None
    for u in urls:
        if several and u.site != current:
            console.print(Text(f"  {u.site}", style="bold"))
            current = u.site
        mark = "  ← primary" if u.primary and not several else ""
        console.print(
            Text("    " + u.url, style="cyan" if u.primary else ""), Text(mark, style="dim")
        )
    primary = next((u for u in urls if u.primary), urls[0] if urls else None)
    if primary is not None and not several:
        console.file.write(qr_text(primary.url))
    for name, address in services or []:
        console.print(Text(f"    {address}", style="cyan"), Text(f"  ({name})", style="dim"))
    s = config.server
    workers = f"{s.workers} worker{'s' if s.workers > 1 else ''}"
    console.print(Text(f"  {workers} · Ctrl-C to stop", style="dim"))
