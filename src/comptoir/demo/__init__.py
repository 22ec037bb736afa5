"""`comptoir demo`: a built-in tour on `*.localhost` names, which browsers resolve to loopback.

The tour is made from the registry: a home page (the `www` site), then every site each registered
kind declares in its `SiteKind.demo`, in the registry's order, each served at
`http://<name>.localhost:<port>/` and linked from the home page with the description its kind
gives. A new kind appears here by registering: nothing in this package's code names a kind but
the static site that serves the home page. Today the tour is (tests/test_demo.py keeps this list
equal to the registry's):

- `kind = "static"`: `www` (the home page) and `files` (a folder listing);
- `kind = "share"`: `share` (a share link);
- `kind = "receive"`: `drop` (an upload page);
- `kind = "echo"`: `echo` (the httpbin-compatible echo);
- `kind = "api"`: `api` (CSV files as a JSON API, with the course's routes);
- `kind = "chat"`: `chat` (a chat over WebSocket, with rooms, history and an HTTP API).

The home page is rendered when the demo starts (www/index.html is a template; the other files of
www/ are copied beside it) into the run's temporary folder, which is removed at exit. It is also
the default site, so `http://127.0.0.1:<port>/` shows it.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from comptoir.config import Config, ServerOptions, SiteConfig
from comptoir.sites import KINDS, DemoContext, DemoSite, get_kind
from comptoir.sites.static import StaticOptions

if TYPE_CHECKING:
    import jinja2

# The demo's own folders ship inside the package (see pyproject: the wheel includes them).
DEMO_DIR = Path(__file__).resolve().parent
# The sample files kinds show (DemoContext.samples), and the home page's template and files.
SAMPLES_DIR = DEMO_DIR / "files"
HOME_DIR = DEMO_DIR / "www"
DOMAIN = "localhost"


@dataclass(frozen=True)
class DemoEntry:
    """One site of the demo: a demo site a kind declares, or the home page."""

    kind: str
    site: DemoSite[Any]
    default: bool = False

    @property
    def name(self) -> str:
        """The site's name: its host is `<name>.localhost`."""
        return self.site.name

    @property
    def host(self) -> str:
        """The host name this site answers on."""
        return f"{self.name}.{DOMAIN}"

    def options(self, run_dir: Path) -> Any:
        """The kind's options for this site, in the run whose temporary folder is `run_dir`."""
        return self.site.options(DemoContext(samples=SAMPLES_DIR, run_dir=run_dir, site=self.name))

    def path(self, run_dir: Path) -> str:
        """The path of the site's front page (with its token, for the kinds that have one)."""
        return "/" + get_kind(self.kind).url_suffix(self.options(run_dir)).lstrip("/")


@dataclass(frozen=True)
class HomeLink:
    """A site as the home page links it: host, front page, description in (text, is code)."""

    host: str
    path: str
    description: list[tuple[str, bool]]


def code_spans(text: str) -> list[tuple[str, bool]]:
    """A description's parts: (text, True) for what `backticks` mark as code, else (text, False)."""
    return [(part, i % 2 == 1) for i, part in enumerate(text.split("`")) if part]


@cache
def _templates() -> jinja2.Environment:
    # Imported here: the main process pays for Jinja2 in `comptoir demo` only.
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(HOME_DIR),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )


def render_home_page(run_dir: Path) -> str:
    """The home page's HTML: a link to every other site of the demo, with its description."""
    links = [
        HomeLink(s.host, s.path(run_dir), code_spans(s.site.description))
        for s in SITES
        if not s.default
    ]
    return _templates().get_template("index.html").render(sites=links)


def _home_options(demo: DemoContext) -> StaticOptions:
    folder = demo.folder()
    (folder / "index.html").write_text(render_home_page(demo.run_dir), encoding="utf-8")
    for file in HOME_DIR.iterdir():
        if file.is_file() and file.name != "index.html":
            shutil.copyfile(file, folder / file.name)
    return StaticOptions(root=folder, listing=False)


HOME = DemoEntry("static", DemoSite("www", "this page, a static site", _home_options), default=True)


def _sites() -> tuple[DemoEntry, ...]:
    kinds = [DemoEntry(kind.name, site) for kind in KINDS.values() for site in kind.demo]
    return (HOME, *kinds)


SITES: tuple[DemoEntry, ...] = _sites()


@contextlib.contextmanager
def demo_run_dir() -> Iterator[Path]:
    """A temporary folder for one run of the demo (the home page, uploads...), removed at exit."""
    with tempfile.TemporaryDirectory(prefix="comptoir-demo-") as folder:
        yield Path(folder)


def demo_config(
    server: ServerOptions, run_dir: Path, sites: tuple[DemoEntry, ...] = SITES
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
