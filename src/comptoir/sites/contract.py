"""The contract between comptoir and a site kind: `SiteKind`, `SiteContext`, `Problem`, `DemoSite`.

A kind declares everything the rest of comptoir needs from it here, typed, and nothing is looked
up by attribute name: its options class (which the CLI, sites.toml and the docs all read), how to
build its ASGI app, its checks, its lifespan hooks, the main-process services it needs, its
command, and its sites in `comptoir demo` (which the conformance suite runs too).
`sites/__init__.py` registers the kinds; adding one is a folder under `sites/` plus one line there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from comptoir.clock import Clock, SystemClock
from comptoir.state import StateStore
from comptoir.types import ASGIApp

if TYPE_CHECKING:
    from comptoir.config import ServerOptions
    from comptoir.services import Service

OptionsT = TypeVar("OptionsT")
AppT = TypeVar("AppT", bound=ASGIApp)


@dataclass(frozen=True)
class Problem:
    """Something in a site's options that stops it from starting.

    `option` is the field of the options class it is about (sites.toml names that key, the
    command line its flag), or None for the site as a whole.
    """

    option: str | None
    message: str
    # The command line shows the option's name first ("token: use at least 16 characters");
    # messages that already say what they are about ("folder not found: /srv") stand alone.
    labelled: bool = False
    # Which item of a list option it is about (the n-th `[[site.route]]`): sites.toml names its
    # line.
    item: int | None = None

    def __str__(self) -> str:
        if self.labelled and self.option:
            return f"{self.option}: {self.message}"
        return self.message


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
    # Wall-clock and monotonic time: tests pass a ManualClock instead of sleeping.
    clock: Clock = field(default_factory=SystemClock)
    # This run's private folder (0700, removed at exit), shared by the main process and the
    # workers: Unix sockets, temporary files. None when the app runs without a server (tests).
    run_dir: Path | None = None
    # What main-process services published for the workers (see ServiceContext.publish), e.g.
    # the path of a Unix socket a fan-out service listens on.
    endpoints: Mapping[str, str] = field(default_factory=dict)
    # The machine's primary LAN address as it goes in a URL (`192.168.1.20`, `[fd00::20]`) when
    # other machines reach this site by it, else None (no network, a server listening on one
    # address, a site answering only its host names): what a page opened on this machine gives
    # a phone instead of `127.0.0.1`. Looked up at each call (system calls: not on the loop).
    lan_address: Callable[[], str | None] = field(default=lambda: None)


@dataclass
class ServiceContext:
    """What a main-process service is given: the server's options, the run folder, a way to
    hand addresses to the workers (they find them in `SiteContext.endpoints`)."""

    server: ServerOptions
    run_dir: Path | None = None
    endpoints: dict[str, str] = field(default_factory=dict)

    def publish(self, name: str, value: str) -> None:
        """Make `value` (an address, a socket path) known to every worker as `endpoints[name]`."""
        self.endpoints[name] = value


@dataclass(frozen=True)
class DemoContext:
    """What a kind's demo site is made from when `comptoir demo` starts (tests make their own)."""

    # The demo's sample files (odd names: spaces, accents, `%`, `&`, `#`), shipped in the
    # package: read them, never write there.
    samples: Path
    # The run's temporary folder, removed at exit, and the name of the site being made.
    run_dir: Path
    site: str

    def folder(self) -> Path:
        """This site's own folder in the run's temporary folder (uploads, history), made now."""
        path = self.run_dir / self.site
        path.mkdir(exist_ok=True)
        return path


@dataclass(frozen=True)
class DemoSite(Generic[OptionsT]):
    """A site of a kind in `comptoir demo`, at `http://<name>.localhost:PORT/`.

    The demo's home page links it with its description, so its front page (the path
    `url_suffix` gives) is a page for browsers: HTML to `Accept: text/html`. The conformance
    suite runs the kind with these options, at that front page.
    """

    name: str
    # One sentence after the link on the home page; `backticks` mark code. Say what the site
    # shows and which command does the same.
    description: str
    # The options, made when the demo starts: a demo site is reachable by anyone who knows its
    # name, so it shows sample data, writes only in its own folder (`DemoContext.folder`) and
    # caps what it accepts.
    options: Callable[[DemoContext], OptionsT]
    # Paths below the site where it speaks WebSocket (the conformance suite expects the handshake
    # accepted there, refused everywhere else).
    websockets: tuple[str, ...] = ()


Hook = Callable[[AppT], Awaitable[None]]


def _no_problems(options: Any, server: ServerOptions) -> list[Problem]:
    return []


def _no_suffix(options: Any) -> str:
    return ""


def _no_services(options: Any, context: ServiceContext) -> list[Service]:
    return []


def _no_notes(options: Any) -> list[str]:
    return []


@dataclass(frozen=True)
class SiteKind(Generic[OptionsT, AppT]):
    """A kind of site, as the rest of comptoir sees it.

    Generic over its options class and the type of app it builds, so that the hooks are checked
    against what `build` returns.
    """

    name: str
    options: type[OptionsT]
    build: Callable[[OptionsT, SiteContext], AppT]
    # The CLI command serving one site of this kind (`comptoir serve` for static), and its help.
    command: str
    help: str
    # Its sites in `comptoir demo` (at least one: the conformance suite runs the kind from them).
    demo: tuple[DemoSite[OptionsT], ...]
    # Problems that stop the site from starting (a missing folder, options that clash with the
    # server's: workers, TLS, host).
    validate: Callable[[OptionsT, ServerOptions], list[Problem]] = _no_problems
    # Run in each worker when it starts and stops (ASGI lifespan), on the app `build` made.
    startup: Hook[AppT] | None = None
    shutdown: Hook[AppT] | None = None
    # Path shown in the banner after the site's URL (e.g. a share's capability token).
    url_suffix: Callable[[OptionsT], str] = _no_suffix
    # Non-HTTP listeners and helpers run by the main process (TCP/UDP echo...), see services.py.
    services: Callable[[OptionsT, ServiceContext], list[Service]] = _no_services
    # Lines the banner prints under the site's URLs (e.g. the folder receive saves into); none
    # with --quiet.
    banner: Callable[[OptionsT], list[str]] = _no_notes
    # Descriptors one connection to the site may hold at once: its socket, and what a request
    # opens (a file being sent: 2; an upload's part file, its folder and DIR: 4). A worker holds
    # as many connections as fit the open-files limit at its sites' largest (openfiles.py).
    fds_per_connection: int = 4


AnyKind = SiteKind[Any, Any]
