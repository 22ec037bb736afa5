"""`comptoir run sites.toml` over real sockets: Host matching, path mounts, Host-less requests."""

from __future__ import annotations

import re
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from comptoir.sitesfile import load_sites_file
from tests.live.vhosts import SitesServer, sites_server

SITES_TOML = """
# The default site comes first so that the first URL printed is http://127.0.0.1:PORT/.
[[site]]
name = "fallback"
default = true
kind = "static"
root = "fallback"

[[site]]
name = "a"
hosts = ["a.test", "*.a.test", "bücher.test"]
kind = "static"
root = "a"

[[site]]
name = "docs"
hosts = ["a.test"]
path = "/docs"
kind = "static"
root = "docs"
listing = true

[[site]]
name = "deep"
hosts = ["a.test"]
path = "/docs/deep"
kind = "static"
root = "deep"
"""


def make_sites(folder: Path) -> Path:
    """Folders with one telling index.html each, and a sites.toml naming them."""
    for name in ("fallback", "a", "deep"):
        (folder / name).mkdir()
        (folder / name / "index.html").write_text(f"site {name}\n")
    (folder / "docs" / "guide").mkdir(parents=True)
    (folder / "docs" / "guide" / "intro.txt").write_text("intro\n")
    (folder / "docs" / "a b.txt").write_text("spaced\n")
    path = folder / "sites.toml"
    path.write_text(SITES_TOML, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SitesServer]:
    """One server for the module: starting one per test would dominate the run time."""
    path = make_sites(tmp_path_factory.mktemp("sites"))
    with sites_server("run", str(path), url_count=6) as srv:
        yield srv


def raw_request(port: int, request: bytes) -> bytes:
    """Send bytes as they are (no client fills in a Host header) and return the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def test_urls_printed_per_site(server: SitesServer) -> None:
    port = server.port
    assert server.urls == [
        f"http://127.0.0.1:{port}/",
        f"http://a.test:{port}/",
        f"http://www.a.test:{port}/",
        f"http://bücher.test:{port}/",
        f"http://a.test:{port}/docs/",
        f"http://a.test:{port}/docs/deep/",
    ]


@pytest.mark.parametrize(
    ("host", "site"),
    [
        ("a.test", "a"),
        ("A.TEST", "a"),
        ("a.test:8080", "a"),
        ("a.test.", "a"),
        ("A.Test.:80", "a"),
        ("www.a.test", "a"),
        ("docs.A.test", "a"),
        ("xn--bcher-kva.test", "a"),
        ("XN--BCHER-KVA.TEST.", "a"),
        # One label only under a wildcard; everything else reaches the default site.
        ("x.y.a.test", "fallback"),
        ("unknown.test", "fallback"),
        ("127.0.0.1", "fallback"),
        ("[::1]:8000", "fallback"),
    ],
)
def test_host_header_picks_the_site(server: SitesServer, host: str, site: str) -> None:
    r = server.get(host)
    assert r.status_code == 200
    assert r.text == f"site {site}\n"


def test_unicode_host_sent_as_utf8(server: SitesServer) -> None:
    answer = raw_request(
        server.port, "GET / HTTP/1.1\r\nHost: BÜCHER.test\r\nConnection: close\r\n\r\n".encode()
    )
    assert answer.startswith(b"HTTP/1.1 200")
    assert answer.endswith(b"site a\n")


def test_missing_host_on_http11_is_400(server: SitesServer) -> None:
    answer = raw_request(server.port, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400")


def test_two_host_headers_are_400(server: SitesServer) -> None:
    answer = raw_request(
        server.port, b"GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\nConnection: close\r\n\r\n"
    )
    assert answer.startswith(b"HTTP/1.1 400")


def test_missing_host_on_http10_reaches_the_default_site(server: SitesServer) -> None:
    answer = raw_request(server.port, b"GET / HTTP/1.0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.0 200")
    assert answer.endswith(b"site fallback\n")


def test_longest_path_prefix_wins(server: SitesServer) -> None:
    assert server.get("a.test", "/docs/deep/").text == "site deep\n"
    assert server.get("a.test", "/docs/guide/intro.txt").text == "intro\n"
    assert server.get("a.test", "/docs/a%20b.txt").text == "spaced\n"
    assert server.get("www.a.test", "/docs/guide/intro.txt").status_code == 404


def test_exact_prefix_redirects_to_its_slash(server: SitesServer) -> None:
    r = server.get("a.test", "/docs?sort=name")
    assert r.status_code == 301
    assert r.headers["location"] == "/docs/?sort=name"
    r = server.get("a.test", "/docs/deep")
    assert (r.status_code, r.headers["location"]) == (301, "/docs/deep/")


def test_site_redirects_and_links_include_the_prefix(server: SitesServer) -> None:
    r = server.get("a.test", "/docs/guide")
    assert (r.status_code, r.headers["location"]) == (301, "/docs/guide/")
    listing = server.get("a.test", "/docs/").text
    hrefs = re.findall(r'href="([^"]+)"', listing)
    assert "/docs/guide/" in hrefs
    assert "/docs/a%20b.txt" in hrefs
    assert "/docs/.comptoir/comptoir.css" in hrefs
    assert server.get("a.test", "/docs/.comptoir/comptoir.css").status_code == 200
    sub = server.get("a.test", "/docs/guide/").text
    assert "/docs/guide/intro.txt" in re.findall(r'href="([^"]+)"', sub)


def test_unknown_host_without_default_is_421(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    path = tmp_path / "sites.toml"
    path.write_text('[[site]]\nhosts = ["a.test"]\nkind = "static"\nroot = "a"\n')
    with sites_server("run", str(path), url_count=1) as srv:
        assert srv.get("a.test").status_code in (200, 404)
        r = srv.get("other.test")
        assert r.status_code == 421
        assert "a.test" not in r.text
        answer = raw_request(srv.port, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 400")


def test_every_kind_runs_from_the_example_file(tmp_path: Path) -> None:
    # examples/kinds.toml as a user runs it (in a copy: uploads land next to the file).
    examples = Path(__file__).resolve().parents[2] / "examples"
    folder = tmp_path / "examples"
    shutil.copytree(examples, folder)
    config = load_sites_file(folder / "kinds.toml")
    # One host per site in the example, so one URL each, in the file's order.
    assert all(len(s.hosts) == 1 for s in config.sites)
    with sites_server("run", str(folder / "kinds.toml"), url_count=len(config.sites)) as srv:
        port = srv.port
        urls = dict(zip([s.name for s in config.sites], srv.urls, strict=False))
        assert len(urls) == len(config.sites)
        # Every site's front page answers, whatever its kind.
        for url in urls.values():
            parts = urlsplit(url)
            r = srv.get(parts.netloc.rsplit(":", 1)[0], parts.path, {"Accept": "text/html"})
            assert r.status_code == 200, url
        web, echo, share, drop = (urls[name] for name in ("web", "echo", "share", "drop"))
        assert (web, echo) == (
            f"http://site-a.localhost:{port}/",
            f"http://site-a.localhost:{port}/echo/",
        )
        # Share and receive links carry their secret token, drawn for this run.
        share_token = re.fullmatch(rf"http://files\.localhost:{port}/([\w-]{{22}})/", share)
        drop_token = re.fullmatch(rf"http://drop\.localhost:{port}/([\w-]{{22}})/", drop)
        assert share_token is not None and drop_token is not None
        assert "site a" in srv.get("site-a.localhost").text.lower()
        r = srv.get("site-a.localhost", "/echo/get?x=1")
        assert r.json()["args"] == {"x": "1"}
        assert r.json()["url"].endswith("/echo/get?x=1")
        assert srv.get("files.localhost", f"/{share_token[1]}/").status_code == 200
        assert srv.get("files.localhost", "/").status_code == 404
        r = srv.client.put(
            f"/{drop_token[1]}/note.txt", content=b"hi\n", headers={"Host": "drop.localhost"}
        )
        assert r.status_code == 201
        assert (folder / "inbox" / "note.txt").read_bytes() == b"hi\n"
        # A file announced over max-size = "100M" is refused before its body is read.
        answer = raw_request(
            port,
            f"PUT /{drop_token[1]}/big HTTP/1.1\r\nHost: drop.localhost\r\n"
            f"Content-Length: {101 * 1024 * 1024}\r\nConnection: close\r\n\r\n".encode(),
        )
        assert answer.startswith(b"HTTP/1.1 413")


def test_a_single_site_refuses_http11_without_host_too(tmp_path: Path) -> None:
    # The same rule as with virtual hosts (RFC 9112 §3.2), for `comptoir serve` and a file of
    # one default site alike.
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "index.html").write_text("site a\n")
    path = tmp_path / "sites.toml"
    path.write_text('[[site]]\ndefault = true\nkind = "static"\nroot = "a"\n')
    for args in (("serve", str(tmp_path / "a")), ("run", str(path))):
        with sites_server(*args, url_count=1) as srv:
            answer = raw_request(srv.port, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
            assert answer.startswith(b"HTTP/1.1 400"), args
            answer = raw_request(srv.port, b"GET / HTTP/1.0\r\n\r\n")
            assert answer.startswith(b"HTTP/1.0 200"), args
            assert srv.get("anything.test").text == "site a\n"
