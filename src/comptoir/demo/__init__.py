"""`comptoir demo`: a built-in tour on `*.localhost` names, which browsers resolve to loopback.

Each entry of `SITES` is one site, served at `http://<name>.localhost:<port>/`; adding a site to the
demo is adding an entry (and a link on the home page, www/index.html). The first site marked
`default` also answers any other name, so `http://127.0.0.1:<port>/` shows the home page.

The share and receive sites keep their links fixed (`SHARE_TOKEN`, `DROP_TOKEN`) so that the static
home page can link to them: `comptoir share` and `comptoir receive` draw a secret one at each run.
What the demo shares is its own sample files, and what it receives lands in a temporary folder of
the run (removed at exit) under a size cap, so a known link gives nothing away.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from comptoir.config import Config, ServerOptions, SiteConfig
from comptoir.sites import get_kind
from comptoir.sites.echo import EchoOptions
from comptoir.sites.receive import ReceiveOptions
from comptoir.sites.share import ShareOptions
from comptoir.sites.static import StaticOptions

# The demo's own folders ship inside the package (see pyproject: the wheel includes them).
DEMO_DIR = Path(__file__).resolve().parent
DOMAIN = "localhost"
# Fixed capability tokens: see the module docstring.
SHARE_TOKEN = "sample-share-link"
DROP_TOKEN = "sample-drop-link"
# What the drop site accepts, in all, before it answers 413: a demo is not a file store.
DROP_MAX_SIZE = 20 * 1024 * 1024
DROP_MAX_TOTAL = 100 * 1024 * 1024


@dataclass(frozen=True)
class DemoSite:
    """One site of the demo."""

    name: str  # the host is `<name>.localhost`
    kind: str
    # Builds the kind's options when the demo starts, given the run's temporary folder (a kind
    # may need a fresh folder of its own there).
    options: Callable[[Path], Any]
    default: bool = False

    @property
    def host(self) -> str:
        """The host name this site answers on."""
        return f"{self.name}.{DOMAIN}"

    def path(self, run_dir: Path) -> str:
        """The path of the site's front page (with its token, for the kinds that have one)."""
        return "/" + get_kind(self.kind).url_suffix(self.options(run_dir)).lstrip("/")


def _drop_folder(run_dir: Path) -> Path:
    folder = run_dir / "drop"
    folder.mkdir(exist_ok=True)
    return folder


SITES: tuple[DemoSite, ...] = (
    DemoSite(
        "www",
        "static",
        lambda run_dir: StaticOptions(root=DEMO_DIR / "www", listing=False),
        default=True,
    ),
    DemoSite("files", "static", lambda run_dir: StaticOptions(root=DEMO_DIR / "files")),
    DemoSite(
        "share",
        "share",
        lambda run_dir: ShareOptions(paths=(DEMO_DIR / "files",), token=SHARE_TOKEN),
    ),
    DemoSite(
        "drop",
        "receive",
        lambda run_dir: ReceiveOptions(
            root=_drop_folder(run_dir),
            token=DROP_TOKEN,
            max_size=DROP_MAX_SIZE,
            max_total=DROP_MAX_TOTAL,
        ),
    ),
    DemoSite("echo", "echo", lambda run_dir: EchoOptions()),
)


@contextlib.contextmanager
def demo_run_dir() -> Iterator[Path]:
    """A temporary folder for one run of the demo (uploads to the drop site), removed at exit."""
    with tempfile.TemporaryDirectory(prefix="comptoir-demo-") as folder:
        yield Path(folder)


def demo_config(
    server: ServerOptions, run_dir: Path, sites: tuple[DemoSite, ...] = SITES
) -> Config:
    """The Config of `comptoir demo`: every demo site on its `*.localhost` name."""
    return Config(
        server=server,
        sites=tuple(
            SiteConfig(
                kind=s.kind,
                options=s.options(run_dir),
                hosts=(s.host,),
                default=s.default,
                name=s.name,
            )
            for s in sites
        ),
    )
