"""The startup banner (stderr): every URL each site answers at, and a QR code of the primary one.

With --quiet only the URLs are printed, one per line, on stdout: scripts read them.
"""

from __future__ import annotations

import io
import sys
from typing import TYPE_CHECKING, TextIO

from comptoir import __version__
from comptoir.config import Config
from comptoir.security.tls import TLSFiles
from comptoir.server import SiteURL
from comptoir.sites import get_kind

if TYPE_CHECKING:
    from rich.console import Console


def qr_text(url: str) -> str:
    """A QR code of `url` drawn with Unicode half blocks, for a terminal."""
    import segno

    buf = io.StringIO()
    segno.make(url, error="l").terminal(out=buf, compact=True, border=2)
    return buf.getvalue()


def print_banner(
    config: Config,
    urls: list[SiteURL],
    out: TextIO | None = None,
    err: TextIO | None = None,
    services: list[tuple[str, str]] | None = None,
    tls: TLSFiles | None = None,
) -> None:
    """Print the banner, or only the URLs when the server is quiet.

    `services` are (name, address) pairs of non-HTTP listeners (e.g. `tcp://…` echo), printed
    after the URLs. `tls` tells which certificate serves HTTPS (and how to trust the local CA).
    """
    out = out or sys.stdout
    if config.server.quiet:
        for u in urls:
            if not u.fallback:
                out.write(u.url + "\n")
        for _, address in services or []:
            out.write(address + "\n")
        out.flush()
        return
    # rich and segno are imported for the banner only: --quiet (scripts, tests) starts faster.
    from rich.console import Console
    from rich.text import Text

    console = Console(file=err or sys.stderr, highlight=False, soft_wrap=True)
    console.print(Text(f"comptoir {__version__}", style="bold"))
    several = len({u.site for u in urls}) > 1
    defaults = {s.name or s.kind for s in config.sites if s.default}
    # What each kind says about its site (e.g. where receive saves), under the site's URLs.
    notes = {s.name or s.kind: get_kind(s.kind).banner(s.options) for s in config.sites}
    current = None
    for i, u in enumerate(urls):
        if several and u.site != current:
            tag = "  (default: any other host name)" if u.site in defaults else ""
            console.print(Text(f"  {u.site}", style="bold"), Text(tag, style="dim"), sep="")
            current = u.site
        mark = "  ← primary" if u.primary and not several else ""
        console.print(
            Text("    " + u.url, style="cyan" if u.primary else ""), Text(mark, style="dim")
        )
        if i + 1 == len(urls) or urls[i + 1].site != u.site:
            for note in notes.get(u.site, []):
                console.print(Text(f"    {note}", style="dim"))
    primary = next((u for u in urls if u.primary), urls[0] if urls else None)
    if primary is not None and not several:
        console.file.write(qr_text(primary.url))
    for name, address in services or []:
        console.print(Text(f"    {address}", style="cyan"), Text(f"  ({name})", style="dim"))
    if tls is not None:
        print_tls(console, tls)
    s = config.server
    if s.password_hash:
        hint = "  password required (browsers: login page; scripts: curl -u any:PASSWORD)"
        console.print(Text(hint, style="dim"))
    workers = f"{s.workers} worker{'s' if s.workers > 1 else ''}"
    console.print(Text(f"  {workers} · Ctrl-C to stop", style="dim"))


def print_tls(console: Console, tls: TLSFiles) -> None:
    """The HTTPS lines: the local CA's file, fingerprint and how to trust it, or the user's cert."""
    from rich.text import Text

    if tls.ca is None:
        console.print(Text("  HTTPS with your certificate", style="dim"))
        return
    ca = tls.ca
    console.print(Text("  HTTPS by comptoir's local CA", style="bold"))
    console.print(Text(f"    {ca.cert_path}", style="cyan"))
    console.print(Text(f"    SHA-256 {ca.fingerprint}", style="dim"))
    console.print(
        Text("    trust it: comptoir ca install   or   curl --cacert ", style="dim"),
        Text(str(ca.cert_path), style="dim"),
        sep="",
    )
