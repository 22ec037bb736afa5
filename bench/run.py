"""Measure comptoir against nginx, http.server, copyparty, uploadserver and, for `comptoir api`,
Datasette, json-server and FastAPI + pandas: one run, one machine.

    uv run python bench/run.py                      # everything but api, about 4 minutes
    uv run python bench/run.py --duration 3 --servers comptoir,nginx --scenarios small
    uv run python bench/run.py --scenarios share,zip,upload,echo,tcp --duration 3
    uv run python bench/run.py --scenarios api \
        --servers comptoir,datasette,json-server,fastapi-pandas --duration 5

Each server is started on its own free port on 127.0.0.1, serving the same folder, with one
worker, pinned to the same CPU(s); the load generators (wrk, curl, the TCP client) are pinned to
the others. The servers run one after the other, never side by side. Besides static files
(`serve`), comptoir is measured as `share` (one large file; a folder as a stored zip), `receive`
(a multipart upload, against copyparty and uploadserver) and `echo` (httpbin's `/get` against a
bare granian app; thousands of TCP echo connections held at once) and `api` (a 1,000,000-row CSV
as a JSON API, api_data.py's data, against Datasette, json-server and FastAPI + pandas on the same
rows). The table gives absolute figures and ratios to nginx (for api: how many times comptoir does
better than each peer); the raw figures go to bench/results/<time>.json. bench/README.md says how
to read them.

Adding a scenario: write a function `(Bench, Running) -> Measurement` and add a `Scenario` to
SCENARIOS. A scenario that needs servers started differently names a `mode`; each ServerSpec
says how it starts in each mode it supports (servers without that mode are skipped).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import http.client
import io
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from api_data import Dataset, csv_files, json_db, sqlite_db
from processes import BackgroundLoad, MemorySampler, tree_memory, tree_memory_kb, tree_sockets
from tcp_echo_client import raise_open_files_limit

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
WRK_REPORT = BENCH_DIR / "wrk_report.lua"
TCP_CLIENT = BENCH_DIR / "tcp_echo_client.py"
WS_CLIENT = BENCH_DIR / "ws_echo_client.py"
WEBSOCKETS = "websockets==17.4"
# The chat scenarios: their load (chat_load.py) and the bare broadcast server they compare
# comptoir with (chat_peer.py), both from the peers' venv, on the uvloop comptoir runs.
CHAT_LOAD = BENCH_DIR / "chat_load.py"
CHAT_PEER = BENCH_DIR / "chat_peer.py"
CHAT_SUBPROTOCOL = "comptoir.chat.v1"
# Peers that come from PyPI live in their own throwaway venv, never in comptoir's lock file.
PEERS_VENV = BENCH_DIR / ".venv-peers"
COPYPARTY = "copyparty==1.20.26"
UPLOADSERVER = "uploadserver==6.0.5"
# The api peers: Datasette (its data loaded by sqlite-utils), FastAPI + pandas on uvicorn (with
# its `standard` extras, uvloop and httptools, as `pip install "fastapi[standard]"` brings them).
DATASETTE = ("datasette==0.65.5", "sqlite-utils==4.2.1")
FASTAPI_PANDAS = ("fastapi==0.165.0", "uvicorn[standard]==0.54.0", "pandas==3.1.1")
FASTAPI_APP = "fastapi_course:app"
# json-server from npm, into a folder of its own (git-ignored). 0.17 is npm's `latest`; the 1.0
# betas changed the query syntax (`_per_page`, `field:op=`) and are not what people install.
NODE_PEERS = BENCH_DIR / ".peers-node"
JSON_SERVER = "json-server@0.17.4"
JSON_SERVER_BIN = NODE_PEERS / "node_modules" / "json-server" / "lib" / "cli" / "bin.js"
WRK_RANDOM_ID = BENCH_DIR / "wrk_random_id.lua"

HOST = "127.0.0.1"
SMALL_FILE = "1k.bin"
LARGE_FILE = "large.bin"
# httpbin's /get as comptoir echo answers wrk (which sends only Host): nginx serves it as a
# static file and granian-floor from memory, next to comptoir building it from each request.
GET_FILE = "get"
GET_BODY = (
    json.dumps(
        {
            "args": {},
            "headers": {"Host": f"{HOST}:8000"},
            "origin": HOST,
            "url": f"http://{HOST}:8000/get",
        },
        indent=2,
    )
    + "\n"
)
# The folder shared as a zip: small files next to a hard link to the large file.
SHARE_FOLDER = "folder"
SMALL_FILE_SIZE = 4096
# The secret part of comptoir's share and receive links (fixed with --token, so the URL is known).
TOKEN = "bench-token-0123456789"
# wrk's own default (2 s) would count a merely slow answer under 1,000 connections as an error.
WRK_TIMEOUT = "5s"
# api peers may take seconds per answer (json-server scans its rows): time them, not drop them.
API_WRK_TIMEOUT = "30s"
# The api scenarios: the filtered column's value, the connections of each load.
API_CITY = "city7"
API_ID_CONNECTIONS = 32
API_PAGE_CONNECTIONS = 8
# A whole-table export slower than this is measured over what arrived meanwhile.
API_EXPORT_SECONDS = 20
# The answer checked before each api load: the slowest peer takes seconds (json-server's filter).
API_ANSWER_TIMEOUT = 30
STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
MB = 1_000_000
# Above this share of the CPUs taken by others (see BackgroundLoad), a figure is flagged.
BACKGROUND_WARNING = 0.05


class BenchError(Exception):
    """Something that stops the benchmark (a tool missing, a server that does not start)."""


# --- settings and running servers ------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    """What one run measures and how (the command-line flags)."""

    servers: tuple[str, ...]
    scenarios: tuple[str, ...]
    duration: int
    warmup: int
    small_connections: int
    connections: int
    large_mb: int
    large_runs: int
    zip_files: int
    upload_runs: int
    tcp_connections: int
    tcp_hold: float
    api_rows: int
    api_runs: int
    rounds: int
    server_cpus: str | None
    client_cpus: str | None
    peers_venv: Path
    output: Path | None
    keep: bool
    # The chat scenarios (chat_load.py): clients, rates (messages/s) and seconds.
    chat_clients: int = 1000
    # Finer where both servers meet this load generator's own limit (about 30,000 a second).
    chat_rates: str = "2,4,8,12,16,20,24,28,32,36,40,48,64,96,128"
    chat_step: float = 3.0
    chat_idle: int = 10_000
    chat_hold: float = 5.0
    chat_slow_clients: int = 20
    chat_slow_rate: float = 100.0
    chat_slow_size: int = 3000
    chat_slow_duration: float = 30.0
    chat_missed: int = 1000
    chat_runs: int = 3
    chat_connect_max: float = 120.0


@dataclass
class Bench:
    """One benchmark run: its options and the scratch folder holding the served files."""

    options: Options
    workdir: Path
    # Servers left out of this run, and why (a peer that could not be installed).
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def api_data(self) -> Dataset:
        """The api scenarios' data (api_data.py), made or found in its cache by main()."""
        return Dataset(rows=self.options.api_rows)

    @property
    def root(self) -> Path:
        """The folder every server serves."""
        return self.workdir / "site"

    @property
    def folder(self) -> Path:
        """The folder shared as a zip: small files and the large file."""
        return self.workdir / SHARE_FOLDER

    def client(self, argv: Sequence[str]) -> list[str]:
        """A load-generator command line, pinned to the client CPUs."""
        return _pinned(self.options.client_cpus, argv)


@dataclass(frozen=True)
class UploadForm:
    """How a server takes a multipart upload, and where it puts the file."""

    path: str
    field: str  # the form field holding the file
    directory: Path  # where the server saves it
    extra: tuple[str, ...] = ()  # other form fields, as curl -F takes them ("name=value")


@dataclass(frozen=True)
class Launch:
    """How to start one server: its command line and extra environment."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    # The server is up once a GET of this path (with these headers) answers 200.
    ready_path: str = "/" + SMALL_FILE
    ready_headers: dict[str, str] = field(default_factory=dict)
    # What wrk loads for --warmup seconds before the scenarios; None: no warm-up (a share).
    warmup_path: str | None = "/" + SMALL_FILE
    # What the scenarios of the mode load: the shared file, the archive, the echo endpoint.
    paths: dict[str, str] = field(default_factory=dict)
    upload: UploadForm | None = None
    tcp_port: int | None = None
    # A command printing one JSON line {"parse_s": ...}: the server's data read in-process, for
    # telling how much of its start is parsing (api).
    parse_probe: list[str] | None = None
    # Paths a scenario loads that this server has no equivalent of, and why (not measured).
    lacks: dict[str, str] = field(default_factory=dict)
    # A WebSocket subprotocol the chat scenarios' clients offer (comptoir's JSON).
    subprotocol: str | None = None


@dataclass
class Running:
    """A started server."""

    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    launch: Launch
    # From the start of its command to its first 200, and its memory meanwhile.
    ready_s: float = 0.0
    startup_peak_rss_kb: int = 0
    startup_peak_pss_kb: int = 0
    startup_peak_process_rss_kb: int = 0
    startup_other_cpu: float = 0.0

    def url(self, path: str) -> str:
        """The URL of a path on this server."""
        return f"http://{HOST}:{self.port}{path}"

    def path(self, name: str) -> str:
        """The path a scenario loads (`Launch.paths`), or a clear error when the mode lacks it."""
        if name not in self.launch.paths:
            raise BenchError(f"{self.name} was started without a {name!r} path")
        return self.launch.paths[name]


@dataclass
class Measurement:
    """What one scenario gave for one server: the headline value and everything behind it."""

    value: float | None  # in the scenario's unit; None when the server could not be measured
    errors: int = 0
    peak_rss_kb: int = 0
    peak_pss_kb: int = 0
    # Share of the CPUs used meanwhile by processes outside the benchmark (see BackgroundLoad).
    background_cpu: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)


def _pinned(cpus: str | None, argv: Sequence[str]) -> list[str]:
    return ["taskset", "-c", cpus, *argv] if cpus else list(argv)


def free_port() -> int:
    """A port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


# --- the servers -----------------------------------------------------------------------------

LaunchFn = Callable[[Bench, int], Launch]


@dataclass(frozen=True)
class ServerSpec:
    """A server under test: how it is prepared once, and how it starts in each mode."""

    name: str
    modes: dict[str, LaunchFn]
    prepare: Callable[[Bench], None] = lambda bench: None
    version: Callable[[Bench], str] = lambda bench: ""


def _comptoir(port: int, *args: str) -> list[str]:
    """A comptoir command line, from the interpreter running this script (the project's venv)."""
    common = ["--host", HOST, "--port", str(port), "--quiet", "--workers", "1"]
    return [sys.executable, "-m", "comptoir", *args, *common]


def comptoir_static(bench: Bench, port: int) -> Launch:
    """`comptoir serve` of the served folder."""
    return Launch(_comptoir(port, "serve", str(bench.root)))


def _link(argv: list[str], **fields: Any) -> Launch:
    """A share or upload link: up once its page answers a browser (curl gets the content); no
    warm-up (wrk on the link would download the shared file)."""
    page = f"/{TOKEN}/"
    return Launch(
        argv, ready_path=page, ready_headers={"Accept": "text/html"}, warmup_path=None, **fields
    )


def comptoir_share_file(bench: Bench, port: int) -> Launch:
    """`comptoir share` of the large file: curl gets the file from the link.

    With `--count`, so every byte goes through comptoir's counting path (as it does for anyone
    who limits downloads or watches the progress lines), not granian's pathsend.
    """
    argv = _comptoir(port, "share", str(bench.root / LARGE_FILE), "--keep", "--token", TOKEN)
    argv += ["--count", "1000000"]
    return _link(argv, paths={"share": f"/{TOKEN}/"})


def comptoir_share_folder(bench: Bench, port: int) -> Launch:
    """`comptoir share` of the folder; its archive (a stored zip by default) at archive.zip."""
    argv = _comptoir(port, "share", str(bench.folder), "--keep", "--token", TOKEN)
    return _link(argv, paths={"zip": f"/{TOKEN}/archive.zip"})


def upload_dir(bench: Bench, name: str, port: int) -> Path:
    """An empty folder for one server's uploads."""
    directory = bench.workdir / f"uploads-{name}-{port}"
    directory.mkdir()
    return directory


def comptoir_receive(bench: Bench, port: int) -> Launch:
    """`comptoir receive` into a folder of its own; `curl -F file=@...` to the link."""
    directory = upload_dir(bench, "comptoir", port)
    argv = _comptoir(port, "receive", str(directory), "--token", TOKEN)
    return _link(argv, upload=UploadForm(f"/{TOKEN}/", "file", directory))


def on_get(launch: Launch) -> Launch:
    """A launch of the `echo` mode: ready, warmed up and loaded on httpbin's /get."""
    path = "/" + GET_FILE
    return replace(launch, ready_path=path, warmup_path=path, paths={"get": path})


def comptoir_echo(bench: Bench, port: int) -> Launch:
    """`comptoir echo` (HTTP only)."""
    return on_get(Launch(_comptoir(port, "echo")))


def comptoir_tcp_echo(bench: Bench, port: int) -> Launch:
    """`comptoir echo --tcp`, its default --max-connections; nothing loads its HTTP side."""
    tcp_port = free_port()
    # comptoir raises its own soft open-files limit up to the hard one; make room under it.
    raise_open_files_limit(bench.options.tcp_connections + 256)
    argv = _comptoir(port, "echo", "--tcp", str(tcp_port))
    return Launch(argv, ready_path="/get", warmup_path=None, tcp_port=tcp_port)


def comptoir_version(bench: Bench) -> str:
    """comptoir's and granian's versions as this interpreter imports them."""
    code = (
        "import importlib.metadata as m, comptoir; "
        "print(f'comptoir {comptoir.__version__}, granian {m.version(\"granian\")}')"
    )
    return _output([sys.executable, "-c", code])


def granian_floor(bench: Bench, port: int, loop: str = "uvloop") -> Launch:
    """floor_app.py on granian, configured as comptoir configures it (one worker, st, HTTP/1,
    the same event loop)."""
    argv = [sys.executable, "-m", "granian", "--interface", "asgi", "--no-ws", "--workers", "1"]
    argv += ["--runtime-mode", "st", "--http", "1", "--log-level", "error", "--loop", loop]
    argv += ["--working-dir", str(BENCH_DIR), "--host", HOST, "--port", str(port), "floor_app:app"]
    return Launch(argv, env={"FLOOR_ROOT": str(bench.root)})


def granian_floor_echo(bench: Bench, port: int, loop: str = "uvloop") -> Launch:
    """floor_app.py answering /get with a fixed body: the ceiling for `comptoir echo`."""
    return on_get(granian_floor(bench, port, loop))


def comptoir_on_loop(loop: str) -> dict[str, LaunchFn]:
    """comptoir's modes with `--loop LOOP`: the event loops compared (docs/decisions.md)."""

    def with_loop(launch_fn: LaunchFn) -> LaunchFn:
        def launch(bench: Bench, port: int) -> Launch:
            launched = launch_fn(bench, port)
            return replace(launched, argv=[*launched.argv, "--loop", loop])

        return launch

    modes = ("static", "echo", "receive", "ws")
    return {mode: with_loop(COMPTOIR_MODES[mode]) for mode in modes}


def granian_floor_ws(bench: Bench, port: int, loop: str = "uvloop") -> Launch:
    """floor_app.py echoing WebSocket messages: the ceiling for echo's /websocket/echo."""
    launch = granian_floor(bench, port, loop)
    argv = [a for a in launch.argv if a != "--no-ws"]
    return replace(launch, argv=argv, paths={"ws": "/websocket/echo"})


def floor_on_loop(loop: str) -> dict[str, LaunchFn]:
    """granian-floor's modes on another event loop."""
    return {
        "static": lambda bench, port: granian_floor(bench, port, loop),
        "echo": lambda bench, port: granian_floor_echo(bench, port, loop),
        "ws": lambda bench, port: granian_floor_ws(bench, port, loop),
    }


def require_rloop(bench: Bench) -> None:
    """rloop is no dependency of comptoir (it is experimental): measured only where installed."""
    if _output([sys.executable, "-c", "import rloop; print('ok')"]) != "ok":
        raise BenchError("rloop is not installed here: `uv pip install rloop` to measure it")


def caddy_static(bench: Bench, port: int) -> Launch:
    """Debian's Caddy file-server on one core (GOMAXPROCS=1, as each server gets one CPU)."""
    argv = ["caddy", "file-server", "--root", str(bench.root), "--listen", f"{HOST}:{port}"]
    return Launch(argv, env={"GOMAXPROCS": "1", "HOME": str(bench.workdir)})


NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 16384;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    include {mime_types};
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    # Don't make nginx close keep-alive connections every 1,000 requests (its default).
    keepalive_requests 1000000;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen {host}:{port};
        root {root};
        location = /{get} {{ default_type application/json; }}
    }}
}}
"""


def nginx_binary() -> str:
    """The nginx executable (Debian puts it in /usr/sbin, which may not be on PATH)."""
    return shutil.which("nginx") or "/usr/sbin/nginx"


def nginx_static(bench: Bench, port: int) -> Launch:
    """nginx in the foreground with a config of its own: 1 worker, sendfile, no access log."""
    conf_dir = bench.workdir / f"nginx-{port}"
    conf_dir.mkdir()
    mime = Path("/etc/nginx/mime.types")
    conf = conf_dir / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            dir=conf_dir,
            mime_types=mime if mime.exists() else conf_dir / "mime.types",
            host=HOST,
            port=port,
            root=bench.root,
            get=GET_FILE,
        )
    )
    if not mime.exists():
        (conf_dir / "mime.types").write_text("types { text/html html; }\n")
    return Launch([nginx_binary(), "-p", str(conf_dir), "-e", "stderr", "-c", str(conf)])


def nginx_share(bench: Bench, port: int) -> Launch:
    """nginx serving the large file that comptoir shares: the reference for `share`."""
    return replace(nginx_static(bench, port), warmup_path=None, paths={"share": "/" + LARGE_FILE})


def nginx_echo(bench: Bench, port: int) -> Launch:
    """nginx serving a static file with the body of /get (for scale: it reads no request)."""
    return on_get(nginx_static(bench, port))


def nginx_version(bench: Bench) -> str:
    """`nginx -v` (which prints on stderr)."""
    return _output([nginx_binary(), "-v"])


def http_server_static(bench: Bench, port: int) -> Launch:
    """The standard library's server, as people run it (threaded, HTTP/1.0: no keep-alive)."""
    argv = [sys.executable, "-m", "http.server", str(port), "--bind", HOST]
    return Launch([*argv, "--directory", str(bench.root)])


def peers_python(bench: Bench) -> Path:
    """The interpreter of the peers' venv."""
    return bench.options.peers_venv / "bin" / "python"


def install_peer(bench: Bench, requirement: str) -> None:
    """Install a pinned peer ("name==version") into the peers' venv with uv, unless it is there."""
    python = peers_python(bench)
    name, _, wanted = requirement.partition("==")
    name = name.partition("[")[0]  # "uvicorn[standard]": the package is uvicorn
    if python.exists() and _installed_version(python, name) == wanted:
        return
    uv = shutil.which("uv")
    if uv is None:
        raise BenchError(f"{name} needs uv to install it into a throwaway venv")
    print(f"installing {requirement} into {bench.options.peers_venv} ...", flush=True)
    # The same interpreter as comptoir's, so both run on the same Python.
    venv = str(bench.options.peers_venv)
    for argv in (
        [uv, "venv", "--quiet", "--allow-existing", "--python", sys.executable, venv],
        [uv, "pip", "install", "--quiet", "--python", str(python), requirement],
    ):
        if subprocess.run(argv, check=False).returncode != 0:
            raise BenchError(f"could not install {name}: {' '.join(argv)} failed")


def _copyparty(bench: Bench, port: int, volume: str) -> Launch:
    """copyparty with one volume at / (`-v DIR::PERMS`), its defaults otherwise (-j 1: one core)."""
    config_home = bench.workdir / f"copyparty-{port}"
    config_home.mkdir()
    argv = [str(peers_python(bench)), "-m", "copyparty", "-i", HOST, "-p", str(port)]
    return Launch(
        [*argv, "-v", volume, "-q", "--http-only", "--no-crt"],
        # copyparty keeps its state (sessions, salts) in $XDG_CONFIG_HOME/copyparty.
        env={"XDG_CONFIG_HOME": str(config_home)},
    )


def copyparty_static(bench: Bench, port: int) -> Launch:
    """copyparty serving the folder read-only."""
    return _copyparty(bench, port, f"{bench.root}::r")


def copyparty_receive(bench: Bench, port: int) -> Launch:
    """copyparty with a writable volume, taking its documented `curl -F act=bput -F f=@FILE`."""
    directory = upload_dir(bench, "copyparty", port)
    launch = _copyparty(bench, port, f"{directory}::rw")
    upload = UploadForm("/", "f", directory, extra=("act=bput",))
    return replace(launch, ready_path="/", warmup_path=None, upload=upload)


def copyparty_version(bench: Bench) -> str:
    """copyparty's version in the peers' venv."""
    return "copyparty " + _installed_version(peers_python(bench), "copyparty")


def uploadserver_receive(bench: Bench, port: int) -> Launch:
    """`python -m uploadserver PORT` (http.server plus POST /upload, field `files`)."""
    directory = upload_dir(bench, "uploadserver", port)
    argv = [str(peers_python(bench)), "-m", "uploadserver", str(port), "--bind", HOST]
    upload = UploadForm("/upload", "files", directory)
    return Launch(
        [*argv, "--directory", str(directory)], ready_path="/", warmup_path=None, upload=upload
    )


# --- the api peers ---------------------------------------------------------------------------
#
# Every api server gets the same paths (`Launch.paths`), in its own spelling:
#   id       one row, `{id}` a random key (wrk_random_id.lua)
#   filter   city=city7, sorted by score, 50 rows
#   first    the first 50 rows          deep     the 50 rows after key 900,000 (0.9 x rows)
#   facet    counts per city, with a page of 50 rows
#   export   the whole table as CSV (json-server has no CSV: none)


def deep_key(bench: Bench) -> int:
    """The key the deep page starts after: row 900,000 of 1,000,000."""
    return bench.api_data.rows * 9 // 10


def _api_launch(bench: Bench, argv: list[str], paths: dict[str, str], **fields: Any) -> Launch:
    """An api server, up once a row answers; warmed up on that row."""
    one = paths["id"].replace("{id}", "1")
    return Launch(argv, ready_path=one, warmup_path=one, paths=paths, **fields)


# How long reading the data takes in-process, without a server: comptoir's own reading
# (sites/api/tables.load_table), pandas' read_csv, JSON.parse in Node.
PARSE_COMPTOIR = """\
import json, sys, time
from pathlib import Path
t0 = time.perf_counter()
from comptoir.sites.api.tables import load_table
t1 = time.perf_counter()
load_table("items", Path(sys.argv[1]))
print(json.dumps({"import_s": t1 - t0, "parse_s": time.perf_counter() - t1}))
"""
PARSE_PANDAS = """\
import json, sys, time
t0 = time.perf_counter()
import pandas
t1 = time.perf_counter()
pandas.read_csv(sys.argv[1])
print(json.dumps({"import_s": t1 - t0, "parse_s": time.perf_counter() - t1}))
"""
PARSE_JSON = """\
const t0 = process.hrtime.bigint();
JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
console.log(JSON.stringify({parse_s: Number(process.hrtime.bigint() - t0) / 1e9}));
"""


def comptoir_api(bench: Bench, port: int) -> Launch:
    """`comptoir api` of the two CSV files. The relation is declared: `category_id` is not
    found by name, as `categories` is no plural comptoir's rule makes of `category`."""
    data = bench.api_data
    argv = _comptoir(port, "api", str(data.items_csv), str(data.categories_csv))
    argv += ["--relation", "items.category_id=categories.id"]
    after = deep_key(bench)
    paths = {
        "id": "/api/items/{id}",
        "filter": f"/api/items?city={API_CITY}&_sort=score&_limit=50",
        "first": "/api/items?_limit=50",
        "deep": f"/api/items?_after={after}&_limit=50",
        "facet": "/api/items?_facet=city&_limit=50",
        "export": "/api/items.csv?_limit=all",
    }
    probe = [sys.executable, "-c", PARSE_COMPTOIR, str(data.items_csv)]
    return _api_launch(bench, argv, paths, parse_probe=probe)


def peers_bin(bench: Bench, name: str) -> Path:
    """A command installed in the peers' venv."""
    return bench.options.peers_venv / "bin" / name


def datasette_api(bench: Bench, port: int) -> Launch:
    """`datasette serve -i bench.db` (immutable: counts cached, no locking), rows as arrays of
    objects (`_shape=array`, comptoir's shape). Settings for an API: no facet suggestions (extra
    queries on every table answer, for the HTML page), the time limits raised so that no answer
    is cut short (1 s and 200 ms by default), no cap on a CSV export (100 MB by default)."""
    argv = [str(peers_bin(bench, "datasette")), "serve", "-i", str(bench.api_data.sqlite_db)]
    argv += ["-h", HOST, "-p", str(port)]
    for name, value in (
        ("suggest_facets", "off"),
        ("sql_time_limit_ms", "60000"),
        ("facet_time_limit_ms", "60000"),
        ("max_csv_mb", "0"),
    ):
        argv += ["--setting", name, value]
    after = deep_key(bench)
    table = "/bench/items"
    paths = {
        "id": table + "/{id}.json?_shape=array",
        "filter": f"{table}.json?city={API_CITY}&_sort=score&_size=50&_shape=array",
        "first": f"{table}.json?_size=50&_shape=array",
        "deep": f"{table}.json?_next={after}&_size=50&_shape=array",
        "facet": f"{table}.json?_facet=city&_size=50",
        "export": f"{table}.csv?_stream=on&_size=max",
    }
    return _api_launch(bench, argv, paths)


def json_server_api(bench: Bench, port: int) -> Launch:
    """json-server 0.17 on the same rows as JSON, read-only; no facets, no CSV."""
    db = bench.api_data.json_db
    argv = ["node", str(JSON_SERVER_BIN), "--host", HOST, "--port", str(port)]
    argv += ["--read-only", "--quiet", str(db)]
    after = deep_key(bench)
    paths = {
        "id": "/items/{id}",
        "filter": f"/items?city={API_CITY}&_sort=score&_limit=50",
        "first": "/items?_limit=50",
        "deep": f"/items?_start={after}&_limit=50",
    }
    probe = ["node", "-e", PARSE_JSON, str(db)]
    lacks = {"facet": "json-server has no facets", "export": "json-server has no CSV output"}
    return _api_launch(bench, argv, paths, parse_probe=probe, lacks=lacks)


def fastapi_api(bench: Bench, port: int) -> Launch:
    """fastapi_course.py on uvicorn, one worker, no access log (as comptoir's --quiet)."""
    argv = [str(peers_python(bench)), "-m", "uvicorn", "--app-dir", str(BENCH_DIR), FASTAPI_APP]
    argv += ["--host", HOST, "--port", str(port), "--no-access-log", "--log-level", "warning"]
    env = {
        "COURSE_DATA": str(BENCH_DIR.parent / "examples" / "assocapi"),
        "BENCH_TABLE": str(bench.api_data.items_csv),
    }
    after = deep_key(bench)
    paths = {
        "id": "/api/items/{id}",
        "filter": f"/api/items?city={API_CITY}&_sort=score&_limit=50",
        "first": "/api/items?_limit=50",
        "deep": f"/api/items?_after={after}&_limit=50",
        "facet": "/api/items?_facet=city&_limit=50",
        "export": "/api/items.csv",
    }
    probe = [str(peers_python(bench)), "-c", PARSE_PANDAS, str(bench.api_data.items_csv)]
    return _api_launch(bench, argv, paths, env=env, parse_probe=probe)


def prepare_datasette(bench: Bench) -> None:
    """Datasette and sqlite-utils in the peers' venv; the SQLite db made by sqlite-utils."""
    for requirement in DATASETTE:
        install_peer(bench, requirement)
    sqlite_db(bench.api_data, peers_python(bench))


def prepare_json_server(bench: Bench) -> None:
    """json-server from npm into bench/.peers-node (unless there); the rows as its db.json."""
    if not JSON_SERVER_BIN.exists():
        if shutil.which("npm") is None or shutil.which("node") is None:
            raise BenchError("json-server needs Node.js and npm (apt-get install nodejs npm)")
        print(f"installing {JSON_SERVER} into {NODE_PEERS} ...", flush=True)
        NODE_PEERS.mkdir(exist_ok=True)
        argv = ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(NODE_PEERS)]
        if subprocess.run([*argv, JSON_SERVER], check=False).returncode != 0:
            raise BenchError(f"could not install {JSON_SERVER}: npm install failed")
    json_db(bench.api_data)


def prepare_fastapi(bench: Bench) -> None:
    """FastAPI, uvicorn and pandas in the peers' venv."""
    for requirement in FASTAPI_PANDAS:
        install_peer(bench, requirement)


def json_server_version(bench: Bench) -> str:
    """json-server's version, from its package.json."""
    package = JSON_SERVER_BIN.parents[2] / "package.json"
    with contextlib.suppress(OSError, ValueError):
        return "json-server " + json.loads(package.read_text())["version"]
    return ""


def pypi_versions(*names: str) -> Callable[[Bench], str]:
    """The versions of peers installed in the peers' venv, as one line."""

    def version(bench: Bench) -> str:
        python = peers_python(bench)
        return ", ".join(f"{n} {_installed_version(python, n)}" for n in names)

    return version


# --- the chat scenarios' servers ----------------------------------------------------------------
#
# Each chat scenario starts its servers afresh (its own mode), so that one's memory figure is not
# another's: the fan-out's messages are not in the idle scenario's RSS.
CHAT_MODES = ("chat-fanout", "chat-idle", "chat-slow", "chat-recovery")


def chat_capacity(bench: Bench) -> int:
    """Connections a chat server is asked to hold at most: the largest scenario, and room."""
    o = bench.options
    return max(o.chat_clients, o.chat_idle, o.chat_slow_clients) + 512


def comptoir_chat(bench: Bench, port: int) -> Launch:
    """`comptoir chat` with its defaults — history (a file in the scratch folder), presence,
    --rate 20/s, --max-per-ip 20, the queues — but the capacity: --max-connections and
    --worker-connections fit the largest scenario (10,000 idle: 4,096 and 10,000 by default).
    The clients come from many loopback addresses, 20 each (chat_load.py), so --max-per-ip and
    --max-client-requests stay as they are. A chat's connection holds one descriptor, its
    socket (SiteKind.fds_per_connection): the open-files limit is raised to fit them all."""
    capacity = chat_capacity(bench)
    soft, _ = raise_open_files_limit(capacity + 256)
    if soft < capacity + 256:
        # comptoir's own rule (openfiles.connections_within): 128 kept, 1 per connection.
        print(
            f"\n  open-files limit {soft:,} (not raised: no CAP_SYS_RESOURCE): comptoir's worker"
            f" will hold at most {soft - 128:,} connections, not {capacity:,}",
            end="",
            flush=True,
        )
    history = bench.workdir / f"chat-{port}.sqlite3"
    argv = _comptoir(port, "chat", "--history", str(history))
    argv += ["--max-connections", str(capacity), "--worker-connections", str(capacity)]
    return Launch(
        argv,
        ready_path="/api/rooms",
        warmup_path=None,
        paths={"chat": "/ws"},
        subprotocol=CHAT_SUBPROTOCOL,
    )


def websockets_peer(bench: Bench, port: int) -> Launch:
    """chat_peer.py: `websockets.broadcast` of every text message to every client."""
    raise_open_files_limit(chat_capacity(bench) + 256)
    argv = [str(peers_python(bench)), str(CHAT_PEER), "--host", HOST, "--port", str(port)]
    return Launch(argv, ready_path="/healthz", warmup_path=None, paths={"chat": "/"})


def prepare_chat(bench: Bench) -> None:
    """The `websockets` library in the peers' venv (for chat_load.py and chat_peer.py), with
    the uvloop comptoir's venv has, so that the peer and the load run on comptoir's loop."""
    install_peer(bench, WEBSOCKETS)
    uvloop = _installed_version(Path(sys.executable), "uvloop")
    if uvloop:
        install_peer(bench, f"uvloop=={uvloop}")


def prepare_comptoir(bench: Bench) -> None:
    """What comptoir's selected modes need made once: the api's table cache, the chat's client."""
    modes = modes_of(bench.options.scenarios)
    if "api" in modes:
        prepare_comptoir_api(bench)
    if modes & set(CHAT_MODES):
        prepare_chat(bench)


COMPTOIR_MODES: dict[str, LaunchFn] = {
    "static": comptoir_static,
    "share": comptoir_share_file,
    "zip": comptoir_share_folder,
    "receive": comptoir_receive,
    "echo": comptoir_echo,
    "tcp": comptoir_tcp_echo,
    "ws": lambda bench, port: replace(comptoir_echo(bench, port), paths={"ws": "/websocket/echo"}),
    "api": comptoir_api,
    **dict.fromkeys(CHAT_MODES, comptoir_chat),
}
# Servers run when --servers is not given; the others are for comparisons asked by name.
DEFAULT_SERVERS = (
    "nginx",
    "comptoir",
    "granian-floor",
    "caddy",
    "copyparty",
    "http.server",
    "uploadserver",
    # Only in the api scenarios (not run by default: --scenarios api).
    "datasette",
    "json-server",
    "fastapi-pandas",
    # Only in the chat scenarios (not run by default: --scenarios chat).
    "websockets-peer",
)

SERVERS: dict[str, ServerSpec] = {
    spec.name: spec
    for spec in (
        # nginx first: it is the reference every ratio is taken against.
        ServerSpec(
            "nginx",
            {"static": nginx_static, "share": nginx_share, "echo": nginx_echo},
            version=nginx_version,
        ),
        ServerSpec(
            "comptoir",
            COMPTOIR_MODES,
            prepare=prepare_comptoir,
            version=comptoir_version,
        ),
        # Not a peer: the engine's ceiling for any ASGI app (floor_app.py), for reading the ratios.
        ServerSpec(
            "granian-floor",
            {"static": granian_floor, "echo": granian_floor_echo, "ws": granian_floor_ws},
            version=lambda bench: "granian " + _installed_version(Path(sys.executable), "granian"),
        ),
        ServerSpec(
            "caddy",
            {"static": caddy_static},
            version=lambda bench: _output(["caddy", "version"]).split(" ")[0],
        ),
        # The event loops, side by side (not run by default: --servers names them).
        ServerSpec("comptoir-asyncio", comptoir_on_loop("asyncio"), version=comptoir_version),
        ServerSpec("granian-floor-asyncio", floor_on_loop("asyncio")),
        ServerSpec(
            "comptoir-rloop",
            comptoir_on_loop("rloop"),
            prepare=require_rloop,
            version=comptoir_version,
        ),
        ServerSpec("granian-floor-rloop", floor_on_loop("rloop"), prepare=require_rloop),
        ServerSpec(
            "copyparty",
            {"static": copyparty_static, "receive": copyparty_receive},
            prepare=lambda bench: install_peer(bench, COPYPARTY),
            version=copyparty_version,
        ),
        ServerSpec(
            "http.server",
            {"static": http_server_static},
            version=lambda bench: f"Python {platform.python_version()}",
        ),
        ServerSpec(
            "uploadserver",
            {"receive": uploadserver_receive},
            prepare=lambda bench: install_peer(bench, UPLOADSERVER),
            version=lambda bench: (
                "uploadserver " + _installed_version(peers_python(bench), "uploadserver")
            ),
        ),
        ServerSpec(
            "datasette",
            {"api": datasette_api},
            prepare=prepare_datasette,
            version=pypi_versions("datasette", "sqlite-utils"),
        ),
        ServerSpec(
            "json-server",
            {"api": json_server_api},
            prepare=prepare_json_server,
            version=lambda bench: f"{json_server_version(bench)}, Node {_output(['node', '-v'])}",
        ),
        ServerSpec(
            "fastapi-pandas",
            {"api": fastapi_api},
            prepare=prepare_fastapi,
            version=pypi_versions("fastapi", "uvicorn", "pandas"),
        ),
        ServerSpec(
            "websockets-peer",
            # No history: nothing to recover, so no chat-recovery.
            dict.fromkeys(CHAT_MODES[:3], websockets_peer),
            prepare=prepare_chat,
            version=pypi_versions("websockets", "uvloop"),
        ),
    )
}


@contextlib.contextmanager
def running(bench: Bench, spec: ServerSpec, mode: str) -> Iterator[Running]:
    """Start a server in `mode`, wait until it answers, and always stop it (its whole group)."""
    port = free_port()
    launch = spec.modes[mode](bench, port)
    log = bench.workdir / f"{spec.name}-{mode}-{port}.log"
    with BackgroundLoad() as background, open(log, "wb") as out:
        t0 = time.monotonic()
        proc = subprocess.Popen(
            _pinned(bench.options.server_cpus, launch.argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **launch.env},
            # Its own process group: stopping it reaches every worker it forked.
            start_new_session=True,
        )
        server = Running(spec.name, port, proc, log, launch)
        try:
            with MemorySampler(proc.pid, interval=0.05) as mem:
                _wait_ready(server)
                server.ready_s = time.monotonic() - t0
        except BaseException:
            _stop(proc)
            raise
    server.startup_peak_rss_kb = mem.peak_rss_kb
    server.startup_peak_pss_kb = mem.peak_pss_kb
    server.startup_peak_process_rss_kb = mem.peak_process_rss_kb
    server.startup_other_cpu = background.share
    try:
        yield server
    finally:
        _stop(proc)


def _wait_ready(server: Running) -> None:
    """Poll the ready path until it answers 200; once connected, wait for the answer as long as
    the startup may take (a server may accept before it can answer: comptoir's socket is bound
    before its worker has read the data)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise BenchError(f"{server.name} exited at startup:\n{_tail(server.log)}")
        conn = http.client.HTTPConnection(HOST, server.port, timeout=2)
        try:
            conn.connect()
            conn.sock.settimeout(max(0.1, deadline - time.monotonic()))
            conn.request("GET", server.launch.ready_path, headers=server.launch.ready_headers)
            response = conn.getresponse()
            response.read()
            if response.status == 200:
                return
        except OSError:
            pass  # not listening yet
        finally:
            conn.close()
        time.sleep(0.02)
    raise BenchError(f"{server.name} did not answer within {STARTUP_TIMEOUT:.0f} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(wait)
            # The leader is gone; make sure no worker of its group outlives it.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            return
        except subprocess.TimeoutExpired:
            continue


def _tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# --- load generators -------------------------------------------------------------------------


def wrk(
    bench: Bench,
    url: str,
    *,
    connections: int,
    duration: int,
    timeout: str = WRK_TIMEOUT,
    script: Path = WRK_REPORT,
    script_args: Sequence[str] = (),
) -> dict[str, Any]:
    """Run wrk (2 threads, or 1 for 1 connection; keep-alive) and return its summary (see
    wrk_report.lua; another script may choose the requests, with `script_args`)."""
    threads = min(2, connections)
    load = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", timeout]
    argv = bench.client([*load, "-s", str(script), url])
    if script_args:
        argv += ["--", *script_args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 90, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("JSON "):
            summary: dict[str, Any] = json.loads(line[5:])
            summary["requests_per_s"] = summary["requests"] / (summary["duration_us"] / 1e6)
            summary["error_total"] = sum(summary["errors"].values())
            return summary
    said = (done.stderr or done.stdout).strip().splitlines()[:1]
    raise BenchError(f"wrk gave no summary (exit {done.returncode}): {' '.join(said)}")


def _curl(bench: Bench, args: Sequence[str], url: str) -> dict[str, Any]:
    """Run curl once, the answer into /dev/null: status, bytes each way, seconds, Content-Length."""
    quiet = ["curl", "--silent", "--show-error", "--noproxy", "*", "--max-time", "300"]
    out = (
        "%{http_code} %{size_download} %{size_upload} %{time_total} length=%header{content-length}"
    )
    argv = bench.client([*quiet, "--write-out", out, "--output", "/dev/null", *args, url])
    done = subprocess.run(argv, capture_output=True, text=True, timeout=330, check=False)
    fields = done.stdout.split()
    if len(fields) != 5:
        fields = ["0", "0", "0", "0", "length="]
    code, down, up, seconds, length = fields
    result: dict[str, Any] = {
        "status": int(code),
        "bytes": int(float(down)),
        "bytes_up": int(float(up)),
        "seconds": float(seconds),
        "content_length": int(length[7:]) if length[7:].isdigit() else None,
        "curl_exit": done.returncode,
    }
    if done.returncode != 0:
        result["curl_error"] = done.stderr.strip()
    return result


def curl_download(bench: Bench, url: str) -> dict[str, Any]:
    """Download a URL once with curl (its default `Accept: */*`): status, bytes and seconds."""
    return _curl(bench, [], url)


def curl_upload(bench: Bench, url: str, form: UploadForm, path: Path) -> dict[str, Any]:
    """Upload a file once with `curl -F FIELD=@PATH` (multipart/form-data)."""
    # No `Expect: 100-continue`: a server that ignores it (HTTP/1.0 ones) would cost curl 1 s.
    args = ["--header", "Expect:"]
    for extra in form.extra:  # before the file: copyparty reads `act` first
        args += ["--form", extra]
    return _curl(bench, [*args, "--form", f"{form.field}=@{path}"], url)


# --- scenarios -------------------------------------------------------------------------------


def _wrk_measurement(
    bench: Bench, server: Running, connections: int, path: str = "/" + SMALL_FILE
) -> Measurement:
    """wrk on a path (the 1 KB file) with keep-alive connections, memory sampled meanwhile."""
    rss_before, pss_before = tree_memory_kb(server.proc.pid)
    with MemorySampler(server.proc.pid) as mem:
        summary = wrk(
            bench,
            server.url(path),
            connections=connections,
            duration=bench.options.duration,
        )
    summary["rss_before_kb"] = rss_before
    summary["pss_before_kb"] = pss_before
    return Measurement(
        value=summary["requests_per_s"],
        errors=summary["error_total"],
        peak_rss_kb=mem.peak_rss_kb,
        peak_pss_kb=mem.peak_pss_kb,
        detail=summary,
    )


def small_file(bench: Bench, server: Running) -> Measurement:
    """1 KB file, keep-alive, wrk -t2 -c32: requests per second."""
    return _wrk_measurement(bench, server, bench.options.small_connections)


def many_connections(bench: Bench, server: Running) -> Measurement:
    """1 KB file over 1,000 concurrent keep-alive connections: errors, server memory, req/s."""
    return _wrk_measurement(bench, server, bench.options.connections)


def _transfer_measurement(runs: list[dict[str, Any]], mem: MemorySampler) -> Measurement:
    """Median GB/s (10^9 bytes per second) of the runs without a `problem`; the others are
    errors, and when none succeeded the first problem is the reason given."""
    good = [r for r in runs if r["problem"] is None]
    speeds = [r["payload"] / r["seconds"] / 1e9 for r in good]
    detail: dict[str, Any] = {"runs": runs, "gb_per_s": speeds, "best": max(speeds, default=None)}
    if not good:
        detail["error"] = f"no transfer succeeded: {runs[0]['problem'] if runs else 'none run'}"
    return Measurement(
        value=statistics.median(speeds) if speeds else None,
        errors=len(runs) - len(good),
        peak_rss_kb=mem.peak_rss_kb,
        peak_pss_kb=mem.peak_pss_kb,
        detail=detail,
    )


def _curl_problem(run: dict[str, Any], statuses: Sequence[int]) -> str | None:
    """Why a curl run does not count (curl failed, an unexpected status), or None."""
    if run["curl_exit"] != 0:
        return f"curl exit {run['curl_exit']}: {run.get('curl_error', '')}"
    if run["status"] not in statuses:
        return f"HTTP status {run['status']}"
    if run["seconds"] <= 0:
        return "no time measured"
    return None


def _downloads(
    bench: Bench, server: Running, path: str, expected: int | None, minimum: int = 0
) -> Measurement:
    """`path` downloaded with curl --large-runs times. Each must be a 200 of `expected` bytes
    (when given, else at least `minimum`) and of its own Content-Length (when sent)."""
    runs = []
    with MemorySampler(server.proc.pid) as mem:
        for _ in range(bench.options.large_runs):
            run = curl_download(bench, server.url(path))
            run["payload"] = run["bytes"]
            run["problem"] = _curl_problem(run, (200,))
            if run["problem"] is None and expected is not None and run["bytes"] != expected:
                run["problem"] = f"{run['bytes']} bytes received, {expected} expected"
            if run["problem"] is None and run["bytes"] < minimum:
                run["problem"] = f"{run['bytes']} bytes received, at least {minimum} expected"
            length = run["content_length"]
            if run["problem"] is None and length is not None and run["bytes"] != length:
                run["problem"] = f"{run['bytes']} bytes received, Content-Length {length}"
            runs.append(run)
    return _transfer_measurement(runs, mem)


def large_file(bench: Bench, server: Running) -> Measurement:
    """The large file downloaded with curl several times: median GB/s."""
    return _downloads(bench, server, "/" + LARGE_FILE, large_bytes(bench))


def share_file(bench: Bench, server: Running) -> Measurement:
    """The large file through a share link (nginx: its plain URL), as `large`: median GB/s."""
    return _downloads(bench, server, server.path("share"), large_bytes(bench))


def zip_folder(bench: Bench, server: Running) -> Measurement:
    """The shared folder's archive downloaded with curl: median GB/s and peak memory; then its
    central directory is read back (by ranges) and must list every file, stored, sizes exact."""
    content = sum(p.stat().st_size for p in bench.folder.rglob("*") if p.is_file())
    m = _downloads(bench, server, server.path("zip"), None, minimum=content)
    lengths = [r["bytes"] for r in m.detail["runs"] if r["problem"] is None]
    if not lengths:
        return m
    try:
        check = check_zip(server, server.path("zip"), lengths[0], bench.folder)
    except (OSError, http.client.HTTPException, zipfile.BadZipFile) as exc:
        check = {"ok": False, "problem": f"could not read the archive back: {exc}"}
    m.detail["archive"] = check
    if not check["ok"]:
        m.value = None
        m.detail["error"] = f"archive wrong: {check['problem']}"
    return m


class RangeReader(io.RawIOBase):
    """A file on a server, read with Range requests: enough for zipfile to read the central
    directory of a large archive without downloading it."""

    def __init__(self, server: Running, path: str, size: int) -> None:
        super().__init__()
        self._conn = http.client.HTTPConnection(HOST, server.port, timeout=30)
        self._path = path
        self._size = size
        self._pos = 0
        self.requests = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self._size - self._pos)
        if n <= 0:
            return 0
        span = f"bytes={self._pos}-{self._pos + n - 1}"
        self._conn.request("GET", self._path, headers={"Range": span})
        response = self._conn.getresponse()
        data = response.read()
        self.requests += 1
        if response.status != 206 or len(data) != n:
            raise OSError(f"Range {span} answered {response.status} with {len(data)} bytes")
        buffer[:n] = data
        self._pos += n
        return n

    def close(self) -> None:
        self._conn.close()
        super().close()


def check_zip(server: Running, path: str, size: int, folder: Path) -> dict[str, Any]:
    """Whether the archive lists exactly the folder's files, with their sizes, all stored."""
    with RangeReader(server, path, size) as remote, zipfile.ZipFile(remote) as archive:
        infos = archive.infolist()
        requests = remote.requests
    files = {i.filename: i for i in infos if not i.is_dir()}
    # Names may sit under the folder's own name (comptoir: "folder/...").
    prefix = folder.name + "/"
    if files and all(name.startswith(prefix) for name in files):
        files = {name[len(prefix) :]: i for name, i in files.items()}
    expected = {
        p.relative_to(folder).as_posix(): p.stat().st_size for p in folder.rglob("*") if p.is_file()
    }
    listed = {name: i.file_size for name, i in files.items()}
    compressed = [name for name, i in files.items() if i.compress_type != zipfile.ZIP_STORED]
    problem = None
    if listed != expected:
        missing = sorted(set(expected) - set(listed))[:3]
        extra = sorted(set(listed) - set(expected))[:3]
        wrong = sorted(n for n in set(listed) & set(expected) if listed[n] != expected[n])[:3]
        problem = f"missing {missing}, unexpected {extra}, wrong sizes {wrong}"
    elif compressed:
        problem = f"{len(compressed)} entries compressed, e.g. {compressed[0]}"
    return {
        "ok": problem is None,
        "problem": problem,
        "entries": len(infos),
        "files": len(files),
        "range_requests": requests,
    }


def upload(bench: Bench, server: Running) -> Measurement:
    """The large file uploaded with `curl -F` --upload-runs times: median GB/s (file bytes over
    curl's total time) and peak memory. Each upload must be answered 2xx and leave exactly one
    file of the right size in the server's folder, which is then emptied for the next run."""
    form = server.launch.upload
    if form is None:
        raise BenchError(f"{server.name} was started without an upload form")
    source = bench.root / LARGE_FILE
    size = source.stat().st_size
    runs = []
    with MemorySampler(server.proc.pid) as mem:
        for _ in range(bench.options.upload_runs):
            run = curl_upload(bench, server.url(form.path), form, source)
            run["payload"] = size
            saved = received_files(form.directory)
            run["saved"] = saved
            run["problem"] = _curl_problem(run, (200, 201, 204))
            if run["problem"] is None and list(saved.values()) != [size]:
                run["problem"] = f"saved {saved}, expected one file of {size} bytes"
            empty_folder(form.directory)
            runs.append(run)
    return _transfer_measurement(runs, mem)


def received_files(directory: Path) -> dict[str, int]:
    """The files a server saved (name: size), leaving out hidden ones (its state, temporary
    files)."""
    return {
        p.relative_to(directory).as_posix(): p.stat().st_size
        for p in sorted(directory.rglob("*"))
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(directory).parts)
    }


def empty_folder(directory: Path) -> None:
    """Remove what was uploaded into a folder (hidden entries, a server's state, stay)."""
    for entry in directory.iterdir():
        if entry.name.startswith("."):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def echo_get(bench: Bench, server: Running) -> Measurement:
    """httpbin's /get (a fixed body for nginx and granian-floor), wrk -c32: requests per second."""
    return _wrk_measurement(bench, server, bench.options.small_connections, server.path("get"))


def ws_echo(bench: Bench, server: Running) -> Measurement:
    """WebSocket echo: 32 connections each sending 32-byte messages one after the other
    (ws_echo_client.py, the `websockets` library, pinned like wrk): messages echoed per second."""
    install_peer(bench, WEBSOCKETS)
    url = f"ws://{HOST}:{server.port}{server.path('ws')}"
    client = [str(peers_python(bench)), str(WS_CLIENT), "--url", url]
    client += ["--connections", str(bench.options.small_connections)]
    client += ["--duration", str(bench.options.duration)]
    with MemorySampler(server.proc.pid) as mem:
        done = subprocess.run(
            bench.client(client),
            capture_output=True,
            text=True,
            timeout=bench.options.duration + 60,
            check=False,
        )
    try:
        result = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise BenchError(f"WebSocket client failed: {done.stderr.strip()[-300:]}") from None
    return Measurement(
        value=result["messages_per_s"],
        errors=int(result["errors"]),
        peak_rss_kb=mem.peak_rss_kb,
        peak_pss_kb=mem.peak_pss_kb,
        detail=result,
    )


def tcp_echo(bench: Bench, server: Running) -> Measurement:
    """--tcp-connections TCP echo connections held at once (tcp_echo_client.py, pinned like wrk):
    a line echoed on each, all held --tcp-hold seconds, a second line on each. The value is the
    number that did both round trips; the server's sockets are counted while all are held."""
    port = server.launch.tcp_port
    if port is None:
        raise BenchError(f"{server.name} was started without a TCP echo port")
    n = bench.options.tcp_connections
    client = [sys.executable, str(TCP_CLIENT), "--host", HOST, "--port", str(port)]
    client += ["--connections", str(n), "--hold", str(bench.options.tcp_hold)]
    events: dict[str, dict[str, Any]] = {}
    sockets_before = tree_sockets(server.proc.pid)
    with MemorySampler(server.proc.pid) as mem:
        proc = subprocess.Popen(
            bench.client(client), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        # The client bounds each step; this bounds the whole, whatever happens.
        killer = threading.Timer(120 + bench.options.tcp_hold, proc.kill)
        killer.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                with contextlib.suppress(ValueError):
                    event = json.loads(line)
                    events[event["event"]] = event
                    if event["event"] == "holding":
                        event["server_sockets"] = tree_sockets(server.proc.pid)
                        event["server_rss_kb"] = tree_memory(server.proc.pid, pss=False)[0]
            stderr = proc.stderr.read() if proc.stderr else ""
            proc.wait()
        finally:
            killer.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    done = events.get("done")
    if done is None:
        reason = events.get("error", {}).get("reason") or stderr.strip()[-300:]
        raise BenchError(f"TCP client failed (exit {proc.returncode}): {reason}")
    detail = {**done, "holding": events.get("holding"), "server_sockets_before": sockets_before}
    return Measurement(
        value=done["ok"],
        errors=n - done["ok"],
        peak_rss_kb=mem.peak_rss_kb,
        peak_pss_kb=mem.peak_pss_kb,
        detail=detail,
    )


# --- api scenarios -----------------------------------------------------------------------------


def _get_json(server: Running, path: str) -> Any:
    """One GET of a path: its JSON body (BenchError unless a 200 with JSON)."""
    conn = http.client.HTTPConnection(HOST, server.port, timeout=API_ANSWER_TIMEOUT)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    if response.status != 200:
        raise BenchError(f"GET {path}: HTTP {response.status}: {body[:200]!r}")
    try:
        return json.loads(body)
    except ValueError:
        raise BenchError(f"GET {path}: not JSON: {body[:200]!r}") from None


def _rows(body: Any) -> list[dict[str, Any]]:
    """The rows of an answer: an array of objects, one object, or {"rows": [...]} (objects, or
    arrays next to "columns" as Datasette's default shape)."""
    if isinstance(body, dict) and "rows" in body:
        rows = body["rows"]
        if rows and isinstance(rows[0], list):
            return [dict(zip(body["columns"], r, strict=True)) for r in rows]
        return list(rows)
    return list(body) if isinstance(body, list) else [body]


def _facet_counts(body: Any, column: str) -> dict[Any, int]:
    """Value → count of a facet: comptoir's and FastAPI's `facets`, Datasette's `facet_results`."""
    if not isinstance(body, dict):
        return {}
    if "facet_results" in body:
        results = body["facet_results"].get(column, {}).get("results", [])
    else:
        results = body.get("facets", {}).get(column, [])
    return {r["value"]: r["count"] for r in results}


_expected: dict[Path, dict[str, Any]] = {}


def expected_answers(data: Dataset) -> dict[str, Any]:
    """What the api scenarios must answer, from the CSV itself: the filtered page's ids (score
    order, ties in key order, as every server sorts stably or by key) and the city counts."""
    if data.items_csv not in _expected:
        matching: list[tuple[int, int]] = []
        cities: dict[str, int] = {}
        with open(data.items_csv, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader)
            at_id, at_city, at_score = (header.index(c) for c in ("id", "city", "score"))
            for row in reader:
                city = row[at_city]
                cities[city] = cities.get(city, 0) + 1
                if city == API_CITY:
                    matching.append((int(row[at_score]), int(row[at_id])))
        matching.sort()
        _expected[data.items_csv] = {
            "filter": [key for _, key in matching[:50]],
            "facet": cities,
        }
    return _expected[data.items_csv]


def check_api_answer(bench: Bench, server: Running, name: str) -> dict[str, Any]:
    """One answer of a scenario's path checked against the data (the right rows, in the right
    order, the right counts): a server answering something else must not look fast."""
    data = bench.api_data
    path = server.path(name)
    if name == "id":
        key = data.rows // 2 + 7
        path = path.replace("{id}", str(key))
    body = _get_json(server, path)
    rows = _rows(body)
    ids = [r.get("id") for r in rows]
    after = deep_key(bench)
    wanted: Any = {
        "id": [data.rows // 2 + 7],
        "filter": expected_answers(data)["filter"],
        "first": list(range(1, 51)),
        "deep": list(range(after + 1, after + 51)),
    }.get(name)
    if name == "facet":
        got, wanted = _facet_counts(body, "city"), expected_answers(data)["facet"]
        if got != wanted:
            raise BenchError(f"GET {path}: facet counts {got}, expected {wanted}")
        return {"path": path, "facet_values": len(got)}
    if ids != wanted:
        raise BenchError(f"GET {path}: ids {ids[:5]}..., expected {wanted[:5]}...")
    if name == "filter" and any(r.get("city") != API_CITY for r in rows):
        raise BenchError(f"GET {path}: a row of another city")
    return {"path": path, "rows": len(rows)}


def _api_wrk(
    bench: Bench, server: Running, name: str, connections: int
) -> tuple[dict[str, Any], MemorySampler]:
    """A scenario's path checked once, then loaded with wrk (`id`: a random key each request)."""
    checked = check_api_answer(bench, server, name)
    path = server.path(name)
    load: dict[str, Any] = {"connections": connections, "duration": bench.options.duration}
    load["timeout"] = API_WRK_TIMEOUT
    with MemorySampler(server.proc.pid) as mem:
        if name == "id":
            args = (path, str(bench.api_data.rows))
            summary = wrk(bench, server.url("/"), **load, script=WRK_RANDOM_ID, script_args=args)
        else:
            summary = wrk(bench, server.url(path), **load)
    summary["checked"] = checked
    summary["peak_process_rss_kb"] = mem.peak_process_rss_kb
    if summary["requests"] == 0:
        raise BenchError(f"no answer within {bench.options.duration} s")
    return summary, mem


def _api_rate(bench: Bench, server: Running, name: str, connections: int) -> Measurement:
    summary, mem = _api_wrk(bench, server, name, connections)
    return Measurement(
        value=summary["requests_per_s"],
        errors=summary["error_total"],
        peak_rss_kb=mem.peak_rss_kb,
        peak_pss_kb=mem.peak_pss_kb,
        detail=summary,
    )


def _api_latency(
    bench: Bench, server: Running, name: str, connections: int, percentile: str
) -> Measurement:
    summary, mem = _api_wrk(bench, server, name, connections)
    return Measurement(
        value=summary["latency_us"][percentile] / 1000,
        errors=summary["error_total"],
        peak_rss_kb=mem.peak_rss_kb,
        peak_pss_kb=mem.peak_pss_kb,
        detail=summary,
    )


def api_ready(bench: Bench, server: Running) -> Measurement:
    """From the server's command to its first 200 (a row), peak memory meanwhile; then, for
    servers that read a file, how long reading it takes in-process (`Launch.parse_probe`,
    pinned like the server): the share of the start that is parsing."""
    detail: dict[str, Any] = {
        "ready_s": server.ready_s,
        "startup_peak_process_rss_kb": server.startup_peak_process_rss_kb,
        "peak_process_rss_kb": server.startup_peak_process_rss_kb,
        "csv_bytes": bench.api_data.items_csv.stat().st_size,
    }
    detail["rss_after_start_kb"], _, detail["process_rss_after_start_kb"] = tree_memory(
        server.proc.pid
    )
    probe = server.launch.parse_probe
    if probe is not None:
        argv = _pinned(bench.options.server_cpus, probe)
        done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
        try:
            detail.update(json.loads(done.stdout.strip().splitlines()[-1]))
        except (IndexError, ValueError):
            detail["parse_error"] = done.stderr.strip()[-300:]
    return Measurement(
        value=server.ready_s,
        peak_rss_kb=server.startup_peak_rss_kb,
        peak_pss_kb=server.startup_peak_pss_kb,
        background_cpu=server.startup_other_cpu,
        detail=detail,
    )


def api_by_id(bench: Bench, server: Running) -> Measurement:
    """One row by a random key (1..rows), 32 connections: requests per second."""
    return _api_rate(bench, server, "id", API_ID_CONNECTIONS)


def api_filter(bench: Bench, server: Running) -> Measurement:
    """city=city7 (1 row in 20), sorted by score, 50 rows, 8 connections: p99 latency in ms."""
    return _api_latency(bench, server, "filter", API_PAGE_CONNECTIONS, "p99")


def api_first_page(bench: Bench, server: Running) -> Measurement:
    """The first 50 rows, 8 connections: requests per second."""
    return _api_rate(bench, server, "first", API_PAGE_CONNECTIONS)


def api_deep_page(bench: Bench, server: Running) -> Measurement:
    """The 50 rows after key 900,000 (keyset where the server has it), 8 connections: req/s."""
    return _api_rate(bench, server, "deep", API_PAGE_CONNECTIONS)


def api_facet(bench: Bench, server: Running) -> Measurement:
    """Counts per city (20 values) with a page of 50 rows, one client: median latency in ms."""
    return _api_latency(bench, server, "facet", 1, "p50")


def api_export(bench: Bench, server: Running) -> Measurement:
    """The whole table as CSV with curl, --api-runs times: median MB/s (10^6 bytes/s); memory
    sampled meanwhile, its growth over the memory before. A transfer still going after
    API_EXPORT_SECONDS is cut and measured over what arrived (`cut` in its run)."""
    minimum = bench.api_data.items_csv.stat().st_size * 9 // 10
    rss_before, _, process_before = tree_memory(server.proc.pid)
    runs = []
    with MemorySampler(server.proc.pid) as mem:
        for _ in range(bench.options.api_runs):
            run = _curl(
                bench, ["--max-time", str(API_EXPORT_SECONDS)], server.url(server.path("export"))
            )
            run["payload"] = run["bytes"]
            run["cut"] = run["curl_exit"] == 28 and run["status"] == 200 and run["bytes"] > 0
            if run["cut"]:
                run["curl_exit"] = 0  # measured over what arrived
            run["problem"] = _curl_problem(run, (200,))
            if run["problem"] is None and not run["cut"] and run["bytes"] < minimum:
                run["problem"] = f"{run['bytes']} bytes received, at least {minimum} expected"
            runs.append(run)
    m = _transfer_measurement(runs, mem)
    if m.value is not None:
        m.value *= 1000  # GB/s → MB/s
    m.detail["rss_before_kb"] = rss_before
    m.detail["rss_growth_kb"] = mem.peak_rss_kb - rss_before
    m.detail["process_rss_before_kb"] = process_before
    m.detail["peak_process_rss_kb"] = mem.peak_process_rss_kb
    m.detail["bytes"] = max((r["bytes"] for r in runs), default=0)
    return m


# --- chat scenarios ----------------------------------------------------------------------------


def _chat_load(
    bench: Bench,
    server: Running,
    scenario: str,
    args: Sequence[str],
    timeout: float,
    on_event: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[dict[str, Any], MemorySampler]:
    """Run chat_load.py (pinned like wrk) against the server: its `done` event, with every
    event before it under "events" (each with the server's RSS when it came), and the memory
    sampler of the whole run."""
    url = f"ws://{HOST}:{server.port}{server.path('chat')}"
    argv = [str(peers_python(bench)), str(CHAT_LOAD), scenario, "--url", url, *args]
    if server.launch.subprotocol:
        argv += ["--subprotocol", server.launch.subprotocol]
    # Connecting, and what it makes (comptoir's presence), each within --chat-connect-max.
    argv += ["--connect-max", str(bench.options.chat_connect_max)]
    argv += ["--settle-max", str(bench.options.chat_connect_max)]
    events: list[dict[str, Any]] = []
    done: dict[str, Any] | None = None
    with MemorySampler(server.proc.pid) as mem:
        proc = subprocess.Popen(
            bench.client(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        # chat_load bounds each wait; this bounds the whole, whatever happens.
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                with contextlib.suppress(ValueError):
                    event = json.loads(line)
                    event["server_rss_kb"] = tree_memory(server.proc.pid, pss=False)[0]
                    if on_event is not None:
                        on_event(event)
                    if event["event"] == "done":
                        done = event
                    else:
                        events.append(event)
                        _chat_progress(event)
            stderr = proc.stderr.read() if proc.stderr else ""
            proc.wait()
        finally:
            killer.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    if done is None:
        said = next((e["reason"] for e in events if e["event"] == "error"), stderr.strip()[-300:])
        raise BenchError(f"chat client failed (exit {proc.returncode}): {said}")
    done["events"] = events
    return done, mem


def _chat_progress(event: dict[str, Any]) -> None:
    """A line of the progress output for a step of the fan-out or the slow consumer."""
    if event["event"] != "step":
        return
    p99 = event["p99_ms"]
    print(
        f"\n    {event.get('name', '')} {event['rate']:g} msg/s:"
        f" {event['deliveries_per_s']:,.0f} deliveries/s,"
        f" p99 {'-' if p99 is None else f'{p99:.1f}'} ms, {event['lost']} lost,"
        f" client CPU {event['client_cpu']:.0%}",
        end="",
        flush=True,
    )


def _chat_measurement(
    value: float | None, errors: int, mem: MemorySampler, detail: dict[str, Any]
) -> Measurement:
    return Measurement(
        value=value,
        errors=errors,
        peak_rss_kb=mem.peak_rss_kb,
        peak_pss_kb=mem.peak_pss_kb,
        detail=detail,
    )


def chat_fanout(bench: Bench, server: Running) -> Measurement:
    """--chat-clients clients in one room; senders post at each of --chat-rates in turn
    (--chat-step s each); the value is the most deliveries/s with p99 <= 100 ms, none lost."""
    o = bench.options
    args = ["--clients", str(o.chat_clients), "--rates", o.chat_rates, "--step", str(o.chat_step)]
    steps = len(o.chat_rates.split(","))
    timeout = 3 * o.chat_connect_max + steps * (o.chat_step + 10) + 60
    done, mem = _chat_load(bench, server, "fanout", args, timeout)
    # Connections refused, and those the server closed (comptoir: 1008, a queue it found full).
    failures = sum(done["connect_failures"].values()) + sum(done["closed"].values())
    if not done["limit_reached"]:
        print("\n    every rate met the bound: add higher ones to --chat-rates", end="")
    if done["deliveries_per_s"] is None:
        first = done["steps"][0] if done["steps"] else {}
        done["error"] = f"no rate met p99 <= 100 ms with nothing lost: {first}"
    return _chat_measurement(done["deliveries_per_s"], failures, mem, done)


def chat_idle(bench: Bench, server: Running) -> Measurement:
    """--chat-idle connections opened 100 at a time, held --chat-hold s, each then pinged: the
    value is the handshakes/s; errors, the connections that did not answer (or never opened)."""
    o = bench.options
    args = ["--clients", str(o.chat_idle), "--hold", str(o.chat_hold)]
    timeout = 3 * o.chat_connect_max + o.chat_hold + 120
    done, mem = _chat_load(bench, server, "idle", args, timeout)
    holding: dict[str, Any] = next((e for e in done["events"] if e["event"] == "holding"), {})
    done["holding_rss_kb"] = holding.get("server_rss_kb")
    done["server_sockets_end"] = tree_sockets(server.proc.pid)
    value = done["handshakes_per_s"] if done["connected"] else None
    return _chat_measurement(value, done["errors"], mem, done)


def chat_slow(bench: Bench, server: Running) -> Measurement:
    """--chat-slow-clients clients receive --chat-slow-rate messages/s of --chat-slow-size
    bytes for --chat-slow-duration s; then one client that never reads joins and the load runs
    again. The value is the others' p99 with it; the detail has it without, and the server's
    RSS growth while it was there against the bytes of the messages it was sent."""
    o = bench.options
    args = ["--clients", str(o.chat_slow_clients), "--rate", str(o.chat_slow_rate)]
    args += ["--size", str(o.chat_slow_size), "--duration", str(o.chat_slow_duration)]
    phase: dict[str, Any] = {}

    def on_event(event: dict[str, Any]) -> None:
        # The memory while the slow client is there, apart from the rest.
        if event["event"] == "phase" and event["name"] == "with":
            phase["start_kb"] = event["server_rss_kb"]
            phase["sampler"] = MemorySampler(server.proc.pid).__enter__()
        elif event["event"] == "step" and event.get("name") == "with" and "sampler" in phase:
            phase["sampler"].__exit__(None, None, None)

    timeout = o.chat_connect_max + 2 * o.chat_slow_duration + 180
    try:
        done, mem = _chat_load(bench, server, "slow", args, timeout, on_event)
    finally:
        if "sampler" in phase and phase["sampler"]._thread.is_alive():
            phase["sampler"].__exit__(None, None, None)
    with_slow = done["with"]
    if "sampler" in phase:
        done["rss_with_start_kb"] = phase["start_kb"]
        done["rss_growth_kb"] = max(0, phase["sampler"].peak_rss_kb - phase["start_kb"])
    done["bytes"] = with_slow["sent"] * o.chat_slow_size
    done["p99_without_ms"] = done["without"]["p99_ms"]
    value = with_slow["p99_ms"]
    if value is None:
        done["error"] = "no message reached the other clients with the slow consumer there"
    errors = with_slow["lost"] + sum(done["closed"].values())
    return _chat_measurement(value, errors, mem, done)


def chat_recovery(bench: Bench, server: Running) -> Measurement:
    """A client notes its last id, goes away, --chat-missed messages are posted, and it comes
    back with `?last_id=`: seconds until it has them all (median of --chat-runs), each run
    checked (in order, exactly the missed ones)."""
    o = bench.options
    args = ["--missed", str(o.chat_missed), "--runs", str(o.chat_runs)]
    timeout = o.chat_runs * (o.chat_missed / 15 + 90) + 60
    done, mem = _chat_load(bench, server, "recovery", args, timeout)
    if done["seconds"] is None:
        done["error"] = next((r["problem"] for r in done["runs"] if r["problem"]), "no run")
    return _chat_measurement(done["seconds"], done["errors"], mem, done)


@dataclass(frozen=True)
class Scenario:
    """One measurement, run against every server that supports its mode."""

    name: str
    title: str
    unit: str
    run: Callable[[Bench, Running], Measurement]
    mode: str = "static"
    decimals: int = 0
    # The server the table's ratio column compares with: nginx (its value over nginx's), or
    # comptoir (how many times better comptoir does than that server).
    reference: str = "nginx"
    higher_is_better: bool = True
    # The `Launch.paths` entry it loads: a server without it is not measured (no such feature).
    path: str | None = None

    def heading(self, options: Options | None = None) -> str:
        """The title with the run's sizes filled in (placeholders without options)."""
        if options is None:
            return self.title.format(
                large="large", files="N", tcp="N", rows="N", after="N", chat="N", idle="N"
            )
        return self.title.format(
            large=size_label(options.large_mb),
            files=f"{options.zip_files:,}",
            tcp=f"{options.tcp_connections:,}",
            rows=f"{options.api_rows:,}",
            after=f"{options.api_rows * 9 // 10:,}",
            chat=f"{options.chat_clients:,}",
            idle=f"{options.chat_idle:,}",
        )

    def better(self, mine: float, theirs: float) -> float:
        """How many times better `mine` is than `theirs` (a rate: higher; a time: lower)."""
        return mine / theirs if self.higher_is_better else theirs / mine


def chat_scenario(
    name: str,
    title: str,
    unit: str,
    run: Callable[[Bench, Running], Measurement],
    *,
    lower: int | None = None,
) -> Scenario:
    """A chat scenario: its own mode (servers started afresh), compared with comptoir."""
    return Scenario(
        name,
        "chat: " + title,
        unit,
        run,
        name,
        decimals=lower or 0,
        reference="comptoir",
        higher_is_better=lower is None,
    )


def api_scenario(
    name: str,
    title: str,
    unit: str,
    run: Callable[[Bench, Running], Measurement],
    *,
    lower: int | None = None,
    path: str | None = None,
) -> Scenario:
    """An api scenario: compared with comptoir; `lower`: a time (lower is better), shown with
    that many decimals; `path`: the `Launch.paths` entry it loads."""
    return Scenario(
        name,
        "api: " + title,
        unit,
        run,
        "api",
        decimals=lower or 0,
        reference="comptoir",
        higher_is_better=lower is None,
        path=path,
    )


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("small", "1 KB, keep-alive, 32 conns", "req/s", small_file),
        Scenario("large", "{large} file, curl, median", "GB/s", large_file, decimals=2),
        Scenario("conns", "1 KB, 1,000 conns", "req/s", many_connections),
        Scenario(
            "share", "share {large} file, curl, median", "GB/s", share_file, "share", decimals=2
        ),
        Scenario(
            "zip",
            "share zip: {files} files + {large}, median",
            "GB/s",
            zip_folder,
            "zip",
            decimals=2,
        ),
        Scenario(
            "upload", "receive {large}, curl -F, median", "GB/s", upload, "receive", decimals=2
        ),
        Scenario("echo", "echo /get, keep-alive, 32 conns", "req/s", echo_get, "echo"),
        Scenario("tcp", "TCP echo, {tcp} conns held", "conns", tcp_echo, "tcp"),
        Scenario("ws", "WebSocket echo, 32 conns", "msg/s", ws_echo, "ws"),
        api_scenario("api-ready", "start to first row, {rows} rows", "s", api_ready, lower=2),
        api_scenario("api-id", "row by random id, 32 conns", "req/s", api_by_id, path="id"),
        api_scenario(
            "api-filter",
            "city=, _sort=score, 50 rows, 8 conns, p99",
            "ms",
            api_filter,
            lower=1,
            path="filter",
        ),
        api_scenario("api-first", "first 50 rows, 8 conns", "req/s", api_first_page, path="first"),
        api_scenario(
            "api-deep", "50 rows after {after}, 8 conns", "req/s", api_deep_page, path="deep"
        ),
        api_scenario(
            "api-facet",
            "_facet=city + 50 rows, 1 conn, median",
            "ms",
            api_facet,
            lower=1,
            path="facet",
        ),
        api_scenario(
            "api-export", "whole table as CSV, curl, median", "MB/s", api_export, path="export"
        ),
        chat_scenario(
            "chat-fanout", "fan-out, {chat} clients, p99 <= 100 ms", "deliv/s", chat_fanout
        ),
        chat_scenario("chat-idle", "{idle} idle clients, handshakes", "conn/s", chat_idle),
        chat_scenario("chat-slow", "one slow consumer: others' p99", "ms", chat_slow, lower=1),
        chat_scenario(
            "chat-recovery", "1,000 missed, back with last_id", "s", chat_recovery, lower=3
        ),
    )
}
# What `--scenarios` takes besides names: `api` is every api scenario, and echo's /get (the
# engine floor of the by-id target, measured in the same run).
GROUPS = {
    "api": (*(n for n in SCENARIOS if n.startswith("api-")), "echo"),
    "chat": tuple(n for n in SCENARIOS if n.startswith("chat-")),
}
DEFAULT_SCENARIOS = tuple(
    n for n in SCENARIOS if SCENARIOS[n].mode != "api" and not n.startswith("chat-")
)


# --- targets ---------------------------------------------------------------------------------

Results = dict[str, dict[str, Measurement]]  # scenario -> server -> measurement


@dataclass(frozen=True)
class Target:
    """A goal for comptoir: a ratio to a peer, a value, an error count or a memory bound."""

    label: str
    scenario: str
    # "ratio" (comptoir >= bound x peer: better by that factor, a time being better lower),
    # "versus" (comptoir >= bound x comptoir's own figure in the scenario named by `peer`),
    # "value" (>= bound), "at_most" (value <= bound), "errors" (<= bound), "rss_mb" (<= bound),
    # "worker_rss_csv" (the largest process's peak RSS in every api scenario <= bound x the
    # CSV's size), "flat_rss" (growth during the scenario <= bound x the bytes sent), "within"
    # (value <= bound x the figure its detail holds under the name `peer`)
    kind: str
    bound: float
    peer: str = ""

    def evaluate(self, results: Results) -> tuple[str, bool] | None:
        """(shown value, met) or None when the figures needed were not measured."""
        mine = results.get(self.scenario, {}).get("comptoir")
        if mine is None or mine.value is None:
            return None
        scenario = SCENARIOS[self.scenario]
        if self.kind == "ratio":
            theirs = results[self.scenario].get(self.peer)
            if theirs is None or not theirs.value:
                return None
            ratio = scenario.better(mine.value, theirs.value)
            return f"{ratio:.2f}x", ratio >= self.bound
        if self.kind == "versus":
            own = results.get(self.peer, {}).get("comptoir")
            if own is None or not own.value:
                return None
            ratio = mine.value / own.value
            return f"{ratio:.2f}x", ratio >= self.bound
        if self.kind in ("value", "at_most"):
            shown = f"{mine.value:,.{scenario.decimals}f} {scenario.unit}"
            met = mine.value >= self.bound if self.kind == "value" else mine.value <= self.bound
            return shown, met
        if self.kind == "errors":
            return str(mine.errors), mine.errors <= self.bound
        if self.kind == "worker_rss_csv":
            peaks = [
                by_server["comptoir"].detail.get("peak_process_rss_kb", 0)
                for name, by_server in results.items()
                if SCENARIOS[name].mode == "api" and "comptoir" in by_server
            ]
            ratio = max(peaks) * 1024 / mine.detail["csv_bytes"]
            return f"{ratio:.2f}x", ratio <= self.bound
        if self.kind == "within":
            reference = mine.detail.get(self.peer)
            if not reference:
                return None
            ratio = mine.value / reference
            return f"{ratio:.2f}x", ratio <= self.bound
        if self.kind == "flat_rss":
            growth = mine.detail["rss_growth_kb"] * 1024
            shown = f"+{growth / MB:.0f} MB"
            return shown, growth <= self.bound * mine.detail["bytes"]
        rss_mb = mine.peak_rss_kb * 1024 / MB
        return f"{rss_mb:.0f} MB", rss_mb <= self.bound


TARGETS = (
    Target("1 KB >= 0.9x granian-floor", "small", "ratio", 0.9, "granian-floor"),
    Target("1 KB >= 0.5x nginx", "small", "ratio", 0.5, "nginx"),
    Target("1 KB >= 2.5x caddy", "small", "ratio", 2.5, "caddy"),
    Target("1 KB >= 10x http.server", "small", "ratio", 10, "http.server"),
    Target("1 KB >= 10x copyparty", "small", "ratio", 10, "copyparty"),
    Target("large file >= 0.85x nginx", "large", "ratio", 0.85, "nginx"),
    Target("1,000 conns: zero errors", "conns", "errors", 0),
    Target("1,000 conns: peak RSS <= 150 MB", "conns", "rss_mb", 150),
    Target("share file >= 0.85x nginx", "share", "ratio", 0.85, "nginx"),
    Target("share folder as zip >= 1 GB/s", "zip", "value", 1.0),
    Target("share folder as zip: peak RSS <= 150 MB", "zip", "rss_mb", 150),
    Target("receive upload >= 0.5 GB/s", "upload", "value", 0.5),
    Target("receive upload: peak RSS <= 150 MB", "upload", "rss_mb", 150),
    Target("echo /get >= 0.8x granian-floor", "echo", "ratio", 0.8, "granian-floor"),
    Target("TCP echo, all conns held: zero errors", "tcp", "errors", 0),
    Target("api: start to first row <= 1.0 s", "api-ready", "at_most", 1.0),
    Target("api: RSS per worker <= 3x the CSV", "api-ready", "worker_rss_csv", 3.0),
    Target("api: by id >= 5x datasette", "api-id", "ratio", 5, "datasette"),
    Target("api: by id >= 0.6x echo /get", "api-id", "versus", 0.6, "echo"),
    Target("api: filtered+sorted p99 <= 20 ms", "api-filter", "at_most", 20),
    Target("api: filtered+sorted >= 5x datasette", "api-filter", "ratio", 5, "datasette"),
    Target("api: deep page >= 0.9x first page", "api-deep", "versus", 0.9, "api-first"),
    Target("api: facet <= 50 ms", "api-facet", "at_most", 50),
    Target("api: CSV export >= 100 MB/s", "api-export", "value", 100),
    Target("api: CSV export, RSS flat (+<= 10% of the bytes)", "api-export", "flat_rss", 0.1),
    Target("chat fan-out >= 1.0x websockets-peer", "chat-fanout", "ratio", 1.0, "websockets-peer"),
    Target("chat fan-out: peak RSS <= 200 MB", "chat-fanout", "rss_mb", 200),
    Target("chat idle: zero errors", "chat-idle", "errors", 0),
    Target("chat idle: peak RSS <= 1 GB", "chat-idle", "rss_mb", 1000),
    Target(
        "chat slow consumer: others' p99 <= 2x without", "chat-slow", "within", 2, "p99_without_ms"
    ),
    Target("chat slow consumer: RSS growth <= 0.5x its bytes", "chat-slow", "flat_rss", 0.5),
    Target("chat recovery of 1,000 missed <= 1 s", "chat-recovery", "at_most", 1.0),
)
# The issue's target that has nothing to measure yet.
NOT_MEASURED = {
    "api-export": "api: POST p99 <= 10 ms on the 1M-row table: not in this run (the peers here"
    " are read-only); bench/api_writes.py times POSTs of comptoir api --write"
}


# --- running it all --------------------------------------------------------------------------


def run_all(bench: Bench) -> Results:
    """All rounds; with several, each figure is the median over the rounds."""
    rounds = []
    for i in range(bench.options.rounds):
        if bench.options.rounds > 1:
            print(f"round {i + 1} of {bench.options.rounds}", flush=True)
        rounds.append(run_round(bench))
    return rounds[0] if len(rounds) == 1 else combine(rounds)


def combine(rounds: list[Results]) -> Results:
    """Rounds merged: median value, errors summed, peak memory the highest seen; in `detail`,
    each round's measurement, and the figures the targets read (`_combined_detail`)."""
    merged: Results = {}
    for name, by_server in rounds[0].items():
        merged[name] = {}
        for server in by_server:
            ms = [r[name][server] for r in rounds if server in r[name]]
            values = [m.value for m in ms if m.value is not None]
            merged[name][server] = Measurement(
                value=statistics.median(values) if values else None,
                errors=sum(m.errors for m in ms),
                peak_rss_kb=max(m.peak_rss_kb for m in ms),
                peak_pss_kb=max(m.peak_pss_kb for m in ms),
                background_cpu=max(m.background_cpu for m in ms),
                detail={**_combined_detail(ms), "rounds": [asdict(m) for m in ms]},
            )
    return merged


def _combined_detail(ms: Sequence[Measurement]) -> dict[str, Any]:
    """The rounds' numeric figures, one each: memory peaks and growth the highest seen, the
    others (sizes, seconds) the median."""
    numbers: dict[str, list[float]] = {}
    for m in ms:
        for key, value in m.detail.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                numbers.setdefault(key, []).append(value)
    return {
        key: max(values) if "peak" in key or "growth" in key else statistics.median(values)
        for key, values in numbers.items()
    }


def run_round(bench: Bench) -> Results:
    """Every selected server in turn, each started once per mode, through its scenarios."""
    opts = bench.options
    scenarios = [SCENARIOS[name] for name in opts.scenarios]
    results: Results = {s.name: {} for s in scenarios}
    for server_name in opts.servers:
        if server_name in bench.skipped:
            continue
        spec = SERVERS[server_name]
        for mode in dict.fromkeys(s.mode for s in scenarios):
            todo = [s for s in scenarios if s.mode == mode]
            if mode not in spec.modes:
                continue
            try:
                run_server(bench, spec, mode, todo, results)
            except BenchError as exc:
                # One peer failing must not cost the figures of the others.
                print(f"\n  {server_name}: {exc}", flush=True)
                for scenario in todo:
                    results[scenario.name].setdefault(
                        server_name, Measurement(None, detail={"error": str(exc)})
                    )
    return results


def run_server(
    bench: Bench, spec: ServerSpec, mode: str, scenarios: list[Scenario], results: Results
) -> None:
    """Start one server in one mode, warm it up, and run its scenarios into `results`."""
    with running(bench, spec, mode) as server:
        if bench.options.warmup > 0 and server.launch.warmup_path is not None:
            wrk(
                bench,
                server.url(server.launch.warmup_path),
                connections=bench.options.small_connections,
                duration=bench.options.warmup,
            )
        for scenario in scenarios:
            print(f"  {spec.name:<12} {scenario.heading(bench.options)} ...", end="", flush=True)
            if scenario.path is not None and scenario.path not in server.launch.paths:
                # Nothing to measure: the server has no such feature (json-server's facets).
                lacks = server.launch.lacks.get(scenario.path, "no equivalent")
                print(f" not measured: {lacks}", flush=True)
                continue
            with BackgroundLoad() as background:
                try:
                    m = scenario.run(bench, server)
                except (BenchError, OSError, subprocess.SubprocessError) as exc:
                    # The scenario failed, not the run: say why, and go on with the next one.
                    m = Measurement(None, detail={"error": str(exc)})
            # A scenario may bring its own (api-ready: while the server started).
            m.background_cpu = round(max(m.background_cpu, background.share), 3)
            results[scenario.name][spec.name] = m
            note = ""
            if m.value is None:
                shown, note = "failed", f"  ({m.detail.get('error', 'no figure')})"
            else:
                shown = f"{m.value:,.{scenario.decimals}f} {scenario.unit}"
            if m.value is not None and m.background_cpu > BACKGROUND_WARNING:
                note = f"  (disturbed: other processes used {m.background_cpu:.0%} of the CPUs)"
            print(f" {shown}, {m.errors} errors{note}", flush=True)


def make_files(bench: Bench) -> None:
    """The served folder: a 1 KB file, the large file (real bytes, not a sparse file) and the
    body of /get; the folder shared as a zip: --zip-files small files and the large file (a hard
    link: no second copy on disk nor in the page cache)."""
    bench.root.mkdir()
    (bench.root / SMALL_FILE).write_bytes(os.urandom(1024))
    (bench.root / GET_FILE).write_text(GET_BODY)
    block = os.urandom(1024 * 1024)
    with open(bench.root / LARGE_FILE, "wb") as f:
        for _ in range(bench.options.large_mb):
            f.write(block)
    # nginx's worker runs as `nobody` when started as root: everything must be world-readable.
    for path in (bench.workdir, bench.root):
        path.chmod(0o755)
    for path in bench.root.iterdir():
        path.chmod(0o644)
    bench.folder.mkdir()
    for i in range(bench.options.zip_files):
        (bench.folder / f"small-{i:05d}.bin").write_bytes(os.urandom(SMALL_FILE_SIZE))
    os.link(bench.root / LARGE_FILE, bench.folder / LARGE_FILE)


def disk_write_speed(bench: Bench, runs: int = 3) -> dict[str, Any]:
    """What the disk under the upload folders writes with fsync, for reading the `upload`
    figures (comptoir fsyncs each upload): `dd if=/dev/zero bs=1M count=<large> conv=fsync`,
    `runs` times, as a virtual disk may be several times faster on a second write than a first."""
    target = bench.workdir / "dd.bin"
    argv = ["dd", "if=/dev/zero", f"of={target}", "bs=1M", f"count={bench.options.large_mb}"]
    argv.append("conv=fsync")
    speeds, said = [], []
    for _ in range(runs):
        t0 = time.monotonic()
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        seconds = time.monotonic() - t0
        target.unlink(missing_ok=True)
        if done.returncode != 0:
            return {"command": " ".join(argv), "error": done.stderr.strip()}
        speeds.append(round(large_bytes(bench) / seconds / 1e9, 3))
        said.append(done.stderr.strip().splitlines()[-1])
    return {"command": " ".join(argv), "gb_per_s": speeds, "dd_says": said}


def large_bytes(bench: Bench) -> int:
    """The size of the large file, in bytes."""
    return bench.options.large_mb * 1024 * 1024


def size_label(mib: int) -> str:
    """A size in MiB as people say it: "1 GiB", "64 MiB"."""
    return f"{mib // 1024} GiB" if mib % 1024 == 0 else f"{mib} MiB"


def format_table(bench: Bench, results: Results) -> str:
    """The results as text tables — ratios to nginx, then the api scenarios with how many times
    better comptoir does than each peer — then comptoir's targets."""
    lines: list[str] = []
    for reference, column in (("nginx", "x nginx"), ("comptoir", "comptoir x")):
        names = [n for n in results if SCENARIOS[n].reference == reference]
        if names:
            lines += [*([""] if lines else []), *_table(bench, results, names, column)]
    checks = [(t.label, *c) for t in TARGETS if (c := t.evaluate(results)) is not None]
    if checks:
        lines += ["", "comptoir targets (one worker each):"]
        width = max(len(label) for label, _, _ in checks)
        for label, shown, met in checks:
            lines.append(f"  {label.ljust(width)}  {shown:>8}  {'ok' if met else 'MISSED'}")
    lines += [f"  {note}" for name, note in NOT_MEASURED.items() if name in results]
    if bench.skipped:
        lines += ["", *(f"skipped: {name}: {why}" for name, why in bench.skipped.items())]
    return "\n".join(lines)


def _table(bench: Bench, results: Results, names: Sequence[str], column: str) -> list[str]:
    header = ("scenario", "server", "result", column, "errors", "peak RSS", "peak PSS", "other CPU")
    rows: list[tuple[str, ...]] = [header]
    for name in names:
        scenario = SCENARIOS[name]
        title = scenario.heading(bench.options)
        reference = results[name].get(scenario.reference)
        for server, m in results[name].items():
            ratio = "-"
            if m.value is None:
                result = "failed"
            else:
                result = f"{m.value:,.{scenario.decimals}f} {scenario.unit}"
            if m.value and reference is not None and reference.value:
                if scenario.reference == "nginx":
                    ratio = f"{m.value / reference.value:.2f}"
                else:
                    ratio = f"{scenario.better(reference.value, m.value):.2f}"
            rows.append(
                (
                    title,
                    server,
                    result,
                    ratio,
                    str(m.errors),
                    f"{m.peak_rss_kb * 1024 / MB:.0f} MB",
                    f"{m.peak_pss_kb * 1024 / MB:.0f} MB",
                    f"{m.background_cpu:.0%}",
                )
            )
            title = ""
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    right = {2, 3, 4, 5, 6, 7}
    lines = [
        "  ".join(
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def machine_info(bench: Bench) -> dict[str, Any]:
    """Where and with what the figures were taken."""
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.partition(":")[2].strip()
                break
    tools = {
        "wrk": _output(["wrk", "-v"]).splitlines()[0] if shutil.which("wrk") else "",
        "curl": _output(["curl", "--version"]).splitlines()[0],
    }
    versions = {name: SERVERS[name].version(bench) for name in bench.options.servers}
    return {
        "cpu": cpu,
        "cpus_available": sorted(os.sched_getaffinity(0)),
        "kernel": platform.release(),
        "load_average_at_start": os.getloadavg()[0],
        "python": platform.python_version(),
        "server_cpus": bench.options.server_cpus,
        "client_cpus": bench.options.client_cpus,
        "git": _output(["git", "-C", str(BENCH_DIR), "describe", "--always", "--dirty"]),
        "tools": tools,
        "versions": versions,
    }


def save(bench: Bench, results: Results, meta: dict[str, Any]) -> Path:
    """Write the raw results as JSON under bench/results/ (git-ignored)."""
    path = bench.options.output or RESULTS_DIR / time.strftime("%Y%m%d-%H%M%S.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "options": {
            k: str(v) if isinstance(v, Path) else v for k, v in asdict(bench.options).items()
        },
        "machine": meta,
        "results": {
            name: {server: asdict(m) for server, m in by_server.items()}
            for name, by_server in results.items()
        },
        "targets": {
            t.label: (None if (c := t.evaluate(results)) is None else {"value": c[0], "met": c[1]})
            for t in TARGETS
        },
    }
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def _output(argv: Sequence[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (done.stdout or done.stderr).strip()


def _installed_version(python: Path, package: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({package!r}))"
    return _output([str(python), "-c", code]) if python.exists() else ""


def check_tools(options: Options) -> None:
    """Fail early, with one line, when a tool the selected run needs is missing."""
    needed = ["wrk", "curl"]
    if options.server_cpus or options.client_cpus:
        needed.append("taskset")
    missing = [t for t in needed if shutil.which(t) is None]
    if "nginx" in options.servers and not Path(nginx_binary()).exists():
        missing.append("nginx")
    if "caddy" in options.servers and shutil.which("caddy") is None:
        missing.append("caddy")
    if missing:
        raise BenchError(f"missing tools: {', '.join(missing)} (apt-get install ...)")


def default_cpus() -> tuple[str | None, str | None]:
    """Servers on the first CPU, load generators on the others (none with a single CPU)."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2 or shutil.which("taskset") is None:
        return None, None
    return str(cpus[0]), ",".join(str(c) for c in cpus[1:])


def modes_of(scenarios: Sequence[str]) -> set[str]:
    """The modes the named scenarios start servers in."""
    return {SCENARIOS[name].mode for name in scenarios}


def _names(
    choices: Sequence[str], groups: dict[str, tuple[str, ...]] | None = None
) -> Callable[[str], tuple[str, ...]]:
    def parse(text: str) -> tuple[str, ...]:
        given = [n.strip() for n in text.split(",") if n.strip()]
        # A group stands for its names, in place; each name once.
        names = tuple(dict.fromkeys(m for n in given for m in (groups or {}).get(n, (n,))))
        unknown = [n for n in names if n not in choices]
        if unknown or not names:
            raise argparse.ArgumentTypeError(
                f"unknown {', '.join(unknown) or '(none)'}; choose from {', '.join(choices)}"
            )
        return names

    return parse


def parse_args(argv: Sequence[str] | None) -> Options:
    """Options from the command line."""
    server_cpus, client_cpus = default_cpus()
    p = argparse.ArgumentParser(
        description="Benchmark comptoir against nginx, http.server, copyparty and uploadserver.",
        epilog="Scenarios: "
        + "; ".join(f"{s.name}: {s.heading()}" for s in SCENARIOS.values())
        + ". Groups: "
        + "; ".join(f"{g}: {', '.join(names)}" for g, names in GROUPS.items()),
    )
    # String defaults go through `type` too, so they are checked like user input.
    p.add_argument(
        "--servers",
        type=_names(list(SERVERS)),
        default=",".join(DEFAULT_SERVERS),
        help="%(default)s; also " + ", ".join(n for n in SERVERS if n not in DEFAULT_SERVERS),
    )
    p.add_argument(
        "--scenarios",
        type=_names(list(SCENARIOS), GROUPS),
        default=",".join(DEFAULT_SCENARIOS),
        help="%(default)s; also api (every api scenario and echo), chat (every chat scenario)",
    )
    # wrk takes whole seconds only.
    p.add_argument("--duration", type=int, default=10, help="seconds per wrk run: %(default)s")
    p.add_argument("--warmup", type=int, default=2, help="seconds of wrk first: %(default)s")
    p.add_argument("--small-connections", type=int, default=32, help="'small': %(default)s")
    p.add_argument("--connections", type=int, default=1000, help="'conns': %(default)s")
    p.add_argument("--large-mb", type=int, default=1024, help="large file, MiB: %(default)s")
    p.add_argument(
        "--large-runs", type=int, default=5, help="curl downloads (large, share, zip): %(default)s"
    )
    p.add_argument("--zip-files", type=int, default=1000, help="small files in 'zip': %(default)s")
    p.add_argument("--upload-runs", type=int, default=3, help="'upload' runs: %(default)s")
    p.add_argument(
        "--tcp-connections", type=int, default=5000, help="'tcp' connections: %(default)s"
    )
    p.add_argument("--tcp-hold", type=float, default=3.0, help="'tcp' hold, s: %(default)s")
    p.add_argument("--api-rows", type=int, default=1_000_000, help="api table rows: %(default)s")
    p.add_argument("--api-runs", type=int, default=2, help="api CSV exports: %(default)s")
    chat = Options.__dataclass_fields__
    for name, kind, what in (
        ("chat_clients", int, "clients of the chat fan-out"),
        ("chat_rates", str, "messages/s of the fan-out, in turn"),
        ("chat_step", float, "s per fan-out rate"),
        ("chat_idle", int, "idle chat clients"),
        ("chat_hold", float, "s the idle clients are held"),
        ("chat_slow_clients", int, "clients beside the slow consumer"),
        ("chat_slow_rate", float, "messages/s with the slow consumer"),
        ("chat_slow_size", int, "bytes of text of those messages"),
        ("chat_slow_duration", float, "s without it, then with it"),
        ("chat_missed", int, "messages a recovering client missed"),
        ("chat_runs", int, "recovery runs"),
        ("chat_connect_max", float, "s for a chat scenario's handshakes"),
    ):
        flag = "--" + name.replace("_", "-")
        p.add_argument(flag, type=kind, default=chat[name].default, help=what + ": %(default)s")
    p.add_argument("--rounds", type=int, default=1, help="median over rounds: %(default)s")
    p.add_argument("--server-cpus", default=server_cpus, help="taskset list: %(default)s")
    p.add_argument("--client-cpus", default=client_cpus, help="taskset list: %(default)s")
    p.add_argument("--no-pin", action="store_true", help="pin nothing with taskset")
    p.add_argument("--peers-venv", type=Path, default=PEERS_VENV, help="PyPI peers' venv")
    p.add_argument("--output", type=Path, help="JSON file (default: bench/results/<time>.json)")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder (files, logs)")
    a = p.parse_args(argv)
    if min(a.duration, a.large_mb, a.large_runs, a.upload_runs, a.tcp_connections, a.rounds) <= 0:
        p.error(
            "--duration, --large-mb, --large-runs, --upload-runs, --tcp-connections and --rounds"
            " must be positive"
        )
    if a.api_rows < 1000 or a.api_runs <= 0:
        p.error("--api-rows must be at least 1000 (pages of 50 after row 0.9 x N), --api-runs > 0")
    chat_counts = (a.chat_clients, a.chat_idle, a.chat_slow_clients, a.chat_missed, a.chat_runs)
    chat_times = (a.chat_step, a.chat_slow_rate, a.chat_slow_size, a.chat_slow_duration)
    if min(chat_counts) <= 0 or min(chat_times) <= 0 or a.chat_hold < 0:
        p.error("the --chat-* counts, rates, sizes and durations must be positive")
    if a.zip_files < 0 or a.tcp_hold < 0:
        p.error("--zip-files and --tcp-hold cannot be negative")
    if a.small_connections < 2 or a.connections < 2:
        p.error("wrk needs at least 2 connections (one per thread)")
    return Options(
        servers=a.servers,
        scenarios=a.scenarios,
        duration=a.duration,
        warmup=a.warmup,
        small_connections=a.small_connections,
        connections=a.connections,
        large_mb=a.large_mb,
        large_runs=a.large_runs,
        zip_files=a.zip_files,
        upload_runs=a.upload_runs,
        tcp_connections=a.tcp_connections,
        tcp_hold=a.tcp_hold,
        api_rows=a.api_rows,
        api_runs=a.api_runs,
        rounds=a.rounds,
        server_cpus=None if a.no_pin else a.server_cpus,
        client_cpus=None if a.no_pin else a.client_cpus,
        peers_venv=a.peers_venv.resolve(),
        output=a.output,
        keep=a.keep,
        **{name: getattr(a, name) for name in Options.__dataclass_fields__ if name[:5] == "chat_"},
    )


def prepare_servers(bench: Bench) -> None:
    """Install (or check) each server the selected scenarios start; a peer that cannot be
    prepared is skipped, and said so, and the run goes on with the others. Then every Python
    server's modules are compiled to bytecode, as `pip install` does (`compile_bytecode`)."""
    modes = modes_of(bench.options.scenarios)
    for name in bench.options.servers:
        spec = SERVERS[name]
        if not modes & set(spec.modes):
            continue
        try:
            spec.prepare(bench)
        except (BenchError, OSError, RuntimeError, subprocess.SubprocessError) as exc:
            if name == "comptoir":
                raise
            bench.skipped[name] = str(exc)
            print(f"{name}: skipped: {exc}", flush=True)
    compile_bytecode(bench)


def compile_bytecode(bench: Bench) -> None:
    """Every module of comptoir's venv, comptoir's own source and the peers' venv compiled to
    bytecode (`.pyc`), once. `pip install` compiles what it installs, and Python writes what it
    compiles at first import; an environment with PYTHONDONTWRITEBYTECODE (this machine's) or a
    venv made by uv (which does not compile) would instead compile every module at every start:
    0.5 s of a Python server's start here, for comptoir and its Python peers alike."""
    import comptoir

    folders = [Path(comptoir.__file__).parent, *_site_packages(Path(sys.executable))]
    if bench.options.peers_venv.exists():
        folders += _site_packages(peers_python(bench))
    for folder in folders:
        argv = [sys.executable, "-m", "compileall", "-q", "-j", "0", str(folder)]
        subprocess.run(argv, capture_output=True, timeout=600, check=False)


def _site_packages(python: Path) -> list[Path]:
    """Where a Python's installed packages are."""
    code = "import json, site; print(json.dumps(site.getsitepackages()))"
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False)
    try:
        return [Path(p) for p in json.loads(done.stdout)]
    except ValueError:
        return []


def prepare_comptoir_api(bench: Bench) -> None:
    """The api data read once by comptoir, so that its table cache has it (sites/api/cache.py),
    as Datasette's SQLite file and json-server's db.json are made once (prepare_*)."""
    data = bench.api_data
    code = (
        "import sys; from pathlib import Path; from comptoir.sites.api.tables import load_table\n"
        "for p in sys.argv[1:]: load_table(Path(p).stem, Path(p))"
    )
    argv = [sys.executable, "-c", code, str(data.items_csv), str(data.categories_csv)]
    subprocess.run(argv, check=True, timeout=600)


def _exit_on_signal(signum: int, frame: object) -> None:
    # Turn SIGTERM/SIGHUP into an exception so every `finally` stops its server.
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print the table; return the exit code (0, or 1 on failure)."""
    options = parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit_on_signal)
    workdir = Path(tempfile.mkdtemp(prefix="comptoir-bench-"))
    bench = Bench(options, workdir)
    try:
        check_tools(options)
        if "api" in modes_of(options.scenarios):
            print("api data: the CSV files (made once, then cached) ...", flush=True)
            csv_files(bench.api_data)
        prepare_servers(bench)
        pinning = (
            f"servers on CPU {options.server_cpus}, wrk/curl on CPU {options.client_cpus}"
            if options.server_cpus
            else "no CPU pinning"
        )
        print(f"comptoir bench: {', '.join(options.servers)}; {pinning}", flush=True)
        make_files(bench)
        meta = machine_info(bench)
        if "upload" in options.scenarios:
            meta["disk_write"] = disk_write_speed(bench)
        results = run_all(bench)
    except BenchError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nbench: interrupted; servers stopped", file=sys.stderr)
        return 130
    finally:
        if options.keep:
            print(f"scratch folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    # Saved first: the raw figures outlive any mistake in the table below.
    path = save(bench, results, meta)
    print()
    print(format_table(bench, results))
    disk = meta.get("disk_write", {})
    if "gb_per_s" in disk:
        speeds = ", ".join(f"{v:.2f}" for v in disk["gb_per_s"])
        print(f"\ndisk under the uploads, {disk['command']}: {speeds} GB/s")
    print(f"\nraw results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
