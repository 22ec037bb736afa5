"""The startup banner: URLs (loopback, LAN, one group per site), the QR code, quiet, TLS's CA."""

from __future__ import annotations

import dataclasses
import io
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from comptoir.banner import print_banner, qr_text
from comptoir.config import Config, ServerOptions
from comptoir.demo import SITES, demo_config
from comptoir.netinfo import Address
from comptoir.security.tls import prepare_tls
from comptoir.server import Server, SiteURL, listen_urls
from comptoir.sites.static import StaticOptions
from comptoir.sitesfile import load_sites_file
from tests.conftest import make_config

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


# --- URLs of every interface, the QR code -----------------------------------------------------


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


def urls_and_port(config: Config) -> tuple[list[SiteURL], int]:
    """The URLs the banner would show for `config`, and the port bound for them (then closed)."""
    server = Server(config)
    try:
        return server.urls(), server.bind().getsockname()[1]
    finally:
        server.bind().close()


# --- sites.toml: one group per site -----------------------------------------------------------


def test_banner_groups_urls_by_site_and_quiet_prints_one_per_host_name() -> None:
    config = load_sites_file(EXAMPLES / "sites.toml")
    config = dataclasses.replace(config, server=ServerOptions(host="127.0.0.1", port=0))
    urls, port = urls_and_port(config)
    err = io.StringIO()
    print_banner(config, urls, err=err)
    banner = [line.rstrip() for line in err.getvalue().splitlines()]
    assert banner[1:-1] == [
        "  site-a",
        f"    http://site-a.localhost:{port}/",
        f"    http://www.site-a.localhost:{port}/",
        "  site-b",
        f"    http://site-b.localhost:{port}/docs/",
        "  fallback  (default: any other host name)",
        f"    http://127.0.0.1:{port}/",
    ]
    out = io.StringIO()
    print_banner(dataclasses.replace(config, server=ServerOptions(quiet=True)), urls, out=out)
    assert out.getvalue().splitlines() == [
        f"http://site-a.localhost:{port}/",
        f"http://www.site-a.localhost:{port}/",
        f"http://site-b.localhost:{port}/docs/",
        f"http://127.0.0.1:{port}/",
    ]


def test_banner_shows_a_named_default_site_at_the_machine_addresses_too(tmp_path: Path) -> None:
    config = demo_config(ServerOptions(host="127.0.0.1", port=0), tmp_path)
    urls, port = urls_and_port(config)
    err = io.StringIO()
    print_banner(config, urls, err=err)
    assert [line.rstrip() for line in err.getvalue().splitlines()][1:5] == [
        "  www  (default: any other host name)",
        f"    http://www.localhost:{port}/",
        f"    http://127.0.0.1:{port}/",
        "  files",
    ]
    out = io.StringIO()
    quiet = dataclasses.replace(config, server=ServerOptions(quiet=True))
    print_banner(quiet, urls, out=out)
    # One URL per demo site, with the path its kind adds (a share's token), the default only once.
    assert out.getvalue().splitlines() == [
        f"http://{s.host}:{port}{s.path(tmp_path)}" for s in SITES
    ]
    assert f"http://share.localhost:{port}/sample-share-link/" in out.getvalue()


# --- TLS --------------------------------------------------------------------------------------


def test_banner_shows_the_ca_path_fingerprint_and_how_to_trust_it(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = Config(server=ServerOptions(tls=True))
    files = prepare_tls(config, run_dir, ca_dir=tmp_path / "data")
    assert files is not None and files.ca is not None
    err = io.StringIO()
    from comptoir.server import SiteURL

    print_banner(config, [SiteURL("static", "https://127.0.0.1:1/", True)], err=err, tls=files)
    text = err.getvalue()
    assert str(files.ca.cert_path) in text
    assert files.ca.fingerprint in text
    assert "comptoir ca install" in text
    assert f"curl --cacert {files.ca.cert_path}" in text


# --- start-up cost ------------------------------------------------------------------------------


def test_a_quiet_start_without_tls_imports_neither_rich_segno_nor_cryptography(
    tmp_path: Path,
) -> None:
    """They take about 0.4 s to import: scripts and tests starting servers with --quiet skip it."""
    code = f"""
import io, sys
from pathlib import Path
from comptoir.banner import print_banner
from comptoir.config import Config, ServerOptions
from comptoir.security.tls import prepare_tls
from comptoir.server import SiteURL

config = Config(server=ServerOptions(quiet=True))
assert prepare_tls(config, Path({str(tmp_path)!r})) is None
print_banner(config, [SiteURL("static", "http://127.0.0.1:1/", True)], out=io.StringIO())
print(sorted(m for m in ("rich", "segno", "cryptography") if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_receive_says_in_the_banner_where_files_are_saved(tmp_path: Path) -> None:
    from comptoir.server import SiteURL
    from comptoir.sites.receive import ReceiveOptions

    options = ReceiveOptions(root=tmp_path, token="t0ken-for-tests_123")
    urls = [SiteURL("receive", "http://127.0.0.1:8000/t0ken-for-tests_123/", True)]
    out, err = io.StringIO(), io.StringIO()
    print_banner(make_config("receive", options, quiet=False), urls, out=out, err=err)
    lines = err.getvalue().splitlines()
    [at] = [i for i, line in enumerate(lines) if "/t0ken-for-tests_123/" in line]
    assert lines[at + 1] == f"    saves into {tmp_path.resolve()}"
    # --quiet: the URL alone, for scripts.
    out, err = io.StringIO(), io.StringIO()
    print_banner(make_config("receive", options, quiet=True), urls, out=out, err=err)
    assert out.getvalue() == "http://127.0.0.1:8000/t0ken-for-tests_123/\n"
    assert err.getvalue() == ""
