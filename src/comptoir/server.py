"""Server(config): bind the listening socket, print the banner, run granian's workers.

We bind the socket ourselves rather than let granian do it, for three reasons: `--port 0` must give
one port for every worker (granian's per-worker SO_REUSEPORT listeners would each pick their own),
the banner must know the real port before workers start, and "port in use" / "permission denied"
must become one clear line (ConfigError), not a traceback from a worker.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import signal
import socket
import sys
import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from comptoir.config import ALL_INTERFACES, Config, ServerOptions
from comptoir.errors import ConfigError
from comptoir.hosts import url_host
from comptoir.loops import resolve_loop
from comptoir.netinfo import lan_addresses
from comptoir.openfiles import FDS_PER_CONNECTION, connections_within, raise_open_files_limit
from comptoir.security.tls import TLSFiles, check_tls_options, tls_enabled
from comptoir.services import Service, ServiceRunner
from comptoir.sites import ServiceContext, get_kind
from comptoir.state import open_store
from comptoir.terminal import write_line
from comptoir.types import ASGIApp


@dataclass(frozen=True)
class SiteURL:
    """A URL a site answers at, for the banner."""

    site: str
    url: str
    primary: bool = False
    # An address reaching a default site by no name of its own: shown in the banner, left out of
    # --quiet's output (which gives one URL per host name).
    fallback: bool = False


def bind_socket(host: str, port: int, backlog: int = 1024) -> socket.socket:
    """Bind and listen; ConfigError with a one-line reason when that is impossible."""
    wildcard = host in (ALL_INTERFACES, "")
    try:
        infos = socket.getaddrinfo(
            None if wildcard else host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise ConfigError(f"cannot listen on {host!r}: {exc.strerror}") from None
    except (UnicodeError, ValueError):
        # getaddrinfo's IDNA step refuses empty or over-long labels (`a..b`).
        raise ConfigError(f"cannot listen on {host!r}: not a valid host name") from None
    if wildcard:
        # One dual-stack socket answers IPv4 and IPv6; fall back to IPv4 without IPv6 support.
        if socket.has_ipv6 and _ipv6_usable():
            infos = [(socket.AF_INET6, socket.SOCK_STREAM, 0, "", ("::", port, 0, 0))]
        else:
            infos = [(socket.AF_INET, socket.SOCK_STREAM, 0, "", ("0.0.0.0", port))]
    family, stype, proto, _, addr = infos[0]
    sock = socket.socket(family, stype, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # The accepted connections inherit it (Linux, BSD): a small write goes at once instead of
        # waiting for the ACK of the one before (Nagle), which the client may delay 40 ms. A chat's
        # frames and a streamed body are such writes; granian's own listener sets it too.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if wildcard else 1)
        sock.bind(addr)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        shown = f"[{addr[0]}]:{port}" if family == socket.AF_INET6 else f"{addr[0]}:{port}"
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"port {port} is already in use on {shown}; try --port 0") from None
        if exc.errno == errno.EACCES:
            raise ConfigError(
                f"permission denied to listen on {shown} (ports below 1024 need privileges)"
            ) from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise ConfigError(f"cannot listen on {host}: address not available here") from None
        raise ConfigError(f"cannot listen on {shown}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


def _ipv6_usable() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def listen_urls(sock: socket.socket, host: str, scheme: str = "http") -> list[tuple[str, bool]]:
    """(base URL, primary) for each address the bound socket is reachable at, primary first."""
    port = sock.getsockname()[1]
    wildcard = host in (ALL_INTERFACES, "", "0.0.0.0")
    if not wildcard:
        shown = f"[{host}]" if ":" in host else host
        return [(f"{scheme}://{shown}:{port}", True)]
    lan = lan_addresses(ipv6=sock.family == socket.AF_INET6)
    urls = [(f"{scheme}://{a.host_for_url()}:{port}", a.primary) for a in lan]
    loopback = [(f"{scheme}://127.0.0.1:{port}", False)]
    if sock.family == socket.AF_INET6:
        loopback.append((f"{scheme}://[::1]:{port}", False))
    if not any(p for _, p in urls):
        # No network: loopback is all there is, so it is the one to show first.
        loopback[0] = (loopback[0][0], True)
        return loopback + urls
    primary = [u for u in urls if u[1]]
    return primary + loopback + [u for u in urls if not u[1]]


@dataclass(frozen=True)
class WorkerSetup:
    """What each worker process needs besides the Config: where the run's shared things are."""

    state_path: str
    run_dir: Path
    # What the main process's services published for the workers (SiteContext.endpoints).
    endpoints: dict[str, str]


def _load_app(config: Config, setup: WorkerSetup, *_: Any) -> ASGIApp:
    """Build the app inside a worker process; a worker may ask the main process to stop."""

    def request_shutdown() -> None:
        os.kill(os.getppid(), signal.SIGTERM)

    # Imported here: only workers serve HTTP, and the main process starts faster without
    # Starlette and the sites' modules.
    from comptoir.app import build_app

    return build_app(
        config,
        request_shutdown=request_shutdown,
        state_path=setup.state_path,
        run_dir=setup.run_dir,
        endpoints=setup.endpoints,
    )


class Server:
    """Runs a Config on granian until interrupted."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.sock: socket.socket | None = None

    def check(self) -> None:
        """Raise ConfigError for anything that would stop the sites from starting."""
        problems: list[str] = []
        server = self.config.server
        for site in self.config.sites:
            for problem in get_kind(site.kind).validate(site.options, server):
                problems.append(
                    f"{site.name or site.kind}: {problem}"
                    if len(self.config.sites) > 1
                    else str(problem)
                )
        problems.extend(check_tls_options(self.config.server))
        try:
            resolve_loop(server.loop)
        except ConfigError as exc:
            problems.append(str(exc))
        if problems:
            raise ConfigError("; ".join(problems))

    def bind(self) -> socket.socket:
        """Bind the listening socket (once)."""
        if self.sock is None:
            s = self.config.server
            self.sock = bind_socket(s.host, s.port)
        return self.sock

    def urls(self) -> list[SiteURL]:
        """Every URL each site answers at, the primary one first."""
        sock = self.bind()
        out: list[SiteURL] = []
        scheme = "https" if tls_enabled(self.config.server) else "http"
        bases = listen_urls(sock, self.config.server.host, scheme)
        port = sock.getsockname()[1]
        for site in self.config.sites:
            kind = get_kind(site.kind)
            path = site.path.rstrip("/") + "/" + kind.url_suffix(site.options).lstrip("/")
            name = site.name or site.kind
            if site.hosts:
                for h in site.hosts:
                    url = f"{scheme}://{url_host(h)}:{port}{path}"
                    out.append(SiteURL(name, url, h == site.hosts[0]))
                if site.default:
                    # Names no site lists (the machine's addresses) reach the default site.
                    out.extend(SiteURL(name, base + path, fallback=True) for base, _ in bases)
            else:
                out.extend(SiteURL(name, base + path, primary) for base, primary in bases)
        return out

    def services(self, context: ServiceContext | None = None) -> list[Service]:
        """The non-HTTP listeners the sites ask for (run by the main process)."""
        context = context or ServiceContext(self.config.server)
        out: list[Service] = []
        for site in self.config.sites:
            out.extend(get_kind(site.kind).services(site.options, context))
        s = self.config.server
        if s.redirect_http is not None:
            from comptoir.security.redirect import RedirectToHTTPS

            out.append(RedirectToHTTPS(s.host, s.redirect_http, self.bind().getsockname()[1]))
        return out

    def _fit_open_files(self) -> None:
        """Raise the open-files limit (the workers inherit it); cut --worker-connections to fit."""
        server = self.config.server
        sites = self.config.sites
        per = max((get_kind(s.kind).fds_per_connection for s in sites), default=FDS_PER_CONNECTION)
        connections = connections_within(server.worker_connections, raise_open_files_limit(), per)
        if connections == server.worker_connections:
            return
        # Said when asked for; the default is cut to fit without a word at every start.
        if server.worker_connections != ServerOptions.worker_connections:
            write_line(
                f"comptoir: the open-files limit allows {connections} connections per worker,"
                f" not {server.worker_connections} (--worker-connections); raise it with ulimit -n"
            )
        server = dataclasses.replace(server, worker_connections=connections)
        self.config = dataclasses.replace(self.config, server=server)

    def run(self) -> int:
        """Serve until SIGINT/SIGTERM (or a site asks to stop); return the exit code."""
        from comptoir.banner import print_banner
        from comptoir.security.passwords import resolve_password
        from comptoir.security.tls import KEY_PASSWORD_ENV, prepare_tls

        self.check()
        self._fit_open_files()
        # Asked (or read) once here; the workers get only its hash.
        server_options = resolve_password(self.config.server)
        self.config = dataclasses.replace(self.config, server=server_options)
        # State shared by the workers, and the TLS key, live in a folder of this run only (0700),
        # removed at exit.
        with tempfile.TemporaryDirectory(prefix="comptoir-") as state_dir:
            tls = prepare_tls(self.config, Path(state_dir))
            # The key is decrypted into the run folder now: its password need not reach workers.
            os.environ.pop(KEY_PASSWORD_ENV, None)
            server_options = dataclasses.replace(self.config.server, key_password=None)
            self.config = dataclasses.replace(self.config, server=server_options)
            sock = self.bind()
            run_dir = Path(state_dir)
            service_context = ServiceContext(self.config.server, run_dir)
            runner = ServiceRunner(self.services(service_context))
            try:
                extra = runner.start()
            except ConfigError:
                sock.close()
                raise
            state_path = os.path.join(state_dir, "state.sqlite3")
            # Create the schema once here, before several workers race to create it.
            open_store(state_path).close()
            try:
                print_banner(self.config, self.urls(), services=extra, tls=tls)
                setup = WorkerSetup(state_path, run_dir, dict(service_context.endpoints))
                return _run_granian(self.config, sock, setup, tls)
            finally:
                runner.stop()


def _run_granian(
    config: Config, sock: socket.socket, setup: WorkerSetup, tls: TLSFiles | None = None
) -> int:
    from granian._granian import SocketHolder
    from granian.constants import HTTPModes, Interfaces, Loops, RuntimeModes, SSLProtocols
    from granian.http import HTTP1Settings, HTTP2Settings
    from granian.log import LogLevels
    from granian.server.mp import MPServer

    class _Granian(MPServer):
        """granian's process server, listening on our already-bound socket."""

        def _init_shared_socket(self) -> None:
            self._ssp = None
            self._shd = SocketHolder(sock.fileno(), False, 1024)  # type: ignore[call-arg,assignment]
            self._sfd = sock.fileno()  # type: ignore[assignment]
            self._sso = sock

        def _drop_shared_socket(self) -> None:
            # Stop accepting at once; workers finish what they have in flight.
            pass

    s = config.server
    server = _Granian(
        target="comptoir",  # only a label: the app comes from target_loader
        address=s.host,
        port=sock.getsockname()[1],
        interface=Interfaces.ASGI,
        # Resolved here, not by granian's `auto` (which would take rloop if installed): loops.py.
        loop=Loops(resolve_loop(s.loop)),
        workers=s.workers,
        log_enabled=True,
        log_level=LogLevels.error,
        # None would wait forever for a stuck transfer; --grace 0 still gives workers a moment.
        workers_kill_timeout=max(0.1, s.grace),  # type: ignore[arg-type]  # floats work
        backlog=1024,
        # Connections each worker holds (granian takes a permit before each accept: beyond, new
        # clients wait in the kernel's queue). Its default, the backlog shared by the workers
        # (1,024 for one), let as many silent sockets stop every other client.
        backpressure=s.worker_connections,
        # hyper closes a connection that has not sent a whole request head in this time: a new
        # one, or one kept alive and idle between requests (hyper's default: 30 s).
        http1_settings=HTTP1Settings(header_read_timeout=round(s.header_timeout * 1000)),
        # HTTP/2 (under TLS) has no such timeout; pings every --header-timeout at least drop the
        # connections of peers gone away (granian's default sends none).
        http2_settings=HTTP2Settings(keep_alive_interval=round(s.header_timeout * 1000)),
        # Under TLS, HTTP/2 is offered by ALPN and HTTP/1.1 stays available. Without TLS, HTTP/1.1
        # only, as nginx by default: browsers never speak cleartext HTTP/2 (h2c), and a connection
        # need not be sniffed for its preface.
        http=HTTPModes.auto if tls else HTTPModes.http1,
        # One single-threaded Rust runtime per worker: what granian's docs advise for few
        # processes, and measured a little faster here than its multi-threaded default for ASGI.
        runtime_mode=RuntimeModes.st,
        ssl_cert=tls.cert if tls else None,
        ssl_key=tls.key if tls else None,
        ssl_protocol_min=SSLProtocols.tls12,
    )
    try:
        server.serve(target_loader=partial(_load_app, config, setup), wrap_loader=False)
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        sock.close()
        sys.stdout.flush()
    return 0
