"""The `comptoir` command. Commands only build a Config and hand it to Server.

Click options are generated from the options classes (settings.py), so the CLI, sites.toml and the
docs cannot drift apart. Every option can also come from a `COMPTOIR_<NAME>` variable.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from comptoir import __version__
from comptoir.config import Config, ServerOptions, SiteConfig
from comptoir.errors import ConfigError, ConfigProblems
from comptoir.settings import OptionField, option_fields
from comptoir.sites import KINDS, AnyKind

F = TypeVar("F", bound=Callable[..., Any])
ENV_PREFIX = "COMPTOIR_"


class _Parsed(click.ParamType):  # type: ignore[type-arg]
    """A click type that parses text with a setting's own parser (sizes, durations)."""

    def __init__(self, opt: OptionField) -> None:
        self.opt = opt
        self.name = opt.name

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        assert self.opt.setting.parse is not None
        try:
            parsed = self.opt.setting.parse(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        s = self.opt.setting
        if s.minimum is not None and parsed < s.minimum:
            self.fail(f"must be at least {s.minimum:g}", param, ctx)
        return parsed


def click_type(opt: OptionField) -> Any:
    """The click parameter type for one option."""
    s = opt.setting
    tp = opt.item_type
    if s.parse is not None:
        return _Parsed(opt)
    if opt.choices is not None:
        return click.Choice(opt.choices, case_sensitive=False)
    if tp is Path:
        return click.Path(path_type=Path)
    if tp is int:
        return click.IntRange(
            None if s.minimum is None else int(s.minimum),
            None if s.maximum is None else int(s.maximum),
        )
    if tp is float:
        return click.FloatRange(s.minimum, s.maximum)
    return click.STRING


def click_params(cls: type[Any]) -> list[click.Parameter]:
    """click Options/Arguments for every CLI-settable field of an options class."""
    params: list[click.Parameter] = []
    for opt in option_fields(cls):
        s = opt.setting
        if not s.cli:
            continue
        envvar = ENV_PREFIX + opt.name.upper() if s.env else None
        if s.argument:
            required = opt.is_sequence and not opt.default
            metavar = s.argument.upper() + ("..." if opt.is_sequence else "")
            params.append(
                click.Argument(
                    [opt.name],
                    type=click_type(opt),
                    nargs=-1 if opt.is_sequence else 1,
                    required=required,
                    default=None if opt.is_sequence else opt.default,
                    envvar=envvar,
                    # Usage shows an optional argument in brackets: `serve [OPTIONS] [DIR]`.
                    metavar=metavar if required else f"[{metavar}]",
                )
            )
            continue
        decls = [*s.short]
        if opt.type is bool and not s.flag_only:
            decls.append(f"{opt.flag}/--no-{opt.name.replace('_', '-')}")
        else:
            decls.append(opt.flag)
        params.append(
            click.Option(
                [*decls, opt.name],
                type=None if opt.type is bool else click_type(opt),
                is_flag=opt.type is bool,
                multiple=opt.is_sequence,
                default=opt.default,
                help=s.help + (f" [default: {s.default_text}]" if s.default_text else ""),
                show_default=s.default_text is None and opt.type is not bool,
                envvar=envvar,
                show_envvar=envvar is not None,
                hidden=s.secret,
            )
        )
    return params


def with_params(*classes: type[Any]) -> Callable[[F], F]:
    """Decorate a click command with the generated params of several options classes."""

    def decorate(fn: F) -> F:
        params = getattr(fn, "__click_params__", [])
        for cls in classes:
            # click applies decorators bottom-up and reverses; keep declaration order in --help.
            params.extend(reversed(click_params(cls)))
        fn.__click_params__ = params  # type: ignore[attr-defined]
        return fn

    return decorate


def build_options(cls: type[Any], values: dict[str, Any]) -> Any:
    """An options object from the values click parsed (fields not on the CLI keep defaults)."""
    names = {o.name for o in option_fields(cls) if o.setting.cli}
    return cls(**{k: v for k, v in values.items() if k in names})


def serve_config(kind: str, values: dict[str, Any]) -> Config:
    """The Config of a one-site command: server options plus one site of `kind` at the root."""
    server = build_options(ServerOptions, values)
    options = build_options(KINDS[kind].options, values)
    return Config(server=server, sites=(SiteConfig(kind=kind, options=options, name=kind),))


def run_config(config: Config) -> None:
    """Run a Config; exit with the server's code."""
    from comptoir.server import Server

    code = Server(config).run()
    sys.exit(code)


def _version_message() -> str:
    """`comptoir, version X (granian Y, event loop Z)`: what answers requests, with --loop auto."""
    from importlib.metadata import version

    from comptoir.loops import describe, resolve_loop

    engine = f"granian {version('granian')}, event loop {describe(resolve_loop('auto'))}"
    return f"%(prog)s, version %(version)s ({engine})"


# -h is help, as users expect of any command line tool; subcommands inherit these settings.
@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="comptoir", message=_version_message())
def cli() -> None:
    """comptoir: one command, one port — share files, receive uploads, serve sites."""


def _kind_command(kind: AnyKind) -> click.Command:
    """The command serving one site of `kind` at the root, with its options and the server's."""

    def callback(**values: Any) -> None:
        run_config(serve_config(kind.name, values))

    # Server options first, as click listed them when commands were written by hand.
    params = [*click_params(ServerOptions), *click_params(kind.options)]
    return click.Command(kind.command, callback=callback, params=params, help=kind.help)


for _kind in KINDS.values():
    cli.add_command(_kind_command(_kind))
    if _kind.command != _kind.name:
        # Every kind is also a command of its own name (`comptoir static DIR` is `comptoir
        # serve DIR`, as a sites.toml's `kind = "static"` is), left out of the list of commands.
        _alias = _kind_command(_kind)
        _alias.hidden = True
        cli.add_command(_alias, _kind.name)


SITES_FILE = click.argument(
    "sites_file", type=click.Path(path_type=Path), default="sites.toml", metavar="[SITES.TOML]"
)


@cli.command()
@SITES_FILE
@with_params(ServerOptions)
@click.pass_context
def run(ctx: click.Context, /, sites_file: Path, **values: Any) -> None:
    """Serve the sites of a sites.toml file on one port.

    Each [[site]] answers on its host names and path; options given here (or as COMPTOIR_*
    variables) override the file's [server] table.
    """
    from comptoir.sitesfile import load_sites_file, warnings

    config = load_sites_file(sites_file)
    # Flags and COMPTOIR_* variables the user gave override the file's [server] table.
    given = {
        k: v
        for k, v in values.items()
        if ctx.get_parameter_source(k)
        in (click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT)
    }
    server = dataclasses.replace(config.server, **given)
    config = dataclasses.replace(config, server=server)
    for line in warnings(config, password=_has_password(server)):
        click.echo(f"comptoir: warning: {line}", err=True)
    run_config(config)


def _has_password(server: ServerOptions) -> bool:
    """True when a password will protect the sites (given any of the ways it can be)."""
    from comptoir.security.passwords import PASSWORD_ENV

    given = server.password or server.password_file is not None or server.password_hash
    return bool(given or os.environ.get(PASSWORD_ENV))


@cli.command()
@SITES_FILE
def check(sites_file: Path) -> None:
    """Check a sites.toml file without serving it.

    Prints a summary and exits 0, or lists every problem with its line and exits 2.
    """
    from comptoir.security.passwords import password_problems
    from comptoir.server import Server
    from comptoir.sitesfile import load_sites_file, summary, warnings

    config = load_sites_file(sites_file)
    # The server's own checks too (TLS files, the password's file or hash): everything `run`
    # checks before it binds.
    Server(config).check()
    problems = password_problems(config.server)
    if problems:
        raise ConfigError("; ".join(problems))
    server = config.server
    if server.cert is not None:
        from comptoir.security.certfiles import load_user_certificate

        # Read and matched as `run` does (nothing is written): a missing file or a key that is
        # not the certificate's is found now.
        load_user_certificate(server.cert, server.key, server.key_password)
    # Loaded again: what differs between the two loads (a random token) is shown as such.
    click.echo(summary(config, str(sites_file), redrawn=load_sites_file(sites_file)))
    for line in warnings(config, password=_has_password(server)):
        click.echo(f"warning: {line}")


@cli.command()
@with_params(ServerOptions)
def demo(**values: Any) -> None:
    """Serve the built-in demo on *.localhost names.

    A home page at www.localhost (also the default site: http://127.0.0.1:PORT/) linking the
    sites of every kind, each on its own name under .localhost, which browsers resolve to this
    machine. What they write (uploads) goes to a temporary folder, removed at exit.
    """
    from comptoir.demo import demo_config, demo_run_dir

    with demo_run_dir() as run_dir:
        run_config(demo_config(build_options(ServerOptions, values), run_dir))


@cli.command()
@click.argument("url")
@click.option("--nick", metavar="NAME", help="Nickname to take (else the server's guest name).")
@click.option("--room", metavar="ROOM", help="Room to join and write to (default: general).")
@click.option("--send", metavar="TEXT", help="Send this one message, then exit.")
@click.option(
    "--password", is_flag=True, help="The site has one: from $COMPTOIR_PASSWORD, else asked."
)
def talk(url: str, nick: str | None, room: str | None, send: str | None, password: bool) -> None:
    """Chat from the terminal with a chat site (comptoir chat) at URL.

    URL is the site's page (http://HOST:PORT/, mounted anywhere) or its WebSocket
    (ws://HOST:PORT/ws). At a terminal, messages appear above the line you type and /help lists
    the commands; piped lines are sent one message each, exiting once all are stored.
    """
    from comptoir.talk import run_talk

    sys.exit(run_talk(url, nick=nick, room=room, send=send, password=password))


@cli.group()
def ca() -> None:
    """The local certificate authority behind --tls: where it is, and trusting it."""


@ca.command("path")
def ca_path() -> None:
    """Print the path of the CA certificate (made on first use), e.g. for curl --cacert."""
    from comptoir.security.ca import load_or_create_ca

    click.echo(str(load_or_create_ca().cert_path))


@ca.command("show")
def ca_show() -> None:
    """Show the CA: file, name, fingerprint, validity, and where it is trusted."""
    from comptoir.security import truststore
    from comptoir.security.ca import load_or_create_ca

    local_ca = load_or_create_ca()
    for line in truststore.describe(local_ca):
        click.echo(line)


@ca.command("install")
def ca_install() -> None:
    """Trust the CA in the system store and in Firefox/Chromium (NSS); exit 1 if a step failed."""
    from comptoir.security import truststore
    from comptoir.security.ca import load_or_create_ca

    local_ca = load_or_create_ca()
    store, dbs = truststore.system_store(), truststore.nss_databases()
    _report_trust(truststore.install(local_ca, store, dbs))


@ca.command("uninstall")
def ca_uninstall() -> None:
    """Remove the CA from the places `ca install` puts it; the CA files themselves stay."""
    from comptoir.security import truststore
    from comptoir.security.ca import load_ca

    local_ca = load_ca()
    if local_ca is None:
        click.echo("no local CA: nothing to uninstall")
        return
    store, dbs = truststore.system_store(), truststore.nss_databases()
    _report_trust(truststore.uninstall(local_ca, store, dbs))


def _report_trust(outcomes: Sequence[Any]) -> None:
    for o in outcomes:
        click.echo(f"{'ok' if o.ok else 'FAILED'}: {o.where}: {o.message}")
    if any(not o.ok for o in outcomes):
        sys.exit(1)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: run the CLI; user errors become one line on stderr and exit code 2."""
    try:
        cli.main(args=list(argv) if argv is not None else None, standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        sys.exit(130)
    except click.UsageError as exc:
        message = exc.format_message()
        if exc.ctx is not None:
            message += f" (see '{exc.ctx.command_path} --help')"
        _fail(message)
    except click.ClickException as exc:
        _fail(exc.format_message())
    except ConfigProblems as exc:
        _fail(*exc.problems)
    except ConfigError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(0)


def _fail(*messages: str) -> None:
    # One line per problem (a sites.toml may have several), never a stray newline in one.
    for message in messages:
        click.echo(f"comptoir: error: {' '.join(message.split())}", err=True)
    sys.exit(2)
