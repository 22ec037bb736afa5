"""HTTPS without a server: the local CA, leaves, users' certificates, trust stores, redirect."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import os
import re
import socket
import stat
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store

from comptoir.cli import main
from comptoir.config import Config, ServerOptions, SiteConfig
from comptoir.errors import ConfigError, ConfigProblems
from comptoir.hosts import certificate_name
from comptoir.security import truststore
from comptoir.security.ca import (
    CA_CERT_FILE,
    CA_KEY_FILE,
    LocalCA,
    data_dir,
    issue_leaf,
    load_ca,
    load_or_create_ca,
)
from comptoir.security.certfiles import load_user_certificate
from comptoir.security.redirect import (
    RedirectToHTTPS,
    https_location,
    new_connection,
    redirect_answer,
)
from comptoir.security.tls import check_tls_options, leaf_names, prepare_tls
from comptoir.server import Server
from comptoir.sites.static import StaticOptions
from comptoir.sitesfile import parse_sites
from tests.conftest import need_tool

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def ca(tmp_path: Path) -> LocalCA:
    """A local CA in a temporary data folder."""
    return load_or_create_ca(tmp_path / "data")


def verify_leaf(ca: LocalCA, chain_pem: bytes, name: str) -> None:
    """Verify a server chain for `name` with only the local CA trusted (raises if invalid)."""
    leaf = x509.load_pem_x509_certificates(chain_pem)[0]
    verifier = PolicyBuilder().store(Store([ca.cert])).build_server_verifier(_subject(name))
    verifier.verify(leaf, [])


def _subject(name: str) -> x509.DNSName | x509.IPAddress:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


# --- the local CA ----------------------------------------------------------------------------


def test_data_dir_follows_the_environment(tmp_path: Path) -> None:
    assert data_dir({"COMPTOIR_DATA_DIR": str(tmp_path)}) == tmp_path
    assert data_dir({"XDG_DATA_HOME": "/x/share"}) == Path("/x/share/comptoir")
    assert data_dir({}) == Path.home() / ".local" / "share" / "comptoir"


def test_ca_is_made_once_with_private_files(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    ca = load_or_create_ca(folder)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / CA_KEY_FILE).stat().st_mode) == 0o600
    assert ca.cert_path == folder / CA_CERT_FILE
    again = load_or_create_ca(folder)
    assert again.fingerprint == ca.fingerprint
    assert load_ca(folder) is not None
    assert load_ca(tmp_path / "none") is None


def test_ca_certificate_is_a_root_for_leaves_only(ca: LocalCA) -> None:
    cert = ca.cert
    assert ca.name.startswith("comptoir local CA ")
    assert "@" in ca.name
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.key_cert_sign and ku.crl_sign and not ku.digital_signature
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert dt.timedelta(days=3649) < lifetime < dt.timedelta(days=3652)
    assert ca.fingerprint.count(":") == 31
    digest = cert.fingerprint(hashes.SHA256()).hex().upper()
    assert ca.fingerprint.replace(":", "") == digest


def test_broken_ca_files_are_one_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    load_or_create_ca(folder)
    (folder / CA_KEY_FILE).write_text("garbage")
    with pytest.raises(ConfigError, match="unreadable"):
        load_or_create_ca(folder)


def test_unwritable_data_dir_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="cannot create the local CA"):
        load_or_create_ca(blocker / "data")


def test_leaf_covers_the_names_and_verifies(ca: LocalCA) -> None:
    names = ["localhost", "*.localhost", "127.0.0.1", "::1", "myhost", "myhost.local", "café.test"]
    chain, key_pem = issue_leaf(ca, names, now=NOW)
    leaf = x509.load_pem_x509_certificate(chain)
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {
        "localhost",
        "*.localhost",
        "myhost",
        "myhost.local",
        "xn--caf-dma.test",
    }
    assert {str(a) for a in san.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert leaf.not_valid_after_utc - NOW == dt.timedelta(days=30)
    assert leaf.issuer == ca.cert.subject
    key = serialization.load_pem_private_key(key_pem, None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.public_key() == leaf.public_key()
    # Verified at a time within its validity (the fixed NOW is in the CA's future).
    for name in ("localhost", "myhost.local", "127.0.0.1", "::1"):
        leaf_now, _ = issue_leaf(ca, [name])
        verify_leaf(ca, leaf_now, name)


def test_leaf_names_cover_machine_lan_and_sites() -> None:
    config = Config(
        server=ServerOptions(host="::"),
        sites=(SiteConfig("static", StaticOptions(), hosts=("Blog.Example.COM", "*.apps.test")),),
    )
    names = leaf_names(config)
    hostname = socket.gethostname()
    for expected in ("localhost", "127.0.0.1", "::1", hostname):
        assert expected in names
    assert hostname.split(".")[0] + ".local" in names
    assert "blog.example.com" in names and "*.apps.test" in names
    from comptoir.netinfo import lan_addresses

    for address in lan_addresses():
        assert address.ip in names


def test_leaf_names_are_the_names_served_never_a_wildcard_under_a_top_level_name() -> None:
    # Clients refuse `*.localhost` (a wildcard must have two labels after it): the leaf names
    # every host served instead — the sites' hosts, the www name the banner prints for a
    # wildcard, and the --tls-name names.
    config = Config(
        server=ServerOptions(tls=True, tls_name=("api.localhost", "*.dev.test", "10.1.2.3")),
        sites=(
            SiteConfig("static", StaticOptions(), hosts=("*.localhost", "Blog.Localhost")),
            SiteConfig("static", StaticOptions(), hosts=("*.apps.test",), path="/x"),
        ),
    )
    names = leaf_names(config)
    assert not [n for n in names if n.startswith("*.") and n.count(".") == 1], names
    for expected in (
        "localhost",
        "www.localhost",
        "blog.localhost",
        "api.localhost",
        "*.dev.test",
        "10.1.2.3",
        "*.apps.test",
        "www.apps.test",
    ):
        assert expected in names


def test_the_leaf_verifies_for_the_names_served(tmp_path: Path) -> None:
    config = Config(
        server=ServerOptions(tls=True, tls_name=("files.localhost",)),
        sites=(SiteConfig("static", StaticOptions(), hosts=("*.localhost",)),),
    )
    files = prepare_tls(config, tmp_path, ca_dir=tmp_path / "data")
    assert files is not None and files.ca is not None
    chain = files.cert.read_bytes()
    for name in ("www.localhost", "files.localhost", "localhost", "127.0.0.1"):
        verify_leaf(files.ca, chain, name)
    leaf = x509.load_pem_x509_certificate(chain)
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "*.localhost" not in san.get_values_for_type(x509.DNSName)


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("WWW.Localhost.", "www.localhost"),
        ("*.apps.test", "*.apps.test"),
        ("[::1]", "::1"),
        ("192.168.1.20", "192.168.1.20"),
        ("café.test", "xn--caf-dma.test"),
    ],
)
def test_tls_names_are_read_in_canonical_form(given: str, shown: str) -> None:
    assert certificate_name(given) == shown


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("*.localhost", "clients refuse a wildcard directly under a top-level name"),
        ("*", "not a host name or IP address"),
        ("a b.test", "not a host name or IP address"),
        ("a.test:8443", "not a host name or IP address"),
        ("", "not a host name or IP address"),
    ],
)
def test_bad_tls_names_are_refused(given: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        certificate_name(given)


def test_prepare_tls_with_the_local_ca(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = Config(server=ServerOptions(tls=True))
    files = prepare_tls(config, run_dir, ca_dir=tmp_path / "data")
    assert files is not None and files.ca is not None and not files.user_provided
    for path in (files.cert, files.key):
        assert path.parent == run_dir
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    verify_leaf(files.ca, files.cert.read_bytes(), "localhost")
    assert prepare_tls(Config(), run_dir) is None


# --- certificates users bring ----------------------------------------------------------------


def make_user_cert(
    tmp_path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, days: int = 30
) -> tuple[Path, x509.Certificate, x509.Certificate]:
    """A test CA and a leaf for example.test signed by it; returns (chain file, leaf, CA)."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    now = dt.datetime.now(dt.UTC)
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "example.test")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(now - dt.timedelta(days=2))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("example.test"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    chain = tmp_path / "chain.pem"
    chain.write_bytes(
        leaf.public_bytes(serialization.Encoding.PEM)
        + ca_cert.public_bytes(serialization.Encoding.PEM)
    )
    return chain, leaf, ca_cert


def key_forms() -> list[tuple[str, str, str | None]]:
    """(key type, PEM form, password) combinations users bring."""
    return [
        ("ec", "pkcs8", None),
        ("ec", "traditional", None),
        ("rsa", "traditional", None),
        ("rsa", "pkcs8", None),
        ("ec", "pkcs8-encrypted", "hunter2"),
        ("rsa", "traditional-encrypted", "hunter2"),
    ]


def write_key(
    path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, form: str, password: str | None
) -> bytes:
    """Write `key` to `path` in one PEM form; return the bytes."""
    fmt = (
        serialization.PrivateFormat.PKCS8
        if form.startswith("pkcs8")
        else serialization.PrivateFormat.TraditionalOpenSSL
    )
    enc: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode())
        if password
        else serialization.NoEncryption()
    )
    data = key.private_bytes(serialization.Encoding.PEM, fmt, enc)
    path.write_bytes(data)
    return data


def new_key(kind: str) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
    """A fresh private key of the given kind."""
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


@pytest.mark.parametrize(("kind", "form", "password"), key_forms())
def test_user_keys_in_every_common_form_are_normalised(
    tmp_path: Path, kind: str, form: str, password: str | None
) -> None:
    key = new_key(kind)
    chain_file, leaf, _ = make_user_cert(tmp_path, key)
    data = write_key(tmp_path / "key.pem", key, form, password)
    marker = {
        ("ec", "traditional"): b"BEGIN EC PRIVATE KEY",
        ("rsa", "traditional"): b"BEGIN RSA PRIVATE KEY",
        ("ec", "pkcs8-encrypted"): b"BEGIN ENCRYPTED PRIVATE KEY",
    }.get((kind, form))
    if marker:
        assert marker in data
    chain, key_pem = load_user_certificate(chain_file, tmp_path / "key.pem", password)
    assert key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    loaded = serialization.load_pem_private_key(key_pem, None)
    assert loaded.public_key() == leaf.public_key()
    assert len(x509.load_pem_x509_certificates(chain)) == 2


def test_key_inside_the_certificate_file(tmp_path: Path) -> None:
    key = new_key("ec")
    chain_file, _, _ = make_user_cert(tmp_path, key)
    key_data = write_key(tmp_path / "key.pem", key, "traditional", None)
    combined = tmp_path / "combined.pem"
    combined.write_bytes(chain_file.read_bytes() + key_data)
    _, key_pem = load_user_certificate(combined, None)
    assert b"BEGIN PRIVATE KEY" in key_pem


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("encrypted-no-password", "is encrypted: give --key-password or COMPTOIR_KEY_PASSWORD"),
        ("wrong-password", "wrong --key-password"),
        ("mismatch", "does not match the certificate"),
        ("not-a-key", "holds no private key"),
        ("not-a-cert", "holds no certificate in PEM form"),
        ("missing-cert", "cannot read --cert"),
        ("missing-key", "cannot read --key"),
        ("expired", "expired on"),
        ("no-key-anywhere", "holds no private key: give --key"),
    ],
)
def test_bad_user_files_are_one_clear_error(tmp_path: Path, case: str, message: str) -> None:
    key = new_key("ec")
    chain_file, _, _ = make_user_cert(tmp_path, key, days=-1 if case == "expired" else 30)
    key_file: Path | None = tmp_path / "key.pem"
    assert key_file is not None
    password = None
    if case in ("encrypted-no-password", "wrong-password"):
        write_key(key_file, key, "pkcs8-encrypted", "right")
        password = "wrong" if case == "wrong-password" else None
    elif case == "mismatch":
        write_key(key_file, new_key("ec"), "pkcs8", None)
    elif case == "not-a-key":
        key_file.write_text("hello\n")
    elif case == "not-a-cert":
        write_key(key_file, key, "pkcs8", None)
        chain_file.write_text("not a certificate\n")
    elif case == "missing-cert":
        chain_file = tmp_path / "nope.pem"
    elif case == "missing-key":
        key_file = tmp_path / "nope.pem"
    elif case == "no-key-anywhere":
        key_file = None
    else:
        write_key(key_file, key, "pkcs8", None)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")) as exc:
        load_user_certificate(chain_file, key_file, password)
    assert "\n" not in str(exc.value)


def test_tls_option_problems() -> None:
    assert check_tls_options(ServerOptions()) == []
    assert check_tls_options(ServerOptions(tls=True, redirect_http=8080)) == []
    assert check_tls_options(ServerOptions(key=Path("k"))) == ["--key needs --cert"]
    assert check_tls_options(ServerOptions(redirect_http=8080)) == [
        "--redirect-http needs HTTPS (--tls or --cert)"
    ]
    assert check_tls_options(ServerOptions(tls=True, port=8443, redirect_http=8443)) == [
        "--redirect-http must be another port than --port"
    ]
    assert check_tls_options(ServerOptions(tls=True, tls_name=("www.localhost",))) == []
    assert check_tls_options(ServerOptions(tls_name=("www.localhost",))) == [
        "--tls-name needs --tls"
    ]
    assert check_tls_options(
        ServerOptions(tls=True, cert=Path("c"), tls_name=("www.localhost",))
    ) == ["--tls-name names hosts in the local CA's certificate, not in --cert's"]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--tls-name", "www.localhost"], "--tls-name needs --tls"),
        (["--tls", "--tls-name", "*.localhost"], "clients refuse a wildcard directly under"),
        (["--tls", "--tls-name", "a b"], "not a host name or IP address"),
    ],
)
def test_cli_bad_tls_name_is_one_line_exit_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    words: str,
) -> None:
    monkeypatch.setenv("COMPTOIR_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(SystemExit) as exc:
        main(["serve", str(tmp_path), "--port", "0", *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err


def test_sites_toml_names_a_bad_tls_name_with_its_line(tmp_path: Path) -> None:
    text = (
        '[server]\ntls = true\ntls-name = ["www.localhost", "*.localhost"]\n\n'
        '[[site]]\nkind = "echo"\ndefault = true\n'
    )
    with pytest.raises(ConfigProblems) as exc:
        parse_sites(text, "sites.toml", tmp_path)
    assert exc.value.problems == [
        "sites.toml:3: server.tls-name: *.localhost: clients refuse a wildcard directly under"
        " a top-level name; name each host (e.g. www.localhost)"
    ]
    ok = parse_sites(text.replace('"*.localhost"', '"API.localhost"'), "sites.toml", tmp_path)
    assert ok.server.tls_name == ("www.localhost", "api.localhost")


def test_cli_bad_cert_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "bad.pem").write_text("nope")
    monkeypatch.setenv("COMPTOIR_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(SystemExit) as exc:
        main(["serve", str(tmp_path), "--port", "0", "--cert", str(tmp_path / "bad.pem")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "holds no certificate in PEM form" in err


def test_cli_redirect_without_tls_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["serve", str(tmp_path), "--port", "0", "--redirect-http", "0"])
    assert exc.value.code == 2
    assert "--redirect-http needs HTTPS" in capsys.readouterr().err


# --- URLs and banner -------------------------------------------------------------------------


def test_urls_are_https_under_tls(tmp_path: Path) -> None:
    config = Config(
        server=ServerOptions(host="127.0.0.1", port=0, tls=True),
        sites=(
            SiteConfig("static", StaticOptions(root=tmp_path), name="a"),
            SiteConfig("static", StaticOptions(root=tmp_path), hosts=("blog.test",), name="b"),
        ),
    )
    server = Server(config)
    try:
        urls = [u.url for u in server.urls()]
    finally:
        assert server.sock is not None
        server.sock.close()
    assert urls and all(u.startswith("https://") for u in urls)
    assert any(u.startswith("https://blog.test:") for u in urls)


# --- redirect to HTTPS -----------------------------------------------------------------------


def test_https_location() -> None:
    assert https_location("Example.COM:8080", "/a?b=1", 8443) == "https://example.com:8443/a?b=1"
    assert https_location("example.com", "/", 443) == "https://example.com/"
    assert https_location("[::1]:80", "/x", 8443) == "https://[::1]:8443/x"
    assert https_location("h", "http://h:80/p?q", 8443) == "https://h:8443/p?q"
    assert https_location("bad host", "/", 443) is None
    assert https_location("h", "*", 443) is None


def answer_to(head: bytes) -> bytes | None:
    """What the redirect listener answers to these first bytes of a connection."""
    conn = new_connection()
    conn.receive_data(head)
    return redirect_answer(conn, 8443)


def test_redirect_answer() -> None:
    answer = answer_to(b"GET /a%20b?x=1 HTTP/1.1\r\nHost: 127.0.0.1:80\r\n\r\n")
    assert answer is not None
    assert answer.startswith(b"HTTP/1.1 308 Permanent Redirect\r\n")
    assert b"\r\nLocation: https://127.0.0.1:8443/a%20b?x=1\r\n" in answer
    assert answer.endswith(b"\r\n\r\nUse https://127.0.0.1:8443/a%20b?x=1\n")
    head = answer_to(b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert head is not None and head.endswith(b"\r\n\r\n")
    assert b"\r\nContent-Length: 20\r\n" in head  # the length of the body GET would get
    # A head still arriving: no answer yet.
    assert answer_to(b"GET / HTTP/1.1\r\nHost: h\r\n") is None


@pytest.mark.parametrize(
    "head",
    [
        b"GET / HTTP/1.1\r\n\r\n",  # no Host
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: bad host\r\n\r\n",
        b"GET * HTTP/1.1\r\nHost: h\r\n\r\n",
        b"garbage\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    ],
)
def test_redirect_answers_400_to_what_it_cannot_redirect(head: bytes) -> None:
    answer = answer_to(head)
    assert answer is not None and answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"\r\nConnection: close\r\n" in answer


def test_redirect_answers_431_to_a_huge_head() -> None:
    answer = answer_to(b"GET / HTTP/1.1\r\nHost: h\r\nX: " + b"a" * 20_000)
    assert answer is not None
    assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")


async def test_redirect_service_answers_on_a_real_socket() -> None:
    service = RedirectToHTTPS("127.0.0.1", 0, 8443)
    addresses = await service.start()
    try:
        assert len(addresses) == 1 and addresses[0].startswith("http://127.0.0.1:")
        port = int(addresses[0].rstrip("/").rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /up?x=1 HTTP/1.1\r\nHost: localhost:" + str(port).encode() + b"\r\n\r\n"
        )
        await writer.drain()
        answer = await reader.read()
        writer.close()
        assert answer.startswith(b"HTTP/1.1 308 ")
        assert b"Location: https://localhost:8443/up?x=1\r\n" in answer
    finally:
        await service.stop()


async def test_redirect_of_a_large_post_is_not_a_reset() -> None:
    """The body the redirect does not need is drained: the client sees the 308, not a reset."""
    service = RedirectToHTTPS("127.0.0.1", 0, 8443)
    [address] = await service.start()
    try:
        async with httpx.AsyncClient() as c:
            r = await c.post(address + "up?x=1", content=b"x" * 4_000_000)
        assert r.status_code == 308
        assert r.headers["location"] == "https://127.0.0.1:8443/up?x=1"
    finally:
        await service.stop()


async def test_redirect_listener_limits_connections_and_idle_clients(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from comptoir.security import redirect

    monkeypatch.setattr(redirect, "READ_TIMEOUT", 0.3)
    service = RedirectToHTTPS("127.0.0.1", 0, 8443, max_connections=2)
    [address] = await service.start()
    port = int(address.rstrip("/").rsplit(":", 1)[1])
    try:
        silent = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
        await asyncio.sleep(0.05)
        # A third client while two are open: closed at once, without an answer.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(reader.read(), 1) == b""
        writer.close()
        # The silent ones are dropped after READ_TIMEOUT, making room again.
        for r, w in silent:
            assert await asyncio.wait_for(r.read(), 2) == b""
            w.close()
        async with httpx.AsyncClient() as c:
            assert (await c.get(address + "/")).status_code == 308
    finally:
        await service.stop()


async def test_redirect_listener_answers_a_huge_head_and_drops_a_slow_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from comptoir.security import redirect

    monkeypatch.setattr(redirect, "READ_TIMEOUT", 0.5)
    service = RedirectToHTTPS("127.0.0.1", 0, 8443)
    [address] = await service.start()
    port = int(address.rstrip("/").rsplit(":", 1)[1])
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: h\r\nCookie: " + b"a" * 100_000)
        answer = await asyncio.wait_for(reader.read(), 2)
        assert answer.startswith(b"HTTP/1.1 431 ")
        writer.close()
        # A head trickling in never gets whole: the client is dropped after READ_TIMEOUT in all,
        # however often it sends a byte.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        started = time.monotonic()
        with contextlib.suppress(ConnectionError):
            for byte in b"GET / HTTP/1.1\r\nHost: h\r\nX: slow":
                writer.write(bytes([byte]))
                await writer.drain()
                if reader.at_eof():
                    break
                await asyncio.sleep(0.05)
        assert await asyncio.wait_for(reader.read(), 2) == b""
        assert time.monotonic() - started < 1.5
        writer.close()
    finally:
        await service.stop()


# --- trust stores (temporary folders only: never this machine's stores) ------------------------


def test_system_store_and_nss_dirs_follow_the_environment(tmp_path: Path) -> None:
    env = {
        "COMPTOIR_TRUST_DIR": str(tmp_path / "anchors"),
        "COMPTOIR_TRUST_REFRESH": "refresh-cmd --now",
        "COMPTOIR_NSS_DBS": f"{tmp_path / 'a'}{os.pathsep}{tmp_path / 'b'}",
    }
    store = truststore.system_store(env)
    assert store == truststore.SystemStore(
        tmp_path / "anchors" / "comptoir.crt", ("refresh-cmd", "--now")
    )
    assert truststore.nss_databases(env) == [tmp_path / "a", tmp_path / "b"]


def test_nss_databases_are_found_in_a_home(tmp_path: Path) -> None:
    chromium = tmp_path / ".pki" / "nssdb"
    firefox = tmp_path / ".mozilla" / "firefox" / "abc.default"
    for folder in (chromium, firefox, tmp_path / ".mozilla" / "firefox" / "empty"):
        folder.mkdir(parents=True)
    (chromium / "cert9.db").write_bytes(b"")
    (firefox / "cert9.db").write_bytes(b"")
    assert truststore.nss_databases({}, home=tmp_path) == [chromium, firefox]


def test_install_and_uninstall_in_temporary_stores(ca: LocalCA, tmp_path: Path) -> None:
    need_tool("certutil")
    nss = tmp_path / "nssdb"
    nss.mkdir()
    subprocess.run(["certutil", "-N", "--empty-password", "-d", f"sql:{nss}"], check=True)
    log = tmp_path / "refreshed"
    store = truststore.SystemStore(tmp_path / "anchors" / "comptoir.crt", ("touch", str(log)))

    outcomes = truststore.install(ca, store, [nss])
    assert [o.ok for o in outcomes] == [True, True], outcomes
    assert store.anchor.read_bytes() == ca.cert_pem()
    assert log.exists()
    assert truststore.system_has(ca, store)
    assert truststore.nss_has(ca, nss)
    listing = subprocess.run(
        ["certutil", "-L", "-d", f"sql:{nss}"], capture_output=True, text=True, check=True
    ).stdout
    line = next(x for x in listing.splitlines() if x.startswith(ca.name))
    assert line.split()[-1] == "C,,"
    shown = "\n".join(truststore.describe(ca, store, [nss]))
    assert ca.fingerprint in shown and "trusted" in shown

    log.unlink()
    outcomes = truststore.uninstall(ca, store, [nss])
    assert [(o.ok, o.message) for o in outcomes] == [(True, "removed"), (True, "removed")]
    assert not store.anchor.exists() and log.exists()
    assert not truststore.nss_has(ca, nss)
    again = truststore.uninstall(ca, store, [nss])
    assert [o.message for o in again] == ["not installed", "not installed"]


def debian_store(tmp_path: Path, shipped: list[bytes]) -> tuple[truststore.SystemStore, Path]:
    """Debian's real update-ca-certificates, every folder of it moved under `tmp_path`.

    `shipped` stands for the roots the system comes with (two at least: OpenSSL's rehash would
    link a bundle of one). Returns the store and its folder of links (/etc/ssl/certs).
    """
    need_tool("update-ca-certificates")
    need_tool("openssl")
    conf, shared, local, links = (
        tmp_path / "ca-certificates.conf",
        tmp_path / "share",
        tmp_path / "local",
        tmp_path / "etc-ssl-certs",
    )
    for folder in (shared, local, links):
        folder.mkdir()
    for i, root in enumerate(shipped):
        (shared / f"shipped-{i}.crt").write_bytes(root)
    conf.write_text("".join(f"shipped-{i}.crt\n" for i in range(len(shipped))))
    refresh = (
        "update-ca-certificates",
        *("--certsconf", str(conf), "--certsdir", str(shared)),
        *("--localcertsdir", str(local), "--etccertsdir", str(links)),
        # No hooks: this machine's (Java's keystore) must not hear of a test's CA.
        *("--hooksdir", str(tmp_path / "no-hooks")),
    )
    subprocess.run(refresh, capture_output=True, check=True)
    return truststore.SystemStore(local / "comptoir.crt", refresh), links


def test_uninstall_leaves_no_dangling_link_in_debians_store(ca: LocalCA, tmp_path: Path) -> None:
    shipped = [
        make_user_cert(tmp_path, new_key("ec"))[2].public_bytes(serialization.Encoding.PEM)
        for _ in range(2)
    ]
    store, links = debian_store(tmp_path, shipped)

    def linked() -> dict[str, Path]:
        return {p.name: p.resolve() for p in links.iterdir() if p.is_symlink()}

    before = linked()
    [installed] = truststore.install(ca, store, [])
    assert installed.ok, installed
    # What install made there: comptoir.pem -> the anchor, and OpenSSL's <hash>.0 -> comptoir.pem.
    made = {name: target for name, target in linked().items() if name not in before}
    assert made["comptoir.pem"] == store.anchor
    assert any(name.endswith(".0") for name in made)
    assert set(made.values()) == {store.anchor}
    assert ca.cert_pem() in (links / "ca-certificates.crt").read_bytes()

    [removed] = truststore.uninstall(ca, store, [])
    assert (removed.ok, removed.message) == (True, "removed")
    assert not store.anchor.exists()
    # Every link install made is gone (none left dangling); the system's own roots stay.
    assert linked() == before
    assert all(p.exists() for p in links.iterdir())
    bundle = (links / "ca-certificates.crt").read_bytes()
    assert ca.cert_pem() not in bundle and all(root in bundle for root in shipped)


def test_only_debians_refresh_is_told_of_a_removal() -> None:
    debian = truststore.SystemStore(Path("/a/comptoir.crt"), ("/usr/sbin/update-ca-certificates",))
    assert debian.refresh_after_removal == ("/usr/sbin/update-ca-certificates", "--fresh")
    fedora = truststore.SystemStore(Path("/a/comptoir.crt"), ("update-ca-trust", "extract"))
    assert fedora.refresh_after_removal == ("update-ca-trust", "extract")
    assert truststore.SystemStore(Path("/a/comptoir.crt"), ()).refresh_after_removal == ()


def test_install_says_plainly_what_failed(ca: LocalCA, tmp_path: Path) -> None:
    store = truststore.SystemStore(tmp_path / "anchors" / "comptoir.crt", ("false",))
    [outcome] = truststore.install(ca, store, [])
    assert not outcome.ok
    assert "`false` failed" in outcome.message
    [unknown] = truststore.install(ca, None, [])
    assert not unknown.ok and str(ca.cert_path) in unknown.message
    mac = truststore.unknown_store_advice(ca, "darwin")
    assert "macOS keychain is not supported" in mac and str(ca.cert_path) in mac
    assert "Trusted Root" in truststore.unknown_store_advice(ca, "win32")
    need_tool("certutil")
    [_, nss] = truststore.install(ca, store, [tmp_path / "not-a-db"])
    assert not nss.ok and "certutil failed" in nss.message


def test_ca_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    need_tool("certutil")
    nss = tmp_path / "nssdb"
    nss.mkdir()
    subprocess.run(["certutil", "-N", "--empty-password", "-d", f"sql:{nss}"], check=True)
    monkeypatch.setenv("COMPTOIR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("COMPTOIR_TRUST_DIR", str(tmp_path / "anchors"))
    monkeypatch.setenv("COMPTOIR_TRUST_REFRESH", "")
    monkeypatch.setenv("COMPTOIR_NSS_DBS", str(nss))

    def run(*args: str) -> tuple[int, str]:
        with pytest.raises(SystemExit) as exc:
            main(["ca", *args])
        return int(exc.value.code or 0), capsys.readouterr().out

    assert run("uninstall") == (0, "no local CA: nothing to uninstall\n")
    assert run("path") == (0, f"{tmp_path / 'data' / 'ca.pem'}\n")
    code, out = run("install")
    assert code == 0 and out.count("ok: ") == 2
    code, out = run("show")
    assert "sha-256:" in out and out.count("trusted (") == 2
    code, out = run("uninstall")
    assert code == 0 and out.count(": removed") == 2
    assert not (tmp_path / "anchors" / "comptoir.crt").exists()
    monkeypatch.setenv("COMPTOIR_TRUST_REFRESH", "false")
    code, out = run("install")
    assert code == 1 and "FAILED: system store" in out


def test_an_expired_local_ca_is_one_clear_error(tmp_path: Path) -> None:
    # Made eleven years ago: its ten years are over.
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=11 * 365)
    ca = load_or_create_ca(tmp_path / "data", now=long_ago)
    with pytest.raises(ConfigError, match=r"the local CA expired on .*; remove .*ca"):
        issue_leaf(ca, ["localhost"])
