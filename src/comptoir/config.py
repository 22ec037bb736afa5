"""The one typed Config: server-wide options plus the sites served.

Every command builds a Config (the CLI from its flags and `COMPTOIR_*` variables, `run` from
sites.toml) and hands it to `Server(config)`. Site kinds bring their own options classes
(sites/<kind>.py); a `SiteConfig` pairs one of them with where the site is mounted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from comptoir.hosts import certificate_name
from comptoir.settings import parse_duration, setting

LogFormat = Literal["text", "json"]
EventLoop = Literal["auto", "uvloop", "asyncio", "rloop"]

# "All interfaces": one dual-stack IPv6 socket that also accepts IPv4 (falls back to 0.0.0.0
# where the machine has no IPv6).
ALL_INTERFACES = "::"


@dataclass(frozen=True)
class ServerOptions:
    """Options of the listener, common to every serving command and to sites.toml's [server]."""

    host: str = setting(
        ALL_INTERFACES,
        "Address to listen on.",
        default_text="all interfaces, IPv4 and IPv6",
        # Not -h: that is help, in comptoir as in every command line tool.
        short=("-b",),
    )
    port: int = setting(
        8000, "Port to listen on; 0 picks a free one.", minimum=0, maximum=65535, short=("-p",)
    )
    workers: int = setting(1, "Worker processes.", minimum=1, maximum=64, short=("-w",))
    quiet: bool = setting(
        False,
        "Print only the URL(s), one per line, on stdout; no banner, no access log.",
        flag_only=True,
        short=("-q",),
    )
    log_format: LogFormat = setting("text", "Access log format.")
    loop: EventLoop = setting(
        "auto",
        "Event loop of the workers: auto is uvloop where it is installed, else asyncio; rloop "
        "(pip install rloop) is experimental.",
    )
    grace: float = setting(
        10.0,
        "Seconds transfers in flight may take to finish at shutdown.",
        minimum=0,
        parse=parse_duration,
    )
    # What one client may hold (issue 10, item 2): server.py hands the first two to granian,
    # clientlimits.py enforces the others in each worker.
    header_timeout: float = setting(
        15.0,
        "A connection is closed when it has not sent a whole request head for this long (a new"
        " one, or one kept alive between requests).",
        minimum=1,
        maximum=3600,
        parse=parse_duration,
    )
    worker_connections: int = setting(
        4096,
        "Connections each worker holds at most (the open-files limit is raised to fit them);"
        " further clients wait in the system's queue.",
        minimum=16,
        maximum=1_000_000,
    )
    max_client_requests: int = setting(
        256,
        "Requests one client address (IPv6: its /64) may have in progress in each worker; more"
        " are answered 503 (at most half of --worker-connections).",
        minimum=1,
        maximum=1_000_000,
    )
    body_timeout: float = setting(
        30.0,
        "A request body from which nothing arrives for this long is dropped (408), with what an"
        " upload had written of it.",
        minimum=0.01,
        maximum=3600,
        parse=parse_duration,
    )
    # HTTPS (security/tls.py). --tls alone uses comptoir's local CA; --cert/--key the user's own.
    tls: bool = setting(
        False,
        "Serve HTTPS with a certificate from comptoir's local CA (made on first use).",
        flag_only=True,
    )
    tls_name: tuple[str, ...] = setting(
        (),
        "Another name for --tls's certificate (repeatable), e.g. www.localhost; it always names"
        " localhost, this machine, its addresses and the sites' hosts.",
        default_text="none",
        parse=certificate_name,
    )
    cert: Path | None = setting(
        None, "Serve HTTPS with this certificate (PEM, with its chain).", default_text="none"
    )
    key: Path | None = setting(
        None, "Private key of --cert (PEM: PKCS#8, EC or RSA).", default_text="in --cert"
    )
    key_password: str | None = setting(
        None, "Password of an encrypted --key (prefer the variable).", default_text="none"
    )
    redirect_http: int | None = setting(
        None,
        "Also listen for plain HTTP on this port and redirect it to HTTPS.",
        minimum=0,
        maximum=65535,
        default_text="off",
    )
    # Password (security/passwords.py, auth.py). Only the hash reaches the workers.
    password: bool = setting(
        False,
        "Ask for a password (hidden prompt); COMPTOIR_PASSWORD gives it without asking.",
        flag_only=True,
        env=False,
    )
    password_file: Path | None = setting(
        None, "Read the password from the first line of FILE.", default_text="none"
    )
    password_hash: str | None = setting(
        None, "scrypt hash of the password (made by comptoir from the above).", cli=False
    )
    session_idle: float = setting(
        2 * 3600.0,
        "A login ends after this long without a request.",
        default_text="2h",
        minimum=1,
        parse=parse_duration,
    )
    session_max: float = setting(
        7 * 86400.0,
        "A login ends this long after it was made, however active.",
        default_text="7d",
        minimum=1,
        parse=parse_duration,
    )


@dataclass(frozen=True)
class SiteConfig:
    """One site: a kind, its options, and the host names and path prefix it answers on."""

    kind: str
    options: Any
    # Host names matched against the `Host:` header; empty means "any host".
    hosts: tuple[str, ...] = ()
    # Mount point; the site sees paths relative to it.
    path: str = "/"
    # Answers requests no other site matches.
    default: bool = False
    # Human label for the banner (the TOML file's name for the site, or the kind).
    name: str = ""


@dataclass(frozen=True)
class Config:
    """Everything `Server` needs to run."""

    server: ServerOptions = field(default_factory=ServerOptions)
    sites: tuple[SiteConfig, ...] = ()
