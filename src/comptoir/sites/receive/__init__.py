"""`receive`: people send you files through a link (woof -U, grown up).

The link is a capability URL (`/<token>/`): its page takes files and folders by drag and drop or
file pickers, with a progress bar per file, and lists what arrived; scripts `curl -T` or `curl -F`
to it. Bodies stream to disk (upload.py), names are made safe (names.py), the routes are in app.py.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from comptoir.config import ServerOptions
from comptoir.security.capability import new_token, token_problems
from comptoir.settings import parse_size, setting
from comptoir.sites.contract import DemoSite, Problem, ServiceContext, SiteContext, SiteKind

if TYPE_CHECKING:
    from comptoir.services import Service
    from comptoir.sites.receive.app import ReceiveSite


@dataclass(frozen=True)
class ReceiveOptions:
    """Options of a receive site."""

    root: Path = setting(
        Path("."), "Folder the files are saved in.", argument="dir", default_text="current folder"
    )
    token: str = setting(
        "",
        "Secret path of the upload link (letters, digits, - and _; at least 16).",
        default_text="random, 128 bits",
    )
    max_size: int | None = setting(
        None,
        "Largest file accepted, e.g. 100M or 2G.",
        parse=parse_size,
        minimum=1,
        default_text="no limit",
    )
    max_total: int | None = setting(
        None,
        "Most bytes accepted in all while the server runs, e.g. 10G.",
        parse=parse_size,
        minimum=1,
        default_text="no limit",
    )
    count: int | None = setting(
        None, "Stop the server after receiving N files.", minimum=1, default_text="no limit"
    )
    # Not an option: marks this run's temporary files, so that the main process can remove
    # those of a worker killed mid-upload (upload.PartsCleaner).
    run_id: str = dataclasses.field(default="", repr=False, compare=False)

    def __post_init__(self) -> None:
        # Drawn here, once, in the main process: every worker gets the same options (pickled),
        # so the same token, and the banner prints the URL they all answer.
        if not self.token:
            object.__setattr__(self, "token", new_token())
        if not self.run_id:
            object.__setattr__(self, "run_id", secrets.token_hex(4))


def build(options: ReceiveOptions, context: SiteContext) -> ReceiveSite:
    """Build the ASGI app of a receive site."""
    from comptoir.sites.receive.app import ReceiveSite

    return ReceiveSite(options, context)


async def shutdown(site: ReceiveSite) -> None:
    """Lifespan shutdown: remove the temporary files of uploads still in progress."""
    await site.shutdown()


def validate(options: ReceiveOptions, server: ServerOptions) -> list[Problem]:
    """Problems that would stop this site from starting (folder missing or not writable)."""
    problems = []
    root = options.root
    if not root.exists():
        problems.append(Problem("root", f"folder not found: {root}"))
    elif not root.is_dir():
        problems.append(Problem("root", f"not a folder: {root}"))
    elif not os.access(root, os.W_OK | os.X_OK):
        problems.append(Problem("root", f"folder not writable: {root}"))
    problems.extend(Problem("token", p, labelled=True) for p in token_problems(options.token))
    return problems


def url_suffix(options: ReceiveOptions) -> str:
    """The upload page's path: the capability token."""
    return f"/{options.token}/"


def banner(options: ReceiveOptions) -> list[str]:
    """The banner's line under the upload link: where what arrives is saved."""
    from comptoir.accesslog import escape_for_log

    return [f"saves into {escape_for_log(str(options.root.resolve()))}"]


def services(options: ReceiveOptions, context: ServiceContext) -> list[Service]:
    """The main-process cleaner of temporary files that killed workers leave behind."""
    from comptoir.sites.receive.upload import PartsCleaner

    return [PartsCleaner(str(options.root), options.run_id)]


# The demo's upload link is fixed, so that the demo's home page can link to it; what arrives
# lands in the run's temporary folder (removed at exit) under a size cap, so a known link gives
# nothing away: a demo is not a file store. `comptoir receive` draws a secret one at each start.
DEMO_TOKEN = "sample-drop-link"
DEMO_MAX_SIZE = 20 * 1024 * 1024
DEMO_MAX_TOTAL = 100 * 1024 * 1024
DEMO = (
    DemoSite(
        "drop",
        "an upload page, as `comptoir receive` makes: drop files on it, or `curl -T file` to it. "
        "What arrives goes to a temporary folder, removed when the demo stops (20 MB a file, "
        "100 MB in all). Its link is fixed for the demo; `comptoir receive` draws a secret one "
        "at each start.",
        lambda demo: ReceiveOptions(
            root=demo.folder(),
            token=DEMO_TOKEN,
            max_size=DEMO_MAX_SIZE,
            max_total=DEMO_MAX_TOTAL,
        ),
    ),
)


KIND = SiteKind(
    name="receive",
    options=ReceiveOptions,
    build=build,
    command="receive",
    help="Receive files into DIR (default: the current folder) through a secret link.",
    demo=DEMO,
    validate=validate,
    shutdown=shutdown,
    url_suffix=url_suffix,
    services=services,
    banner=banner,
)
