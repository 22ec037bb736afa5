"""HTTPS as a user runs it: real TLS clients trusting only comptoir's local CA, or the user's CA."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import LiveServer, comptoir_cmd, live_server, need_tool, read_urls, stop_server
from tests.test_tls import make_user_cert, new_key, write_key


@dataclass
class TLSRun:
    """A server started with --tls --redirect-http 0, and the CA file that signs its leaf."""

    server: LiveServer
    ca_file: Path

    @property
    def url(self) -> str:
        """The HTTPS URL."""
        return self.server.urls[0]

    @property
    def redirect_url(self) -> str:
        """The plain-HTTP redirect listener's URL."""
        return self.server.urls[1]

    @property
    def port(self) -> int:
        """The HTTPS port."""
        return int(self.url.rstrip("/").rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def tls_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSRun]:
    """One local-CA HTTPS server for the module."""
    root = tmp_path_factory.mktemp("site")
    (root / "a.txt").write_text("hello\n")
    data = tmp_path_factory.mktemp("data")
    env = {"COMPTOIR_DATA_DIR": str(data)}
    with live_server(
        "serve", str(root), "--tls", "--redirect-http", "0", url_count=2, env=env
    ) as s:
        yield TLSRun(s, data / "ca.pem")


def test_https_with_a_client_trusting_only_the_local_ca(tls_run: TLSRun) -> None:
    assert tls_run.url.startswith("https://127.0.0.1:")
    assert tls_run.redirect_url.startswith("http://127.0.0.1:")
    assert tls_run.redirect_url.endswith("/")  # printed like every other URL
    context = ssl.create_default_context(cafile=str(tls_run.ca_file))
    r = httpx.get(tls_run.url + "a.txt", verify=context)
    assert r.status_code == 200 and r.text == "hello\n"
    # The leaf names localhost too.
    r = httpx.get(f"https://localhost:{tls_run.port}/a.txt", verify=context)
    assert r.status_code == 200
    # The public roots do not vouch for it: the trust really comes from the local CA.
    with pytest.raises(httpx.ConnectError):
        httpx.get(tls_run.url + "a.txt")
    # No HSTS for a local CA's certificate, whatever the host name.
    r = httpx.get(tls_run.url + "a.txt", verify=context, headers={"Host": "example.test"})
    assert "strict-transport-security" not in r.headers


def test_curl_with_cacert_speaks_http2(tls_run: TLSRun) -> None:
    curl = need_tool("curl")

    def version(*flags: str) -> str:
        out = subprocess.run(
            [
                curl,
                "-sS",
                "--cacert",
                str(tls_run.ca_file),
                *flags,
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %{http_version}",
                tls_run.url + "a.txt",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return out.stdout

    assert version("--http2") == "200 2"
    assert version("--http1.1") == "200 1.1"


def test_tls_1_2_is_the_minimum(tls_run: TLSRun) -> None:
    openssl = need_tool("openssl")

    def handshake(*flags: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                openssl,
                "s_client",
                "-connect",
                f"127.0.0.1:{tls_run.port}",
                "-CAfile",
                str(tls_run.ca_file),
                *flags,
            ],
            input="",
            capture_output=True,
            text=True,
            timeout=30,
        )

    # SECLEVEL=0 lets this client offer TLS 1.1 at all: the refusal must come from the server.
    old = handshake("-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
    assert old.returncode != 0
    assert "alert" in old.stderr
    assert "Cipher is (NONE)" in old.stdout
    for flag, name in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
        ok = handshake(flag, "-alpn", "h2,http/1.1")
        assert ok.returncode == 0, ok.stderr
        assert f"Protocol  : {name}" in ok.stdout or f"New, {name}," in ok.stdout
        assert "Verify return code: 0 (ok)" in ok.stdout
        assert "ALPN protocol: h2" in ok.stdout


def test_plain_http_is_redirected_to_https(tls_run: TLSRun) -> None:
    r = httpx.get(tls_run.redirect_url + "a.txt?x=1&y=2")
    assert r.status_code == 308
    assert r.headers["location"] == tls_run.url + "a.txt?x=1&y=2"
    posted = httpx.post(tls_run.redirect_url + "up", content=b"data")
    assert posted.status_code == 308
    context = ssl.create_default_context(cafile=str(tls_run.ca_file))
    with httpx.Client(verify=context, follow_redirects=True) as c:
        final = c.get(tls_run.redirect_url + "a.txt")
        assert final.status_code == 200 and final.text == "hello\n"
        assert str(final.url) == tls_run.url + "a.txt"


@pytest.mark.parametrize(
    ("kind", "form", "password"),
    [
        ("rsa", "traditional", None),
        ("ec", "pkcs8-encrypted", "hunter2"),
    ],
)
def test_a_users_certificate_with_hsts(
    tmp_path: Path, kind: str, form: str, password: str | None
) -> None:
    curl = need_tool("curl")
    key = new_key(kind)
    chain, _, test_ca = make_user_cert(tmp_path, key)
    write_key(tmp_path / "key.pem", key, form, password)
    ca_file = tmp_path / "test-ca.pem"
    ca_file.write_bytes(test_ca.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "a.txt").write_text("mine\n")
    env = {"COMPTOIR_KEY_PASSWORD": password} if password else {}
    args = [
        "serve",
        str(tmp_path / "site"),
        "--cert",
        str(chain),
        "--key",
        str(tmp_path / "key.pem"),
    ]
    with live_server(*args, env=env) as srv:
        assert srv.url.startswith("https://127.0.0.1:")
        port = srv.url.rstrip("/").rsplit(":", 1)[1]

        def headers(url: str, *extra: str) -> str:
            return subprocess.run(
                [curl, "-sS", "--cacert", str(ca_file), "-D", "-", "-o", "/dev/null", *extra, url],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            ).stdout.lower()

        named = headers(
            f"https://example.test:{port}/a.txt", "--resolve", f"example.test:{port}:127.0.0.1"
        )
        assert named.startswith("http/2 200")
        assert "strict-transport-security: max-age=31536000" in named
        by_address = headers(srv.url + "a.txt")
        assert by_address.startswith("http/2 200")
        assert "strict-transport-security" not in by_address


def _issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool,
    sans: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_name, issuer_key = issuer or (name, key)
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def test_a_users_full_chain_reaches_a_client_that_trusts_only_the_root(tmp_path: Path) -> None:
    """Like Let's Encrypt's fullchain.pem: leaf + intermediate; clients know only the root."""
    openssl = need_tool("openssl")
    root_key, inter_key, leaf_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    root = _issue("test root", root_key, None, ca=True)
    inter = _issue("test intermediate", inter_key, (root.subject, root_key), ca=True)
    sans: list[x509.GeneralName] = [
        x509.DNSName("example.test"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]
    leaf = _issue("example.test", leaf_key, (inter.subject, inter_key), ca=False, sans=sans)
    pem = serialization.Encoding.PEM
    (tmp_path / "fullchain.pem").write_bytes(leaf.public_bytes(pem) + inter.public_bytes(pem))
    write_key(tmp_path / "privkey.pem", leaf_key, "traditional", None)
    (tmp_path / "root.pem").write_bytes(root.public_bytes(pem))
    site = tmp_path / "site"
    site.mkdir()
    (site / "a.txt").write_text("chained\n")
    args = ["--cert", str(tmp_path / "fullchain.pem"), "--key", str(tmp_path / "privkey.pem")]
    with live_server("serve", str(site), *args) as srv:
        context = ssl.create_default_context(cafile=str(tmp_path / "root.pem"))
        r = httpx.get(srv.url + "a.txt", verify=context)
        assert r.status_code == 200 and r.text == "chained\n"
        port = srv.url.rstrip("/").rsplit(":", 1)[1]
        root_file = str(tmp_path / "root.pem")
        shown = subprocess.run(
            [
                openssl,
                "s_client",
                "-connect",
                f"127.0.0.1:{port}",
                "-showcerts",
                "-CAfile",
                root_file,
            ],
            input="",
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
        # The server sends the intermediate with its leaf.
        assert shown.count("-----BEGIN CERTIFICATE-----") == 2
        assert "Verify return code: 0 (ok)" in shown


def test_an_encrypted_key_without_its_password_is_one_line_exit_2(tmp_path: Path) -> None:
    key = new_key("ec")
    chain, _, _ = make_user_cert(tmp_path, key)
    write_key(tmp_path / "key.pem", key, "pkcs8-encrypted", "pw")
    proc = subprocess.run(
        comptoir_cmd(
            "serve",
            str(tmp_path),
            "--port",
            "0",
            "--cert",
            str(chain),
            "--key",
            str(tmp_path / "key.pem"),
        ),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1
    assert "is encrypted: give --key-password or COMPTOIR_KEY_PASSWORD" in proc.stderr


def test_sites_toml_server_table_gives_https_password_and_redirect(tmp_path: Path) -> None:
    """`[server]` of a sites.toml turns on the same TLS and password as the flags do."""
    curl = need_tool("curl")
    (tmp_path / "blog").mkdir()
    (tmp_path / "blog" / "a.txt").write_text("blog\n")
    (tmp_path / "pw").write_text("from the file\n")
    (tmp_path / "sites.toml").write_text(
        '[server]\ntls = true\npassword-file = "pw"\nredirect-http = 0\n\n'
        '[[site]]\nname = "blog"\nhosts = ["blog.test"]\nkind = "static"\nroot = "blog"\n'
    )
    data = tmp_path / "data"
    args = ["run", str(tmp_path / "sites.toml"), "--host", "127.0.0.1", "--port", "0", "--quiet"]
    proc = subprocess.Popen(
        comptoir_cmd(*args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "COMPTOIR_DATA_DIR": str(data)},
    )
    try:
        https_url, redirect_url = read_urls(proc, 2, 20)
        port = int(https_url.rstrip("/").rsplit(":", 1)[1])
        assert https_url == f"https://blog.test:{port}/"

        def fetch(*extra: str) -> str:
            # Only the local CA is trusted: the leaf must name the site's host.
            resolve = ["--resolve", f"blog.test:{port}:127.0.0.1", https_url + "a.txt"]
            return subprocess.run(
                [
                    curl,
                    "-sS",
                    "--cacert",
                    str(data / "ca.pem"),
                    "-w",
                    " %{http_code}",
                    *extra,
                    *resolve,
                ],
                capture_output=True,
                text=True,
                timeout=30,
            ).stdout

        deadline = time.monotonic() + 20
        while (status := fetch("-o", "/dev/null")) == " 000" and time.monotonic() < deadline:
            time.sleep(0.1)  # the workers start after the URLs are printed
        assert status == " 401"
        assert fetch("-u", "any:from the file") == "blog\n 200"
        r = httpx.get(redirect_url + "a.txt", headers={"Host": "blog.test"})
        assert r.status_code == 308
        assert r.headers["location"] == f"https://blog.test:{port}/a.txt"
    finally:
        stop_server(proc)


def _curl_by_name(curl: str, ca_file: Path, port: int, name: str, path: str = "a.txt") -> str:
    """`curl --cacert CA https://NAME:PORT/PATH --resolve NAME:PORT:127.0.0.1`: body and status."""
    return subprocess.run(
        [
            curl,
            "-sS",
            "--cacert",
            str(ca_file),
            "-w",
            " %{http_code}",
            "--resolve",
            f"{name}:{port}:127.0.0.1",
            f"https://{name}:{port}/{path}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout


def test_tls_names_make_names_under_localhost_reachable_by_curl(tmp_path: Path) -> None:
    """A site answering any host: --tls-name puts www.localhost in the leaf, as the demo does."""
    curl = need_tool("curl")
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "a.txt").write_text("named\n")
    data = tmp_path / "data"
    args = ["serve", str(tmp_path / "site"), "--tls", "--tls-name", "www.localhost"]
    with live_server(*args, env={"COMPTOIR_DATA_DIR": str(data)}) as srv:
        port = int(srv.url.rstrip("/").rsplit(":", 1)[1])
        assert _curl_by_name(curl, data / "ca.pem", port, "www.localhost") == "named\n 200"
        # A name nobody gave is not in the leaf: curl refuses it (no `*.localhost` to fall on).
        assert _curl_by_name(curl, data / "ca.pem", port, "other.localhost") == " 000"


def test_the_url_printed_for_a_wildcard_host_is_in_the_leaf(tmp_path: Path) -> None:
    """hosts = ["*.localhost"] prints https://www.localhost:PORT/: curl must accept that name."""
    curl = need_tool("curl")
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "a.txt").write_text("wild\n")
    (tmp_path / "sites.toml").write_text(
        '[server]\ntls = true\ntls-name = ["files.localhost"]\n\n'
        '[[site]]\nhosts = ["*.localhost"]\nkind = "static"\nroot = "site"\n'
    )
    data = tmp_path / "data"
    args = ["run", str(tmp_path / "sites.toml"), "--host", "127.0.0.1", "--port", "0", "--quiet"]
    proc = subprocess.Popen(
        comptoir_cmd(*args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "COMPTOIR_DATA_DIR": str(data)},
    )
    try:
        [url] = read_urls(proc, 1, 20)
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        assert url == f"https://www.localhost:{port}/"
        deadline = time.monotonic() + 20
        # The workers start after the URLs are printed; `localhost` is in every leaf (no site
        # answers that name: 421).
        while _curl_by_name(curl, data / "ca.pem", port, "localhost") == " 000":
            assert time.monotonic() < deadline, "the server never answered"
            time.sleep(0.1)
        assert _curl_by_name(curl, data / "ca.pem", port, "www.localhost") == "wild\n 200"
        assert _curl_by_name(curl, data / "ca.pem", port, "files.localhost") == "wild\n 200"
    finally:
        stop_server(proc)
