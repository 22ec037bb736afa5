"""Measure comptoir against nginx, `python -m http.server` and copyparty: one run, one machine.

    uv run python bench/run.py                      # everything, about 2.5 minutes
    uv run python bench/run.py --duration 3 --servers comptoir,nginx --scenarios small

Each server is started on its own free port on 127.0.0.1, serving the same folder, with one
worker, pinned to the same CPU(s); the load generators (wrk, curl) are pinned to the others. The
servers run one after the other, never side by side. The table gives absolute figures and ratios
to nginx; the raw figures go to bench/results/<time>.json. bench/README.md says how to read them.

Adding a scenario: write a function `(Bench, Running) -> Measurement` and add a `Scenario` to
SCENARIOS. A scenario that needs servers started differently names a `mode`; each ServerSpec
says how it starts in each mode it supports (servers without that mode are skipped).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
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
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from processes import BackgroundLoad, MemorySampler, tree_memory_kb

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
WRK_REPORT = BENCH_DIR / "wrk_report.lua"
# Peers that come from PyPI live in their own throwaway venv, never in comptoir's lock file.
PEERS_VENV = BENCH_DIR / ".venv-peers"
COPYPARTY = "copyparty==1.20.26"

HOST = "127.0.0.1"
SMALL_FILE = "1k.bin"
LARGE_FILE = "large.bin"
# wrk's own default (2 s) would count a merely slow answer under 1,000 connections as an error.
WRK_TIMEOUT = "5s"
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
    rounds: int
    server_cpus: str | None
    client_cpus: str | None
    peers_venv: Path
    output: Path | None
    keep: bool


@dataclass
class Bench:
    """One benchmark run: its options and the scratch folder holding the served files."""

    options: Options
    workdir: Path

    @property
    def root(self) -> Path:
        """The folder every server serves."""
        return self.workdir / "site"

    def client(self, argv: Sequence[str]) -> list[str]:
        """A load-generator command line, pinned to the client CPUs."""
        return _pinned(self.options.client_cpus, argv)


@dataclass(frozen=True)
class Launch:
    """How to start one server: its command line and extra environment."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    # The server is up once a GET of this path answers 200; the warm-up loads it too.
    ready_path: str = "/" + SMALL_FILE


@dataclass
class Running:
    """A started server."""

    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    ready_path: str

    def url(self, path: str) -> str:
        """The URL of a path on this server."""
        return f"http://{HOST}:{self.port}{path}"


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


def comptoir_static(bench: Bench, port: int) -> Launch:
    """comptoir from the interpreter running this script (the project's venv)."""
    argv = [sys.executable, "-m", "comptoir", "serve", str(bench.root)]
    return Launch([*argv, "--host", HOST, "--port", str(port), "--quiet", "--workers", "1"])


def comptoir_version(bench: Bench) -> str:
    """comptoir's and granian's versions as this interpreter imports them."""
    code = (
        "import importlib.metadata as m, comptoir; "
        "print(f'comptoir {comptoir.__version__}, granian {m.version(\"granian\")}')"
    )
    return _output([sys.executable, "-c", code])


def granian_floor(bench: Bench, port: int) -> Launch:
    """floor_app.py on granian, configured as comptoir configures it (one worker, st, HTTP/1)."""
    argv = [sys.executable, "-m", "granian", "--interface", "asgi", "--no-ws", "--workers", "1"]
    argv += ["--runtime-mode", "st", "--http", "1", "--log-level", "error"]
    argv += ["--working-dir", str(BENCH_DIR), "--host", HOST, "--port", str(port), "floor_app:app"]
    return Launch(argv, env={"FLOOR_ROOT": str(bench.root)})


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
        )
    )
    if not mime.exists():
        (conf_dir / "mime.types").write_text("types { text/html html; }\n")
    return Launch([nginx_binary(), "-p", str(conf_dir), "-e", "stderr", "-c", str(conf)])


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


def install_copyparty(bench: Bench) -> None:
    """Install the pinned copyparty into the peers' venv (with uv) unless it is already there."""
    python = peers_python(bench)
    wanted = COPYPARTY.partition("==")[2]
    if python.exists() and _installed_version(python, "copyparty") == wanted:
        return
    uv = shutil.which("uv")
    if uv is None:
        raise BenchError("copyparty needs uv to install it into a throwaway venv")
    print(f"installing {COPYPARTY} into {bench.options.peers_venv} ...", flush=True)
    # The same interpreter as comptoir's, so both run on the same Python.
    venv = str(bench.options.peers_venv)
    for argv in (
        [uv, "venv", "--quiet", "--allow-existing", "--python", sys.executable, venv],
        [uv, "pip", "install", "--quiet", "--python", str(python), COPYPARTY],
    ):
        if subprocess.run(argv, check=False).returncode != 0:
            raise BenchError(f"could not install copyparty: {' '.join(argv)} failed")


def copyparty_static(bench: Bench, port: int) -> Launch:
    """copyparty with one read-only volume at / and its defaults otherwise (-j 1: one core)."""
    config_home = bench.workdir / f"copyparty-{port}"
    config_home.mkdir()
    argv = [str(peers_python(bench)), "-m", "copyparty", "-i", HOST, "-p", str(port)]
    return Launch(
        [*argv, "-v", f"{bench.root}::r", "-q", "--http-only", "--no-crt"],
        # copyparty keeps its state (sessions, salts) in $XDG_CONFIG_HOME/copyparty.
        env={"XDG_CONFIG_HOME": str(config_home)},
    )


def copyparty_version(bench: Bench) -> str:
    """copyparty's version in the peers' venv."""
    return "copyparty " + _installed_version(peers_python(bench), "copyparty")


SERVERS: dict[str, ServerSpec] = {
    spec.name: spec
    for spec in (
        # nginx first: it is the reference every ratio is taken against.
        ServerSpec("nginx", {"static": nginx_static}, version=nginx_version),
        ServerSpec("comptoir", {"static": comptoir_static}, version=comptoir_version),
        # Not a peer: the engine's ceiling for any ASGI app (floor_app.py), for reading the ratios.
        ServerSpec(
            "granian-floor",
            {"static": granian_floor},
            version=lambda bench: "granian " + _installed_version(Path(sys.executable), "granian"),
        ),
        ServerSpec(
            "copyparty",
            {"static": copyparty_static},
            prepare=install_copyparty,
            version=copyparty_version,
        ),
        ServerSpec(
            "http.server",
            {"static": http_server_static},
            version=lambda bench: f"Python {platform.python_version()}",
        ),
    )
}


@contextlib.contextmanager
def running(bench: Bench, spec: ServerSpec, mode: str) -> Iterator[Running]:
    """Start a server in `mode`, wait until it answers, and always stop it (its whole group)."""
    port = free_port()
    launch = spec.modes[mode](bench, port)
    log = bench.workdir / f"{spec.name}-{mode}-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            _pinned(bench.options.server_cpus, launch.argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **launch.env},
            # Its own process group: stopping it reaches every worker it forked.
            start_new_session=True,
        )
    server = Running(spec.name, port, proc, log, launch.ready_path)
    try:
        _wait_ready(server)
        yield server
    finally:
        _stop(proc)


def _wait_ready(server: Running) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise BenchError(f"{server.name} exited at startup:\n{_tail(server.log)}")
        conn = http.client.HTTPConnection(HOST, server.port, timeout=2)
        try:
            conn.request("GET", server.ready_path)
            response = conn.getresponse()
            response.read()
            if response.status == 200:
                return
        except OSError:
            pass  # not listening yet
        finally:
            conn.close()
        time.sleep(0.1)
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


def wrk(bench: Bench, url: str, *, connections: int, duration: int) -> dict[str, Any]:
    """Run wrk (2 threads, keep-alive) and return its summary (see wrk_report.lua)."""
    load = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--timeout", WRK_TIMEOUT]
    argv = bench.client([*load, "-s", str(WRK_REPORT), url])
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("JSON "):
            summary: dict[str, Any] = json.loads(line[5:])
            summary["requests_per_s"] = summary["requests"] / (summary["duration_us"] / 1e6)
            summary["error_total"] = sum(summary["errors"].values())
            return summary
    said = (done.stderr or done.stdout).strip().splitlines()[:1]
    raise BenchError(f"wrk gave no summary (exit {done.returncode}): {' '.join(said)}")


def curl_download(bench: Bench, url: str) -> dict[str, Any]:
    """Download a URL once with curl into /dev/null: status, bytes and seconds."""
    quiet = ["curl", "--silent", "--show-error", "--noproxy", "*", "--max-time", "300"]
    report = ["--write-out", "%{http_code} %{size_download} %{time_total}"]
    argv = bench.client([*quiet, *report, "--output", "/dev/null", url])
    done = subprocess.run(argv, capture_output=True, text=True, timeout=330, check=False)
    fields = done.stdout.split()
    if len(fields) != 3:
        fields = ["0", "0", "0"]
    code, size, seconds = fields
    return {
        "status": int(code),
        "bytes": int(float(size)),
        "seconds": float(seconds),
        "curl_exit": done.returncode,
    }


# --- scenarios -------------------------------------------------------------------------------


def _wrk_measurement(bench: Bench, server: Running, connections: int) -> Measurement:
    """wrk on the 1 KB file with `connections` keep-alive connections, memory sampled meanwhile."""
    rss_before, pss_before = tree_memory_kb(server.proc.pid)
    with MemorySampler(server.proc.pid) as mem:
        summary = wrk(
            bench,
            server.url("/" + SMALL_FILE),
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


def large_file(bench: Bench, server: Running) -> Measurement:
    """The large file downloaded with curl several times: median GB/s (10^9 bytes per second)."""
    expected = bench.options.large_mb * 1024 * 1024
    runs = []
    with MemorySampler(server.proc.pid) as mem:
        for _ in range(bench.options.large_runs):
            runs.append(curl_download(bench, server.url("/" + LARGE_FILE)))
    good = [r for r in runs if r["status"] == 200 and r["bytes"] == expected and r["seconds"] > 0]
    speeds = [r["bytes"] / r["seconds"] / 1e9 for r in good]
    return Measurement(
        value=statistics.median(speeds) if speeds else None,
        errors=len(runs) - len(good),
        peak_rss_kb=mem.peak_rss_kb,
        peak_pss_kb=mem.peak_pss_kb,
        detail={"runs": runs, "gb_per_s": speeds, "best": max(speeds, default=None)},
    )


@dataclass(frozen=True)
class Scenario:
    """One measurement, run against every server that supports its mode."""

    name: str
    title: str
    unit: str
    run: Callable[[Bench, Running], Measurement]
    mode: str = "static"
    decimals: int = 0


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("small", "1 KB, keep-alive, 32 conns", "req/s", small_file),
        Scenario("large", "{large} file, curl, median", "GB/s", large_file, decimals=2),
        Scenario("conns", "1 KB, 1,000 conns", "req/s", many_connections),
    )
}


# --- targets ---------------------------------------------------------------------------------

Results = dict[str, dict[str, Measurement]]  # scenario -> server -> measurement


@dataclass(frozen=True)
class Target:
    """A goal for comptoir: a ratio to a peer, an error count or a memory bound."""

    label: str
    scenario: str
    kind: str  # "ratio" (>= bound x peer), "errors" (<= bound), "rss_mb" (<= bound)
    bound: float
    peer: str = ""

    def evaluate(self, results: Results) -> tuple[str, bool] | None:
        """(shown value, met) or None when the figures needed were not measured."""
        mine = results.get(self.scenario, {}).get("comptoir")
        if mine is None or mine.value is None:
            return None
        if self.kind == "ratio":
            theirs = results[self.scenario].get(self.peer)
            if theirs is None or not theirs.value:
                return None
            ratio = mine.value / theirs.value
            return f"{ratio:.2f}x", ratio >= self.bound
        if self.kind == "errors":
            return str(mine.errors), mine.errors <= self.bound
        rss_mb = mine.peak_rss_kb * 1024 / MB
        return f"{rss_mb:.0f} MB", rss_mb <= self.bound


TARGETS = (
    Target("1 KB >= 0.8x nginx", "small", "ratio", 0.8, "nginx"),
    Target("1 KB >= 10x http.server", "small", "ratio", 10, "http.server"),
    Target("1 KB >= 10x copyparty", "small", "ratio", 10, "copyparty"),
    Target("large file >= 0.85x nginx", "large", "ratio", 0.85, "nginx"),
    Target("1,000 conns: zero errors", "conns", "errors", 0),
    Target("1,000 conns: peak RSS <= 150 MB", "conns", "rss_mb", 150),
)


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
    """Rounds merged: median value, errors summed, peak memory the highest seen."""
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
                detail={"rounds": [asdict(m) for m in ms]},
            )
    return merged


def run_round(bench: Bench) -> Results:
    """Every selected server in turn, each started once per mode, through its scenarios."""
    opts = bench.options
    scenarios = [SCENARIOS[name] for name in opts.scenarios]
    results: Results = {s.name: {} for s in scenarios}
    for server_name in opts.servers:
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
        if bench.options.warmup > 0:
            wrk(
                bench,
                server.url(server.ready_path),
                connections=bench.options.small_connections,
                duration=bench.options.warmup,
            )
        for scenario in scenarios:
            title = scenario.title.format(large=size_label(bench.options.large_mb))
            print(f"  {spec.name:<12} {title} ...", end="", flush=True)
            with BackgroundLoad() as background:
                m = scenario.run(bench, server)
            m.background_cpu = round(background.share, 3)
            results[scenario.name][spec.name] = m
            shown = "-" if m.value is None else f"{m.value:,.{scenario.decimals}f}"
            note = ""
            if m.background_cpu > BACKGROUND_WARNING:
                note = f"  (disturbed: other processes used {m.background_cpu:.0%} of the CPUs)"
            print(f" {shown} {scenario.unit}, {m.errors} errors{note}", flush=True)


def make_files(bench: Bench) -> None:
    """The served folder: a 1 KB file and the large file (real bytes, not a sparse file)."""
    bench.root.mkdir()
    (bench.root / SMALL_FILE).write_bytes(os.urandom(1024))
    block = os.urandom(1024 * 1024)
    with open(bench.root / LARGE_FILE, "wb") as f:
        for _ in range(bench.options.large_mb):
            f.write(block)
    # nginx's worker runs as `nobody` when started as root: everything must be world-readable.
    for path in (bench.workdir, bench.root):
        path.chmod(0o755)
    for path in bench.root.iterdir():
        path.chmod(0o644)


def size_label(mib: int) -> str:
    """A size in MiB as people say it: "1 GiB", "64 MiB"."""
    return f"{mib // 1024} GiB" if mib % 1024 == 0 else f"{mib} MiB"


def format_table(bench: Bench, results: Results) -> str:
    """The results as a text table with ratios to nginx, then comptoir's targets."""
    header = (
        "scenario",
        "server",
        "result",
        "x nginx",
        "errors",
        "peak RSS",
        "peak PSS",
        "other CPU",
    )
    rows: list[tuple[str, ...]] = [header]
    for name, by_server in results.items():
        scenario = SCENARIOS[name]
        title = scenario.title.format(large=size_label(bench.options.large_mb))
        nginx = by_server.get("nginx")
        for server, m in by_server.items():
            if m.value is None:
                result, ratio = "failed", "-"
            else:
                result = f"{m.value:,.{scenario.decimals}f} {scenario.unit}"
                ratio = f"{m.value / nginx.value:.2f}" if nginx and nginx.value else "-"
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
    checks = [(t.label, *c) for t in TARGETS if (c := t.evaluate(results)) is not None]
    if checks:
        lines += ["", "comptoir targets (one worker each):"]
        width = max(len(label) for label, _, _ in checks)
        for label, shown, met in checks:
            lines.append(f"  {label.ljust(width)}  {shown:>8}  {'ok' if met else 'MISSED'}")
    return "\n".join(lines)


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
    if missing:
        raise BenchError(f"missing tools: {', '.join(missing)} (apt-get install ...)")


def default_cpus() -> tuple[str | None, str | None]:
    """Servers on the first CPU, load generators on the others (none with a single CPU)."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2 or shutil.which("taskset") is None:
        return None, None
    return str(cpus[0]), ",".join(str(c) for c in cpus[1:])


def _names(choices: Sequence[str]) -> Callable[[str], tuple[str, ...]]:
    def parse(text: str) -> tuple[str, ...]:
        names = tuple(n.strip() for n in text.split(",") if n.strip())
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
        description="Benchmark comptoir against nginx, http.server and copyparty.",
        epilog="Scenarios: "
        + "; ".join(f"{s.name}: {s.title.format(large='large')}" for s in SCENARIOS.values()),
    )
    # String defaults go through `type` too, so they are checked like user input.
    p.add_argument(
        "--servers", type=_names(list(SERVERS)), default=",".join(SERVERS), help="%(default)s"
    )
    p.add_argument(
        "--scenarios", type=_names(list(SCENARIOS)), default=",".join(SCENARIOS), help="%(default)s"
    )
    # wrk takes whole seconds only.
    p.add_argument("--duration", type=int, default=10, help="seconds per wrk run: %(default)s")
    p.add_argument("--warmup", type=int, default=2, help="seconds of wrk first: %(default)s")
    p.add_argument("--small-connections", type=int, default=32, help="'small': %(default)s")
    p.add_argument("--connections", type=int, default=1000, help="'conns': %(default)s")
    p.add_argument("--large-mb", type=int, default=1024, help="large file, MiB: %(default)s")
    p.add_argument("--large-runs", type=int, default=5, help="curl downloads: %(default)s")
    p.add_argument("--rounds", type=int, default=1, help="median over rounds: %(default)s")
    p.add_argument("--server-cpus", default=server_cpus, help="taskset list: %(default)s")
    p.add_argument("--client-cpus", default=client_cpus, help="taskset list: %(default)s")
    p.add_argument("--no-pin", action="store_true", help="pin nothing with taskset")
    p.add_argument("--peers-venv", type=Path, default=PEERS_VENV, help="copyparty's venv")
    p.add_argument("--output", type=Path, help="JSON file (default: bench/results/<time>.json)")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder (files, logs)")
    a = p.parse_args(argv)
    if min(a.duration, a.large_mb, a.large_runs, a.rounds) <= 0:
        p.error("--duration, --large-mb, --large-runs and --rounds must be positive")
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
        rounds=a.rounds,
        server_cpus=None if a.no_pin else a.server_cpus,
        client_cpus=None if a.no_pin else a.client_cpus,
        peers_venv=a.peers_venv.resolve(),
        output=a.output,
        keep=a.keep,
    )


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
        for name in options.servers:
            SERVERS[name].prepare(bench)
        pinning = (
            f"servers on CPU {options.server_cpus}, wrk/curl on CPU {options.client_cpus}"
            if options.server_cpus
            else "no CPU pinning"
        )
        print(f"comptoir bench: {', '.join(options.servers)}; {pinning}", flush=True)
        make_files(bench)
        meta = machine_info(bench)
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
    print()
    print(format_table(bench, results))
    path = save(bench, results, meta)
    print(f"\nraw results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
