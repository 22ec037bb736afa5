"""`share`: send files and folders through a link (woof, grown up).

One capability URL (`/<token>/`) holds everything shared. Browsers get a landing page with a QR
code and download buttons, folders a listing; curl and wget get the content itself — the file of a
one-file share, else an archive — so `curl -OJ URL` just works. The routes are in app.py, the
transfer accounting in download.py, the pages in pages.py, what is shared in items.py, archives in
archive.py, --count/--expire in limits.py, the terminal lines in progress.py.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from comptoir.config import ServerOptions
from comptoir.security.capability import new_token, token_problems
from comptoir.settings import parse_duration, setting
from comptoir.sites.contract import DemoSite, Problem, SiteContext, SiteKind
from comptoir.sites.share.items import item_name

if TYPE_CHECKING:
    from comptoir.sites.share.app import ShareSite

ArchiveFormat = Literal["zip", "tar", "tar.gz"]


@dataclass(frozen=True)
class ShareOptions:
    """Options of a share."""

    paths: tuple[Path, ...] = setting((), "Files and folders to share.", argument="path")
    count: int | None = setting(
        None,
        "Complete downloads allowed for each file and for the archive; the server stops when "
        "everything is used up.",
        minimum=1,
        default_text="no limit",
    )
    once: bool = setting(False, "Allow one complete download (same as --count 1).", flag_only=True)
    expire: float | None = setting(
        None,
        "Stop sharing after this long, e.g. 30m, 2h, 1d; the server stops then.",
        parse=parse_duration,
        minimum=1,
        default_text="never",
    )
    keep: bool = setting(
        False,
        "Keep the server running when downloads are used up or the link expired.",
        flag_only=True,
    )
    stall_timeout: float = setting(
        60.0,
        "A download that makes no progress this long (the client stopped reading) is cut; with "
        "--count its download is given back.",
        parse=parse_duration,
        minimum=0.001,
        default_text="60s",
    )
    archive: ArchiveFormat = setting("zip", "Format of folders and of 'download all'.")
    compress: bool = setting(
        False,
        "Deflate zip archives (smaller, but no size shown up front and no resume).",
        flag_only=True,
    )
    token: str = setting(
        "",
        "Secret path of the link (letters, digits, - and _; at least 16).",
        default_text="random, 128 bits",
    )

    def __post_init__(self) -> None:
        # Drawn here, once, in the main process: every worker gets the same options (pickled),
        # so the same token, and the banner prints the URL they all answer.
        if not self.token:
            object.__setattr__(self, "token", new_token())

    @property
    def limit(self) -> int | None:
        """Complete downloads allowed per file and for the archive (None: no limit)."""
        return 1 if self.once else self.count


def build(options: ShareOptions, context: SiteContext) -> ShareSite:
    """Build the ASGI app of a share."""
    from comptoir.sites.share.app import ShareSite

    return ShareSite(options, context)


async def startup(site: ShareSite) -> None:
    """Lifespan startup: stop the server when the link expires."""
    await site.startup()


async def shutdown(site: ShareSite) -> None:
    """Lifespan shutdown: stop drawing, print what this worker sent."""
    await site.shutdown()


def validate(options: ShareOptions, server: ServerOptions) -> list[Problem]:
    """Problems that would stop the share from starting (missing paths, clashing names...)."""
    problems: list[Problem] = []

    def add(message: str) -> None:
        problems.append(Problem("paths", message))

    if not options.paths:
        add("nothing to share: give at least one file or folder")
    names: dict[str, Path] = {}
    for path in options.paths:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            add(f"not found: {path}")
            continue
        except OSError as exc:
            add(f"cannot read {path}: {exc.strerror}")
            continue
        if stat.S_ISDIR(st.st_mode):
            if not os.access(path, os.R_OK | os.X_OK):
                add(f"folder not readable: {path}")
        elif not stat.S_ISREG(st.st_mode):
            add(f"not a file or folder: {path}")
        elif not os.access(path, os.R_OK):
            add(f"file not readable: {path}")
        name = item_name(path)
        if name in names:
            add(f"{names[name]} and {path} would both be shared as {name!r}")
        names.setdefault(name, path)
    if options.once and options.count not in (None, 1):
        problems.append(Problem("once", "--once means --count 1: give one or the other"))
    if options.compress and options.archive != "zip":
        problems.append(
            Problem("compress", "--compress is for zip archives (tar.gz is always compressed)")
        )
    problems.extend(Problem("token", p, labelled=True) for p in token_problems(options.token))
    return problems


def url_suffix(options: ShareOptions) -> str:
    """The share's path: the capability token."""
    return f"/{options.token}/"


# The demo's share link is fixed, so that the demo's home page can link to it; what it gives
# away is the demo's own sample files. `comptoir share` draws a secret one at each start.
DEMO_TOKEN = "sample-share-link"
DEMO = (
    DemoSite(
        "share",
        "the sample files shared as `comptoir share` does: a page with a QR code and download "
        "buttons for browsers, the files themselves (a zip) for `curl -OJ` and `wget`. Its link "
        "is fixed for the demo; `comptoir share` draws a secret one at each start.",
        lambda demo: ShareOptions(paths=(demo.samples,), token=DEMO_TOKEN),
    ),
)


KIND = SiteKind(
    name="share",
    options=ShareOptions,
    build=build,
    command="share",
    help="Share files and folders (PATH...) through a secret link: a page for browsers, the "
    "content itself for curl -OJ and wget.",
    demo=DEMO,
    validate=validate,
    startup=startup,
    shutdown=shutdown,
    url_suffix=url_suffix,
    fds_per_connection=2,  # the socket; the file being sent
)
