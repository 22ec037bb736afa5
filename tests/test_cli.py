"""The `comptoir serve` command line: options, environment variables, errors, banner."""

from __future__ import annotations

import io
import json
import os
import socket
from datetime import datetime
from pathlib import Path

import click
import click.testing
import pytest

from comptoir import __version__
from comptoir.accesslog import AccessLog
from comptoir.banner import print_banner, qr_text
from comptoir.cli import ENV_PREFIX, cli, main
from comptoir.config import Config, ServerOptions
from comptoir.netinfo import Address
from comptoir.server import Server, listen_urls
from comptoir.settings import option_fields
from comptoir.sites.static import StaticOptions
from comptoir.types import Message, Receive, Scope, Send
from tests.conftest import make_config

SERVE_CLASSES = (StaticOptions, ServerOptions)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No COMPTOIR_* variable of the machine running the tests leaks into them."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)


def run_cli(monkeypatch: pytest.MonkeyPatch, *args: str) -> Config:
    """The Config `comptoir ARGS` would hand to the server (nothing is served)."""
    captured: list[Config] = []
    monkeypatch.setattr("comptoir.cli.run_config", captured.append)
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    assert exc.value.code == 0
    assert len(captured) == 1
    return captured[0]


def fail_cli(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Run `comptoir ARGS`, expect a user error; return its one line on stderr."""
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    assert exc.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1, err
    assert err.startswith("comptoir: error: ")
    assert "Traceback" not in err
    return err.strip()


# --- the options agree with the Config --------------------------------------------------------


def test_serve_options_and_config_fields_agree() -> None:
    command = cli.commands["serve"]
    params = {p.name: p for p in command.params if p.name != "help"}
    fields = {o.name: o for cls in SERVE_CLASSES for o in option_fields(cls) if o.setting.cli}
    assert set(params) == set(fields)
    for name, opt in fields.items():
        param = params[name]
        # A setting whose variable means something else (COMPTOIR_PASSWORD) has none of its own.
        assert param.envvar == (ENV_PREFIX + name.upper() if opt.setting.env else None)
        if opt.setting.argument:
            assert isinstance(param, click.Argument)
        else:
            assert isinstance(param, click.Option)
            assert opt.flag in param.opts
            assert param.default == opt.default, name
    # Options kept off the command line (sites.toml only) are really not there.
    hidden = {o.name for cls in SERVE_CLASSES for o in option_fields(cls) if not o.setting.cli}
    assert "revalidate" in hidden
    assert not hidden & set(params)


def test_defaults_build_the_default_config(monkeypatch: pytest.MonkeyPatch) -> None:
    config = run_cli(monkeypatch, "serve")
    assert config.server == ServerOptions()
    assert len(config.sites) == 1
    site = config.sites[0]
    assert (site.kind, site.path, site.hosts) == ("static", "/", ())
    assert site.options == StaticOptions()


def test_flags_fill_the_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = run_cli(
        monkeypatch,
        "serve",
        str(tmp_path),
        "-h",
        "127.0.0.1",
        "-p",
        "9000",
        "-w",
        "3",
        "-q",
        "--log-format",
        "JSON",
        "--grace",
        "1m30s",
        "--no-listing",
        "--hidden",
        "--cache",
        "3600",
        "--compress",
        "--spa",
    )
    assert config.server == ServerOptions(
        host="127.0.0.1", port=9000, workers=3, quiet=True, log_format="json", grace=90.0
    )
    assert config.sites[0].options == StaticOptions(
        root=tmp_path, listing=False, hidden=True, cache=3600, compress=True, spa=True
    )


def test_environment_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env = {
        "COMPTOIR_PORT": "9123",
        "COMPTOIR_HOST": "127.0.0.1",
        "COMPTOIR_WORKERS": "2",
        "COMPTOIR_QUIET": "1",
        "COMPTOIR_LOG_FORMAT": "json",
        "COMPTOIR_GRACE": "2s",
        "COMPTOIR_ROOT": str(tmp_path),
        "COMPTOIR_LISTING": "false",
        "COMPTOIR_HIDDEN": "true",
        "COMPTOIR_CACHE": "60",
        "COMPTOIR_COMPRESS": "yes",
        "COMPTOIR_SPA": "on",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    config = run_cli(monkeypatch, "serve")
    assert config.server == ServerOptions(
        host="127.0.0.1", port=9123, workers=2, quiet=True, log_format="json", grace=2.0
    )
    assert config.sites[0].options == StaticOptions(
        root=tmp_path, listing=False, hidden=True, cache=60, compress=True, spa=True
    )
    # The command line wins over the environment.
    config = run_cli(monkeypatch, "serve", ".", "--port", "9124", "--listing")
    assert config.server.port == 9124
    assert config.sites[0].options.listing is True
    assert config.sites[0].options.root == Path(".")


def test_help_lists_every_option_with_its_variable(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["serve", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for cls in SERVE_CLASSES:
        for opt in option_fields(cls):
            if opt.setting.cli and not opt.setting.argument:
                assert opt.flag in out
                if opt.setting.env:
                    assert f"COMPTOIR_{opt.name.upper()}" in out
    assert "[DIR]" in out or "DIR" in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert __version__ in capsys.readouterr().out


# --- user errors: one line, exit 2 ------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--port", "abc"], "--port"),
        (["--port", "70000"], "--port"),
        (["--port", "-1"], "--port"),
        (["--workers", "0"], "--workers"),
        (["--log-format", "xml"], "--log-format"),
        (["--grace", "soon"], "not a duration"),
        (["--grace", "-1"], "--grace"),
        (["--cache", "-5"], "--cache"),
        (["--cache", "1h"], "--cache"),
        (["--bogus"], "--bogus"),
        (["a", "b"], "unexpected extra argument"),
    ],
)
def test_bad_option_values(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], words: str
) -> None:
    line = fail_cli(capsys, "serve", str(tmp_path), *args)
    assert words in line


def test_bad_environment_value(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("COMPTOIR_PORT", "eighty")
    assert "eighty" in fail_cli(capsys, "serve", str(tmp_path))


def test_missing_folder(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    line = fail_cli(capsys, "serve", str(tmp_path / "nope"), "--port", "0")
    assert line == f"comptoir: error: folder not found: {tmp_path / 'nope'}"


def test_file_instead_of_folder(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("x")
    line = fail_cli(capsys, "serve", str(tmp_path / "f.txt"), "--port", "0")
    assert line == f"comptoir: error: not a folder: {tmp_path / 'f.txt'}"


def test_port_in_use(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = fail_cli(capsys, "serve", str(tmp_path), "--host", "127.0.0.1", "--port", str(port))
    assert f"port {port} is already in use" in line
    assert "--port 0" in line


def test_address_not_on_this_machine(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # TEST-NET-1 (RFC 5737): never assigned to a local interface.
    line = fail_cli(capsys, "serve", str(tmp_path), "--host", "192.0.2.1", "--port", "0")
    assert "cannot listen on 192.0.2.1" in line


@pytest.mark.parametrize("host", ["a..b", ".a", "x" * 64 + ".example"])
def test_malformed_host_name(capsys: pytest.CaptureFixture[str], tmp_path: Path, host: str) -> None:
    line = fail_cli(capsys, "serve", str(tmp_path), "--host", host, "--port", "0")
    assert line == f"comptoir: error: cannot listen on {host!r}: not a valid host name"


# --- banner -----------------------------------------------------------------------------------


@pytest.fixture
def lan(monkeypatch: pytest.MonkeyPatch) -> list[Address]:
    """Pretend this machine has two LAN addresses, the first on the default route."""
    addresses = [Address("192.168.1.20", primary=True), Address("10.8.0.2")]
    monkeypatch.setattr("comptoir.server.lan_addresses", lambda ipv6=True: addresses)
    return addresses


def wildcard_server(tmp_path: Path, *, quiet: bool = False) -> Server:
    """A Server configured for all interfaces, holding a socket that only listens on loopback."""
    config = make_config("static", StaticOptions(root=tmp_path), host="0.0.0.0", quiet=quiet)
    server = Server(config)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server.sock = sock
    return server


def test_banner_lists_loopback_and_lan_urls_primary_first(
    tmp_path: Path, lan: list[Address]
) -> None:
    server = wildcard_server(tmp_path)
    assert server.sock is not None
    port = server.sock.getsockname()[1]
    urls = server.urls()
    assert [(u.url, u.primary) for u in urls] == [
        (f"http://192.168.1.20:{port}/", True),
        (f"http://127.0.0.1:{port}/", False),
        (f"http://10.8.0.2:{port}/", False),
    ]
    out, err = io.StringIO(), io.StringIO()
    print_banner(server.config, urls, out=out, err=err)
    assert out.getvalue() == ""
    text = err.getvalue()
    lines = text.splitlines()
    primary = next(line for line in lines if "192.168.1.20" in line)
    assert "primary" in primary
    assert all("primary" not in line for line in lines if line != primary)
    assert f"http://127.0.0.1:{port}/" in text
    assert f"http://10.8.0.2:{port}/" in text
    # The QR code is the primary URL's.
    assert qr_text(f"http://192.168.1.20:{port}/") in text
    assert "1 worker" in text
    server.sock.close()


def test_quiet_banner_is_urls_only_on_stdout(tmp_path: Path, lan: list[Address]) -> None:
    server = wildcard_server(tmp_path, quiet=True)
    urls = server.urls()
    out, err = io.StringIO(), io.StringIO()
    print_banner(server.config, urls, out=out, err=err)
    assert out.getvalue() == "".join(u.url + "\n" for u in urls)
    assert err.getvalue() == ""
    assert server.sock is not None
    server.sock.close()


def test_without_network_loopback_is_primary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("comptoir.server.lan_addresses", lambda ipv6=True: [])
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        assert listen_urls(sock, "0.0.0.0") == [(f"http://127.0.0.1:{port}", True)]
        assert listen_urls(sock, "127.0.0.1") == [(f"http://127.0.0.1:{port}", True)]


def test_ipv6_wildcard_also_shows_ipv6_loopback(lan: list[Address]) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    with socket.socket(socket.AF_INET6) as sock:
        try:
            sock.bind(("::1", 0))
        except OSError:
            pytest.skip("no IPv6 loopback")
        port = sock.getsockname()[1]
        urls = [u for u, _ in listen_urls(sock, "::")]
    assert urls[:3] == [
        f"http://192.168.1.20:{port}",
        f"http://127.0.0.1:{port}",
        f"http://[::1]:{port}",
    ]


# --- access log -------------------------------------------------------------------------------


async def log_lines(log_format: str, raw_path: bytes, query: bytes = b"") -> list[str]:
    """The access-log output for one request with an exact raw path."""
    lines: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"nope"})

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        pass

    ticks = iter([10.0, 10.0125])
    log = AccessLog(app, log_format, write=lines.append, clock=lambda: next(ticks))
    scope = {
        "type": "http",
        "method": "GET",
        "path": raw_path.decode("utf-8", "replace"),
        "raw_path": raw_path,
        "query_string": query,
        "headers": [],
        "client": ("::1", 5000),
    }
    await log(scope, receive, send)
    return lines


# Bytes a client could try to smuggle into a log line or a terminal (servers in front of us may
# pass them through even where granian refuses them).
HOSTILE_LOG = b'/a\nFAKE 200\r\x1b[2J\x07"quote"\\back\xe9\xc3\xa9\xe2\x80\xa8\xe2\x80\xae'


async def test_access_log_text_line_is_one_escaped_line() -> None:
    lines = await log_lines("text", HOSTILE_LOG, b"q=\x1b]0;title\x07")
    assert len(lines) == 1
    line = lines[0]
    assert line.isprintable()
    assert line.endswith(" 404 4 12.5ms")
    assert ' [::1] "GET ' in line
    assert (
        '/a\\x0aFAKE 200\\x0d\\x1b[2J\\x07\\"quote\\"\\\\back\\xe9é\\u2028\\u202e'
        "?q=\\x1b]0;title\\x07"
    ) in line


async def test_access_log_json_line_parses() -> None:
    lines = await log_lines("json", HOSTILE_LOG)
    assert len(lines) == 1 and "\n" not in lines[0] and lines[0].isascii()
    record = json.loads(lines[0])
    assert record["path"] == '/a\nFAKE 200\r\x1b[2J\x07"quote"\\back\\xe9é\u2028\u202e'
    assert (record["method"], record["status"], record["bytes"]) == ("GET", 404, 4)
    assert record["client"] == "[::1]"
    assert record["duration_ms"] == 12.5


async def test_access_log_text_line_starts_with_the_local_time() -> None:
    before = datetime.now().replace(microsecond=0)
    first = (await log_lines("text", b"/one", b""))[0]
    stamp = datetime.strptime(first[:19], "%Y-%m-%d %H:%M:%S")
    assert before <= stamp <= datetime.now()


def test_usage_shows_an_optional_folder_in_brackets() -> None:
    runner = click.testing.CliRunner()
    serve = runner.invoke(cli, ["serve", "--help"], prog_name="comptoir").output
    assert "Usage: comptoir serve [OPTIONS] [DIR]" in serve
    share = runner.invoke(cli, ["share", "--help"], prog_name="comptoir").output
    assert "Usage: comptoir share [OPTIONS] PATH..." in share
