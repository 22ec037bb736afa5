"""The `comptoir serve` command line: options, environment variables, errors."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

import click
import click.testing
import pytest

from comptoir import __version__
from comptoir.cli import ENV_PREFIX, cli, main
from comptoir.config import Config, ServerOptions
from comptoir.settings import option_fields
from comptoir.sites import KINDS
from comptoir.sites.static import StaticOptions

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


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_kinds_command_and_its_options_agree(kind: str) -> None:
    # Every kind's command is generated from its options class and the server's, by name.
    classes = (KINDS[kind].options, ServerOptions)
    command = cli.commands[KINDS[kind].command]
    params = {p.name: p for p in command.params if p.name != "help"}
    fields = {o.name: o for cls in classes for o in option_fields(cls) if o.setting.cli}
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
    # Options kept off the command line (sites.toml only, e.g. static's revalidate) are not there.
    hidden = {o.name for cls in classes for o in option_fields(cls) if not o.setting.cli}
    assert not hidden & set(params)


def test_revalidate_is_for_sites_toml_only() -> None:
    hidden = {o.name for o in option_fields(StaticOptions) if not o.setting.cli}
    assert "revalidate" in hidden


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
        "-b",
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


@pytest.mark.parametrize(
    "args",
    [["-h"], ["serve", "-h"], ["share", "-h"], ["run", "-h"], ["ca", "-h"], ["ca", "path", "-h"]],
)
def test_dash_h_is_help_everywhere(capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    # Every command line tool users know answers -h with its help; --host has -b (as
    # `python -m http.server -b` and gunicorn -b).
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("Usage: ")
    assert "-h, --help" in out


def test_host_short_flag_is_b() -> None:
    [host] = [p for p in cli.commands["serve"].params if p.name == "host"]
    assert host.opts == ["-b", "--host"]


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


def test_usage_shows_an_optional_folder_in_brackets() -> None:
    runner = click.testing.CliRunner()
    serve = runner.invoke(cli, ["serve", "--help"], prog_name="comptoir").output
    assert "Usage: comptoir serve [OPTIONS] [DIR]" in serve
    share = runner.invoke(cli, ["share", "--help"], prog_name="comptoir").output
    assert "Usage: comptoir share [OPTIONS] PATH..." in share


def test_version_names_the_engine_and_event_loop(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert re.fullmatch(r"comptoir, version \S+ \(granian \S+, event loop uvloop \S+\)\n", out)


def test_loop_auto_is_uvloop_never_rloop() -> None:
    from comptoir.loops import resolve_loop

    assert resolve_loop("auto") == "uvloop"
    assert resolve_loop("asyncio") == "asyncio"


def test_a_loop_that_is_not_installed_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setattr("comptoir.loops.installed", lambda name: name != "rloop")
    with pytest.raises(SystemExit) as exc:
        main(["serve", str(tmp_path), "--port", "0", "--loop", "rloop"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err == "comptoir: error: --loop rloop: rloop is not installed (pip install rloop)\n"


@pytest.mark.parametrize(("choice", "loop"), [("auto", "uvloop"), ("asyncio", "asyncio")])
def test_granian_is_given_the_resolved_loop(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, choice: str, loop: str
) -> None:
    import socket

    from granian.server import mp

    from comptoir.server import WorkerSetup, _run_granian

    given: dict[str, object] = {}

    def capture(self: object, **kwargs: object) -> None:
        given.update(kwargs)

    monkeypatch.setattr(mp.MPServer, "__init__", capture)
    monkeypatch.setattr(mp.MPServer, "serve", lambda self, **kwargs: None, raising=False)
    config = Config(server=ServerOptions(loop=choice))  # type: ignore[arg-type]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        _run_granian(config, sock, WorkerSetup("", tmp_path, {}))
    assert str(given["loop"]) == loop


def test_every_kind_is_also_a_command_of_its_name() -> None:
    from click.testing import CliRunner

    from comptoir.sites import KINDS

    for name, kind in KINDS.items():
        assert cli.commands[name].params == cli.commands[kind.command].params or (
            [p.name for p in cli.commands[name].params]
            == [p.name for p in cli.commands[kind.command].params]
        )
    listed = CliRunner().invoke(cli, ["--help"]).output
    assert "serve" in listed and "  static" not in listed  # the alias stays out of the list
    assert "Usage: cli static" in CliRunner().invoke(cli, ["static", "--help"]).output


def test_connections_are_accepted_without_nagle() -> None:
    # A small write (a chat frame, a chunk of a streamed body) goes at once, not after the ACK
    # of the one before, which a client may delay 40 ms.
    from comptoir.server import bind_socket

    listener = bind_socket("127.0.0.1", 0)
    with listener, socket.create_connection(listener.getsockname()[:2]):
        accepted, _ = listener.accept()
        with accepted:
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
