"""HTTPS for a run: the certificate and key granian serves, from the local CA or from the user.

`prepare_tls` runs once in the main process before the workers start. With `--tls` alone it issues
a fresh leaf from the local CA (ca.py) for every name the server may be reached by; with
`--cert/--key` it loads the user's files, checks them, and writes the key as unencrypted PKCS#8 to
the run's private folder (mode 0600), whatever PEM form it came in (PKCS#8, traditional EC or RSA,
encrypted or not): granian then reads one form only, and a bad file is one clear line at startup
instead of a failing worker.
"""

from __future__ import annotations

import datetime as dt
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from comptoir.config import ALL_INTERFACES, Config, ServerOptions
from comptoir.hosts import normalize_host, url_host, wildcard_under_top_level
from comptoir.netinfo import lan_addresses

if TYPE_CHECKING:
    from comptoir.security.ca import LocalCA

KEY_PASSWORD_ENV = "COMPTOIR_KEY_PASSWORD"
# Names every local leaf carries, whatever the machine. Not `*.localhost`: clients refuse a
# wildcard directly under a top-level name, so each name under .localhost is named (--tls-name).
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class TLSFiles:
    """The certificate chain and key granian serves, written to the run's folder."""

    cert: Path
    key: Path
    # The local CA that issued the leaf; None when the user brought the certificate.
    ca: LocalCA | None = None

    @property
    def user_provided(self) -> bool:
        """True for a certificate the user brought (--cert), False for the local CA's leaf."""
        return self.ca is None


def tls_enabled(options: ServerOptions) -> bool:
    """True when the server speaks HTTPS (--tls, or a certificate given)."""
    return options.tls or options.cert is not None


def check_tls_options(options: ServerOptions) -> list[str]:
    """Problems with the TLS options that stop the server from starting."""
    problems = []
    if options.key is not None and options.cert is None:
        problems.append("--key needs --cert")
    if options.key_password is not None and options.cert is None:
        problems.append("--key-password needs --cert and --key")
    if options.tls_name:
        if options.cert is not None:
            problems.append("--tls-name names hosts in the local CA's certificate, not in --cert's")
        elif not options.tls:
            problems.append("--tls-name needs --tls")
    if options.redirect_http is not None:
        if not tls_enabled(options):
            problems.append("--redirect-http needs HTTPS (--tls or --cert)")
        elif options.redirect_http == options.port and options.port != 0:
            problems.append("--redirect-http must be another port than --port")
    return problems


def leaf_names(config: Config) -> list[str]:
    """Every name a local leaf must cover: loopback, this machine, its LAN addresses, site hosts.

    Each name served is named, as the demo's sites are: a wildcard directly under a top-level
    name (`*.localhost`) is left out, clients refuse it; the `www` name the banner prints for a
    wildcard host is in; --tls-name adds the names a site answering any host is reached by.
    """
    names = list(LOCAL_NAMES)
    hostname = socket.gethostname()
    if hostname:
        names.append(hostname)
        # mDNS (Bonjour/Avahi) answers the short host name under .local.
        names.append(hostname.split(".")[0] + ".local")
    host = config.server.host
    if host not in (ALL_INTERFACES, "", "0.0.0.0"):
        names.append(host)
    names.extend(a.ip for a in lan_addresses())
    names.extend(config.server.tls_name)
    for site in config.sites:
        for h in site.hosts:
            normalized = normalize_host(h, wildcard=True)
            if normalized:
                names.append(url_host(normalized))
                if not wildcard_under_top_level(normalized):
                    names.append(normalized)
    return list(dict.fromkeys(names))


def prepare_tls(
    config: Config, run_dir: Path, ca_dir: Path | None = None, now: dt.datetime | None = None
) -> TLSFiles | None:
    """Write the certificate and key for this run into `run_dir`; None when TLS is off."""
    options = config.server
    if not tls_enabled(options):
        return None
    # cryptography is imported only when HTTPS is on: it is slow to import, on every worker too.
    from comptoir.security.ca import issue_leaf, load_or_create_ca, write_secret
    from comptoir.security.certfiles import load_user_certificate

    cert_path, key_path = run_dir / "tls-cert.pem", run_dir / "tls-key.pem"
    if options.cert is not None:
        chain, key = load_user_certificate(options.cert, options.key, options.key_password, now)
        ca: LocalCA | None = None
    else:
        ca = load_or_create_ca(ca_dir)
        chain, key = issue_leaf(ca, leaf_names(config), now=now)
    write_secret(cert_path, chain)
    write_secret(key_path, key)
    return TLSFiles(cert_path, key_path, ca)
