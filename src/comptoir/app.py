"""Assembles the ASGI app a worker serves: access log → worker app → host router → security → sites.

`build_app(config)` runs in each worker process: every site kind builds its app from its options,
each is wrapped so `/.comptoir/…` answers the shared CSS/JS, then in the security middlewares
(headers, theme switch, password: `security.secure_site`), and the router picks one per request.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path

from comptoir import netinfo
from comptoir.accesslog import AccessLog, escape_controls, escape_for_log
from comptoir.clientlimits import client_limits
from comptoir.clock import Clock, SystemClock
from comptoir.collector import settle
from comptoir.config import ALL_INTERFACES, Config, ServerOptions, SiteConfig
from comptoir.errors import ClientGone, HTTPError
from comptoir.fastpath import FastPath
from comptoir.hosts import HostRouter, Route, normalize_host, normalize_mount
from comptoir.http.errors import send_error
from comptoir.http.reuse import REUSE, Computed, Reusable
from comptoir.security import secure_site
from comptoir.sites import AnyKind, SiteContext, get_kind
from comptoir.state import open_store
from comptoir.terminal import write_line
from comptoir.types import FRAMES, ASGIApp, Message, Receive, Scope, Send
from comptoir.web.assets import Assets

# python-multipart logs every malformed body it meets as a warning. The client already gets a 400
# saying so; what a client sends must not write on the server's terminal (--quiet means quiet).
_multipart_log = logging.getLogger("python_multipart")
_multipart_log.addHandler(logging.NullHandler())
_multipart_log.propagate = False


def _gone() -> tuple[type[Exception], ...]:
    """What a client gone away raises: ClientGone, and Starlette's ClientDisconnect once a site
    has imported Starlette (no other can raise it; a worker that serves no Starlette site starts
    without importing it)."""
    requests = sys.modules.get("starlette.requests")
    return (ClientGone,) if requests is None else (ClientGone, requests.ClientDisconnect)


class WorkerApp:
    """The outermost app of a worker: one layer for what concerns every request.

    - the kinds' lifespan hooks;
    - the fast path (fastpath.py): an answer a site offered for reuse is sent again from memory,
      or computed again by the site's function (echo's /get), without the layers below;
    - the access log line of each request (accesslog.py formats it);
    - errors, in one place: a kind's unexpected exception becomes a logged 500 with a short body
      (never a traceback to the client), a client that went away (`ClientGone`, Starlette's
      `ClientDisconnect`) ends its request quietly (with a 400 if nothing was answered yet: granian
      reports a malformed body as a disconnect), an `HTTPError` nobody answered becomes its
      short answer, and a WebSocket handshake no site answered is refused.

    All of it in one class, with one wrapper around `send`: each layer of its own would wrap
    `send` again on every request.
    """

    def __init__(
        self,
        app: ASGIApp,
        hooks: list[tuple[AnyKind, ASGIApp]],
        *,
        access_log: AccessLog | None = None,
        fast_path: FastPath | None = None,
        log: Callable[[str], None] = write_line,
    ) -> None:
        self.app = app
        self.hooks = hooks
        self.access_log = access_log
        self.fast_path = fast_path
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle lifespan; answer everything else from memory or through the router."""
        stype = scope["type"]
        if stype == "lifespan":
            await self._lifespan(receive, send)
            return
        access_log = self.access_log
        started_at = access_log.clock() if access_log is not None else 0.0
        if stype == "websocket":
            scope[FRAMES] = send
        fast = self.fast_path if stype == "http" else None
        if fast is not None:
            prepared = fast.find(scope)
            if prepared is not None:
                status, headers, body, log_target = prepared
                try:
                    start = {"type": "http.response.start", "status": status, "headers": headers}
                    await send(start)
                    await send({"type": "http.response.body", "body": body})
                except Exception as exc:
                    # A server whose send fails mid-answer: nothing more can be sent.
                    self.log(error_line(scope, exc))
                    body = b""
                if access_log is not None:
                    duration = access_log.clock() - started_at
                    access_log.log(scope, status, len(body), duration, log_target)
                return
        started = False
        status = 0
        sent = 0
        offer: Reusable | Computed | None = None
        kept: list[tuple[bytes, bytes]] | None = None
        body = b""

        async def tracked(message: Message) -> None:
            nonlocal started, status, sent, offer, kept, body
            started = True
            mtype = message["type"]
            if mtype == "http.response.body":
                chunk = message.get("body", b"")
                sent += len(chunk)
                if kept is not None and type(offer) is Reusable:
                    body += chunk
            elif mtype == "http.response.start":
                status = message["status"]
                offer = message.pop(REUSE, None)
                if offer is not None and fast is not None and scope["method"] == "GET":
                    kept = message["headers"]
            elif mtype == "http.response.pathsend":
                with contextlib.suppress(OSError):
                    sent += os.stat(message["path"]).st_size
            elif mtype == "websocket.accept":
                status = 101
            elif mtype == "websocket.close" and not status:
                status = 403  # a close before the accept refuses the handshake
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except _gone():
            if stype == "http" and not started:
                # Before an answer, the server reports a body it cannot read (a bad chunk size,
                # bare-LF chunk framing, fewer bytes than Content-Length) as a disconnect: the
                # client may still be there, waiting. Unanswered, granian would send a 500.
                with contextlib.suppress(Exception):
                    message = "Malformed or incomplete request body"
                    await _answer(scope, tracked, 400, message, {"Connection": "close"})
            return
        except HTTPError as exc:
            if not started:
                await _answer(scope, tracked, exc.status, exc.message, exc.headers)
        except Exception as exc:
            self.log(error_line(scope, exc))
            if not started:
                with contextlib.suppress(Exception):
                    await _answer(scope, tracked, 500, "Internal server error")
        else:
            if stype == "websocket" and not started:
                # A kind that speaks no WebSocket returns without a word: the handshake is
                # refused here, the same way for every kind (a close before the accept is a 403).
                # A client that already left cannot be refused: nothing to answer then.
                with contextlib.suppress(Exception):
                    await tracked({"type": "websocket.close", "code": 1008})
            elif kept is not None and status == 200 and fast is not None:
                if type(offer) is Reusable:
                    target = access_log.target(scope) if access_log is not None else None
                    fast.keep(scope, kept, body, offer, target)
                elif type(offer) is Computed:
                    fast.keep_computed(scope, kept, offer)
        finally:
            if access_log is not None:
                duration = access_log.clock() - started_at
                access_log.log(scope, status or 500, sent, duration)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    for kind, app in self.hooks:
                        if kind.startup is not None:
                            await kind.startup(app)
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                settle()  # what the sites built stays: out of the collector's way
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for kind, app in self.hooks:
                    if kind.shutdown is not None:
                        try:
                            await kind.shutdown(app)
                        except Exception as exc:
                            # One site failing to stop must not keep the others from stopping.
                            self.log(error_line(None, exc))
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _answer(
    scope: Scope, send: Send, status: int, message: str, headers: dict[str, str] | None = None
) -> None:
    if scope["type"] == "websocket":
        # Before the handshake was accepted a close is a 403; after it, 1011 says "server error".
        await send({"type": "websocket.close", "code": 1011 if status >= 500 else 1008})
        return
    await send_error(scope, send, status, message, headers)


def error_line(scope: Scope | None, exc: BaseException) -> str:
    """The log entry of an unexpected exception: what was asked, then the traceback."""
    if scope is None:
        where = "lifespan"
    else:
        path = escape_for_log(scope.get("path", ""))
        where = f"{escape_for_log(scope.get('method', 'WEBSOCKET'))} {path}"
    return f"comptoir: internal error on {where}\n" + "\n".join(_traceback_lines(exc))


def _traceback_lines(exc: BaseException) -> list[str]:
    """Python's traceback, with each exception's message kept on its one line.

    Frames show comptoir's own code; a message may hold what a client sent, so its line breaks
    and control characters are shown escaped: it cannot forge a log line or drive the terminal.
    """
    lines: list[str] = []
    if exc.__cause__ is not None:
        lines += _traceback_lines(exc.__cause__)
        lines += ["", "The above exception was the direct cause of the following exception:", ""]
    elif exc.__context__ is not None and not exc.__suppress_context__:
        lines += _traceback_lines(exc.__context__)
        lines += ["", "During handling of the above exception, another exception occurred:", ""]
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        lines.append("Traceback (most recent call last):")
        lines += "".join(traceback.format_list(frames)).rstrip("\n").split("\n")
    name = type(exc).__qualname__
    module = type(exc).__module__
    if module not in ("builtins", "__main__"):
        name = f"{module}.{name}"
    message = str(exc)
    lines.append(f"{name}: {escape_controls(message)}" if message else name)
    return [escape_controls(line) for line in lines]


def lan_address_for(server: ServerOptions, site: SiteConfig) -> Callable[[], str | None]:
    """How a site looks up the address other machines reach it at (SiteContext.lan_address)."""
    if server.host not in (ALL_INTERFACES, "", "0.0.0.0"):
        # Listening on one address: nothing reaches the server but through that one.
        return lambda: None
    if site.hosts and not site.default:
        # A request naming the machine by its address would reach another site, or none.
        return lambda: None
    ipv6 = server.host != "0.0.0.0"  # the other wildcards are dual-stack

    def lookup() -> str | None:
        address = netinfo.primary_lan_address(ipv6=ipv6)
        return None if address is None else address.host_for_url()

    return lookup


def build_app(
    config: Config,
    *,
    request_shutdown: Callable[[], None] | None = None,
    state_path: str | None = None,
    run_dir: Path | None = None,
    endpoints: Mapping[str, str] | None = None,
    clock: Clock | None = None,
    fast_path: bool = True,
    log_write: Callable[[str], None] | None = None,
) -> ASGIApp:
    """Build the whole ASGI app for a config (called once per worker).

    `state_path` is the SQLite file the main process created for state shared between workers;
    without it the state is private to this process (one worker, tests). `run_dir` is the run's
    private folder and `endpoints` what the main process's services published (SiteContext).
    `fast_path` off sends every request through the whole stack (bench/inprocess.py compares);
    `log_write` receives the access log's lines instead of stderr.
    """
    store = open_store(state_path)
    assets = Assets(clock=(clock or SystemClock()).monotonic)
    routes: list[Route] = []
    hooks: list[tuple[AnyKind, ASGIApp]] = []
    for site in config.sites:
        kind = get_kind(site.kind)
        mount = normalize_mount(site.path)
        context = SiteContext(
            prefix="" if mount == "/" else mount,
            request_shutdown=request_shutdown or (lambda: None),
            quiet=config.server.quiet,
            store=store,
            workers=config.server.workers,
            clock=clock or SystemClock(),
            run_dir=run_dir,
            endpoints=dict(endpoints or {}),
            lan_address=lan_address_for(config.server, site),
        )
        app = kind.build(site.options, context)
        hooks.append((kind, app))
        hosts = tuple(h for h in (normalize_host(x, wildcard=True) for x in site.hosts) if h)
        # Security sits inside the router, so it sees each site's own paths (its login page is
        # `<mount>/.comptoir/login`); the shared assets are answered in front of the password,
        # which the login page itself needs.
        guarded = secure_site(app, config.server, store, assets, site.name)
        routes.append(Route(guarded, hosts, mount, site.default))
    access_log = None
    if not config.server.quiet:
        access_log = AccessLog(config.server.log_format, log_write)
    # A password makes every answer depend on the request's cookie or Authorization: no answer
    # is the same for everyone then, so none is kept.
    monotonic = (clock or SystemClock()).monotonic
    mounts = tuple(route.path for route in routes)
    fast = FastPath(monotonic, mounts) if fast_path and not config.server.password_hash else None
    limited = client_limits(HostRouter(routes), config.server)
    return WorkerApp(limited, hooks, access_log=access_log, fast_path=fast)
