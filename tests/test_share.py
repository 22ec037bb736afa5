"""`comptoir share` in-process: routes, reachability, archives, ranges, counting, expiry."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import os
import re
import tarfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
import segno

from comptoir import netinfo
from comptoir.app import build_app
from comptoir.cli import build_options
from comptoir.clock import ManualClock
from comptoir.config import Config, ServerOptions, SiteConfig
from comptoir.http.paths import quote_name
from comptoir.netinfo import Address
from comptoir.settings import option_fields
from comptoir.sites import KINDS, SiteContext
from comptoir.sites.share import ShareOptions, validate
from comptoir.sites.share.app import ShareSite
from comptoir.sites.share.archive import make_archive, tar_size
from comptoir.sites.share.items import shared_items, walk
from comptoir.sites.share.progress import TransferBoard
from comptoir.state import StateStore
from comptoir.types import ASGIApp
from tests.conftest import asgi_client, http_scope, leaving_client, make_config

AS_HTML = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
AS_CURL = {"accept": "*/*"}
MiB = 1024 * 1024


@dataclass
class Share:
    """One share under test: its site object, an in-process client and its URL path."""

    site: ShareSite
    client: httpx.AsyncClient
    url: str
    shutdowns: list[float] = field(default_factory=list)
    clock: ManualClock = field(default_factory=ManualClock)


@pytest.fixture
async def share() -> Any:
    """Factory: `await share(path, ..., once=True)` builds a share and a client for it."""
    clients: list[httpx.AsyncClient] = []

    def make(*paths: Path, **options: Any) -> Share:
        opts = ShareOptions(paths=tuple(paths), **options)
        shutdowns: list[float] = []
        clock = ManualClock()
        context = SiteContext(
            request_shutdown=lambda: shutdowns.append(time.monotonic()),
            quiet=True,
            store=StateStore(),
            clock=clock,
        )
        site = ShareSite(opts, context)
        client = asgi_client(site)
        clients.append(client)
        return Share(site, client, f"/{opts.token}/", shutdowns, clock)

    yield make
    for c in clients:
        await c.aclose()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A folder to share next to files that must stay private, with traps inside."""
    (tmp_path / "secret.txt").write_text("not shared")
    (tmp_path / ".env").write_text("SECRET=1")
    d = tmp_path / "photos"
    (d / "2024").mkdir(parents=True)
    (d / "a.txt").write_text("alpha\n")
    (d / "2024" / "b.txt").write_text("bravo\n")
    (d / "été 😀.txt").write_text("unicode\n")
    (d / ".hidden").write_text("hidden")
    (d / "out").symlink_to(tmp_path / "secret.txt")
    (d / "up").symlink_to(tmp_path)
    (d / "inside").symlink_to(d / "a.txt")
    (d / "loop").symlink_to(d)
    (tmp_path / "report.pdf").write_bytes(b"%PDF-1.4 report\n")
    return tmp_path


def big_file(path: Path, size: int) -> bytes:
    """A file of `size` bytes whose content shows where each byte belongs."""
    data = (bytes(range(256)) * (size // 256 + 1))[:size]
    path.write_bytes(data)
    return data


# -- the link -----------------------------------------------------------------------------------


async def test_curl_gets_the_file_of_a_one_file_share(share: Any, tree: Path) -> None:
    s = share(tree / "report.pdf")
    r = await s.client.get(s.url, headers=AS_CURL)
    assert r.status_code == 200
    assert r.content == b"%PDF-1.4 report\n"
    assert r.headers["content-disposition"].startswith('attachment; filename="report.pdf"')
    assert r.headers["content-type"] == "application/pdf"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["x-robots-tag"] == "noindex"
    assert "no-store" in r.headers["cache-control"]
    assert r.headers["accept-ranges"] == "bytes"
    direct = await s.client.get(s.url + "f/report.pdf")
    assert direct.content == r.content
    assert direct.headers["etag"] == r.headers["etag"]


async def test_browsers_get_a_landing_page_with_a_qr_code(share: Any, tree: Path) -> None:
    s = share(tree / "report.pdf", tree / "photos")
    r = await s.client.get(s.url, headers=AS_HTML)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["vary"] == "Accept"
    assert r.headers["referrer-policy"] == "no-referrer"
    page = r.text
    assert "<svg" in page and "<script>" not in page and "<script " in page  # only share.js
    assert f'href="{s.url}f/report.pdf" download' in page
    assert f'href="{s.url}f/photos/"' in page
    assert f'href="{s.url}archive.zip" download' in page
    assert f"http://testserver{s.url}" in page
    assert "application/pdf" in page
    # The QR code is the one of the link itself (made by the server, no outside request).
    assert (
        segno.make(f"http://testserver{s.url}", error="m").svg_inline(
            scale=5, border=2, dark="#000", light="#fff", omitsize=False
        )
        in page
    )


@pytest.mark.parametrize(
    ("options", "name", "size_shown"),
    [
        ({}, "share.zip", True),  # stored: its size is known before it is made
        ({"compress": True}, "share.zip", False),
        ({"archive": "tar"}, "share.tar", True),
        ({"archive": "tar.gz"}, "share.tar.gz", False),
    ],
)
async def test_landing_page_for_every_archive_format(
    share: Any, tree: Path, options: dict[str, Any], name: str, size_shown: bool
) -> None:
    s = share(tree / "report.pdf", tree / "photos", **options)
    r = await s.client.get(s.url, headers=AS_HTML)
    assert r.status_code == 200
    summary = re.search(r'<span class="summary">([^<]*)</span>', r.text)
    assert summary is not None
    assert summary[1].startswith(name)
    assert ("," in summary[1]) == size_shown


async def test_qr_and_page_escape_a_hostile_host_header(share: Any, tree: Path) -> None:
    s = share(tree / "report.pdf")
    r = await s.client.get(s.url, headers={**AS_HTML, "host": '"><script>x</script>'})
    assert r.status_code == 200
    assert "<script>x" not in r.text and "script&gt;" not in r.text
    # Not a host name: the page shows the address the request reached instead.
    assert f'data-url="http://testserver{s.url}"' in r.text


# --- the QR code leads other machines to the share (issue 10, item 16) --------------------------

LAN_TOKEN = "a-token-for-the-lan-tests"


def _qr(url: str) -> str:
    return segno.make(url, error="m").svg_inline(
        scale=5, border=2, dark="#000", light="#fff", omitsize=False
    )


@pytest.fixture
def lan(monkeypatch: pytest.MonkeyPatch) -> list[Address | None]:
    """The machine's primary LAN address as comptoir will see it (the list's one item)."""
    found: list[Address | None] = [Address("192.168.1.20", primary=True)]

    def primary_lan_address(ipv6: bool = True) -> Address | None:
        # As the real one: without IPv6, an IPv6 address is never the answer.
        address = found[0]
        return address if address is None or ipv6 or address.version == 4 else None

    monkeypatch.setattr(netinfo, "primary_lan_address", primary_lan_address)
    return found


async def _landing(
    tree: Path, base_url: str, *, config: Config | None = None, **server: Any
) -> str:
    options = ShareOptions(paths=(tree / "report.pdf",), token=LAN_TOKEN)
    config = config or make_config("share", options, **server)
    async with asgi_client(build_app(config), base_url=base_url) as c:
        r = await c.get(f"/{LAN_TOKEN}/", headers=AS_HTML)
    assert r.status_code == 200
    return r.text


@pytest.mark.parametrize(
    "base_url",
    [
        "http://127.0.0.1:8000",
        "http://127.1.2.3:8000",
        "http://localhost:8000",
        "http://share.localhost:8000",
        "http://[::1]:8000",
        "http://[::ffff:127.0.0.1]:8000",
    ],
)
async def test_opened_on_this_computer_the_qr_code_is_the_lan_url(
    lan: list[Address | None], tree: Path, base_url: str
) -> None:
    page = await _landing(tree, base_url)
    url = f"http://192.168.1.20:8000/{LAN_TOKEN}/"
    assert _qr(url) in page
    # The link to copy or to give is the one other machines can open, too.
    assert f'data-url="{url}"' in page
    assert "127.0.0.1" not in page and "localhost" not in page


async def test_the_lan_url_keeps_the_scheme_and_brackets_ipv6(
    lan: list[Address | None], tree: Path
) -> None:
    lan[0] = Address("fd00::20", primary=True)
    page = await _landing(tree, "https://localhost")
    assert _qr(f"https://[fd00::20]/{LAN_TOKEN}/") in page


async def test_opened_on_this_computer_without_a_network_the_page_says_so(
    lan: list[Address | None], tree: Path
) -> None:
    lan[0] = None
    page = await _landing(tree, "http://127.0.0.1:8000")
    assert "<svg" not in page
    assert "No QR code: no network address of this computer reaches this share" in page
    # The link still works on this computer.
    assert f'data-url="http://127.0.0.1:8000/{LAN_TOKEN}/"' in page


async def test_no_lan_url_when_other_machines_cannot_reach_the_share(
    lan: list[Address | None], tree: Path
) -> None:
    # A server listening on loopback only.
    page = await _landing(tree, "http://127.0.0.1:8000", host="127.0.0.1")
    assert "<svg" not in page and "No QR code" in page
    # A site answering only its own name: an address would reach another site, or none.
    options = ShareOptions(paths=(tree / "report.pdf",), token=LAN_TOKEN)
    named = SiteConfig("share", options, hosts=("share.localhost",), name="share")
    config = Config(ServerOptions(quiet=True), (named,))
    page = await _landing(tree, "http://share.localhost:8000", config=config)
    assert "<svg" not in page and "No QR code" in page
    # ...unless it is the default site, which an address reaches.
    config = Config(ServerOptions(quiet=True), (dataclasses.replace(named, default=True),))
    page = await _landing(tree, "http://share.localhost:8000", config=config)
    assert _qr(f"http://192.168.1.20:8000/{LAN_TOKEN}/") in page
    # IPv4 only: an IPv6 address is no way in.
    lan[0] = Address("fd00::20", primary=True)
    page = await _landing(tree, "http://127.0.0.1:8000", host="0.0.0.0")
    assert "<svg" not in page and "No QR code" in page


@pytest.mark.parametrize(
    "base_url", ["http://192.168.1.77:8000", "http://laptop.lan:8000", "http://[fd00::77]:8000"]
)
async def test_opened_through_a_network_name_the_qr_code_keeps_it(
    lan: list[Address | None], tree: Path, base_url: str
) -> None:
    page = await _landing(tree, base_url)
    assert _qr(f"{base_url}/{LAN_TOKEN}/") in page
    lan[0] = None
    assert _qr(f"{base_url}/{LAN_TOKEN}/") in await _landing(tree, base_url)


def test_the_lan_address_is_the_banners_primary(monkeypatch: pytest.MonkeyPatch) -> None:
    found = [Address("10.0.0.5"), Address("192.168.1.20", primary=True)]
    monkeypatch.setattr(netinfo, "lan_addresses", lambda ipv6=True: found)
    assert netinfo.primary_lan_address() == Address("192.168.1.20", primary=True)
    found = [Address("10.0.0.5")]  # no default route: the banner shows loopback first
    assert netinfo.primary_lan_address() is None


def test_loopback_names() -> None:
    for host in (
        "127.0.0.1",
        "127.9.9.9",
        "::1",
        "[::1]",
        "localhost",
        "LocalHost.",
        "a.localhost",
    ):
        assert netinfo.is_loopback_host(host), host
    for host in ("0.0.0.0", "[::]", "::ffff:127.0.0.1"):
        assert netinfo.is_loopback_host(host), host
    for host in ("192.168.1.2", "fd00::1", "example.com", "localhost.example", "notlocalhost"):
        assert not netinfo.is_loopback_host(host), host


async def test_json_describes_the_share(share: Any, tree: Path) -> None:
    s = share(tree / "report.pdf", tree / "photos", count=2)
    r = await s.client.get(s.url, headers={"accept": "application/json"})
    doc = r.json()
    assert [i["name"] for i in doc["items"]] == ["report.pdf", "photos"]
    assert doc["items"][0]["downloads_left"] == 2
    assert doc["items"][1] == {
        "name": "photos",
        "type": "directory",
        "url": f"{s.url}f/photos/",
        "files": 4,  # a.txt, 2024/b.txt, été 😀.txt, inside (-> a.txt)
        "size": 6 + 6 + 8 + 6,
        "archive_url": f"{s.url}f/photos/?archive",
    }
    assert doc["archive"]["url"] == f"{s.url}archive.zip"


async def test_wrong_token_is_any_unknown_path(share: Any, tree: Path) -> None:
    s = share(tree / "report.pdf")
    token = s.url.strip("/")
    wrong = await s.client.get("/" + token[:-1] + "x/", headers=AS_HTML)
    unknown = await s.client.get("/nothing-here/", headers=AS_HTML)
    inside = await s.client.get(s.url + "nothing-here", headers=AS_HTML)
    for r in (wrong, unknown, inside):
        assert r.status_code == 404
        assert r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["x-robots-tag"] == "noindex"
    # The same page but for the path it shows; only someone who has the link (the right token)
    # is led back to it.
    assert wrong.text.replace(token[:-1] + "x", "nothing-here") == unknown.text
    assert s.url not in wrong.text and f'href="{s.url}"' in inside.text
    for path in ("/" + token[:-1] + "x/", s.url + "nothing-here"):
        assert (await s.client.get(path, headers=AS_CURL)).text == "Not found\n"
    assert (await s.client.post("/" + token[:-1] + "x/")).status_code == 404
    assert (await s.client.get("/")).status_code == 404


async def test_methods_and_slash_redirect(share: Any, tree: Path) -> None:
    s = share(tree / "report.pdf")
    r = await s.client.get(s.url.rstrip("/"))
    assert r.status_code == 301 and r.headers["location"] == s.url
    r = await s.client.post(s.url)
    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD, OPTIONS"
    assert (await s.client.options(s.url)).status_code == 204
    head = await s.client.head(s.url, headers=AS_CURL)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == "16"


# -- nothing else is reachable ------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "f/secret.txt",
        "f/.env",
        "f/report.pdf/",
        "f/report.pdf/../secret.txt",
        "f/report.pdf%2F..%2Fsecret.txt",
        "f/..%2Fsecret.txt",
        "f/%2e%2e/secret.txt",
        "f/photos/../secret.txt",
        "f/photos/%2e%2e/secret.txt",
        "f/photos/%2e%2e%2fsecret.txt",
        "f/photos/..%5csecret.txt",
        "f/photos/.hidden",
        "f/photos/out",
        "f/photos/up/secret.txt",
        "f/photos/up/",
        "f/photos/loop/../../secret.txt",
        "f/photos/%00",
        "f/photos//etc/passwd",
        "f//etc/passwd",
        "f/",
        "f",
        "archive.tar",
        "../secret.txt",
        "%2e%2e/secret.txt",
    ],
)
async def test_nothing_outside_the_share_is_reachable(share: Any, tree: Path, path: str) -> None:
    s = share(tree / "report.pdf", tree / "photos")
    r = await s.client.get(s.url + path, headers=AS_CURL)
    assert r.status_code in (400, 404), (path, r.status_code)
    assert b"not shared" not in r.content and b"SECRET" not in r.content
    assert r.headers["referrer-policy"] == "no-referrer"


async def test_a_shared_file_alone_exposes_no_folder(share: Any, tree: Path) -> None:
    s = share(tree / "photos" / "a.txt")
    for path in ("archive.zip", "f/b.txt", "f/2024/", "f/a.txt/x"):
        assert (await s.client.get(s.url + path)).status_code == 404


async def test_folder_listing_shows_only_what_is_shared(share: Any, tree: Path) -> None:
    s = share(tree / "photos")
    r = await s.client.get(s.url + "f/photos", headers=AS_HTML)
    assert r.status_code == 301 and r.headers["location"] == s.url + "f/photos/"
    r = await s.client.get(s.url + "f/photos/", headers=AS_HTML)
    assert r.status_code == 200
    page = r.text
    for name in ("a.txt", "2024/", "inside", quote_name("été 😀.txt")):
        assert f'{s.url}f/photos/{name}"' in page
    assert ".hidden" not in page and '/out"' not in page and '/up/"' not in page
    assert f'href="{s.url}archive.zip" download' in page
    sub = await s.client.get(s.url + "f/photos/2024/", headers=AS_HTML)
    assert f'href="{s.url}f/photos/2024/b.txt" download' in sub.text
    assert f'href="{s.url}f/photos/"' in sub.text  # parent: the shared folder, never above
    r = await s.client.get(s.url + "f/photos/2024/b.txt")
    assert r.text == "bravo\n"
    assert r.headers["content-disposition"].startswith('attachment; filename="b.txt"')
    r = await s.client.get(s.url + "f/photos/inside")
    assert r.text == "alpha\n"


# -- archives -----------------------------------------------------------------------------------


async def test_curl_gets_a_stored_zip_of_a_folder(share: Any, tree: Path) -> None:
    s = share(tree / "photos")
    r = await s.client.get(s.url, headers=AS_CURL)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/zip"
    assert r.headers["content-disposition"].startswith('attachment; filename="photos.zip"')
    assert int(r.headers["content-length"]) == len(r.content)
    assert r.headers["etag"].startswith('"zip-')
    zf = zipfile.ZipFile(io.BytesIO(r.content))
    assert zf.testzip() is None
    assert zf.namelist() == [
        "photos/",
        "photos/2024/",
        "photos/2024/b.txt",
        "photos/a.txt",
        "photos/inside",
        "photos/été 😀.txt",
    ]
    assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
    info = zf.getinfo("photos/été 😀.txt")
    assert info.flag_bits & 0x800  # UTF-8 names
    assert zf.read("photos/été 😀.txt") == b"unicode\n"
    assert zf.read("photos/inside") == b"alpha\n"
    again = await s.client.get(s.url + "archive.zip")
    assert again.content == r.content and again.headers["etag"] == r.headers["etag"]


async def test_each_folder_is_also_an_archive(share: Any, tree: Path) -> None:
    s = share(tree / "photos", tree / "report.pdf", count=1)
    page = (await s.client.get(s.url, headers=AS_HTML)).text
    assert f'href="{s.url}f/photos/?archive" download' in page
    listing = (await s.client.get(s.url + "f/photos/2024/", headers=AS_HTML)).text
    assert f'href="{s.url}f/photos/2024/?archive" download' in listing
    assert "as 2024.zip" in listing
    # curl and wget on a folder's URL get the folder itself, as for the share's URL.
    r = await s.client.get(s.url + "f/photos/2024/", headers=AS_CURL)
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    assert r.headers["content-disposition"].startswith('attachment; filename="2024.zip"')
    assert int(r.headers["content-length"]) == len(r.content)
    assert zipfile.ZipFile(io.BytesIO(r.content)).namelist() == ["2024/", "2024/b.txt"]
    # A page's button asks with ?archive; the slash redirect keeps it.
    moved = await s.client.get(s.url + "f/photos?archive", headers=AS_HTML)
    assert moved.status_code == 301 and moved.headers["location"] == s.url + "f/photos/?archive"
    # Ranges, as for the share's archive (one ending early completes nothing).
    part = await s.client.get(s.url + "f/photos/?archive", headers={"range": "bytes=10-19"})
    assert part.status_code == 206
    r = await s.client.get(s.url + "f/photos/?archive", headers=AS_HTML)
    assert r.content[10:20] == part.content
    assert r.headers["content-disposition"].startswith('attachment; filename="photos.zip"')
    zf = zipfile.ZipFile(io.BytesIO(r.content))
    assert zf.testzip() is None
    # The folder alone (not report.pdf), by the same rules: no dotfile, no symlink leading out.
    assert zf.namelist() == [
        "photos/",
        "photos/2024/",
        "photos/2024/b.txt",
        "photos/a.txt",
        "photos/inside",
        "photos/été 😀.txt",
    ]
    # Each folder's archive is counted on its own; the share's archive is untouched.
    assert (await s.client.get(s.url + "f/photos/?archive")).status_code == 410
    assert (await s.client.get(s.url + "f/photos/2024/", headers=AS_CURL)).status_code == 410
    assert s.shutdowns == []
    assert (await s.client.get(s.url + "archive.zip")).status_code == 200
    assert len(s.shutdowns) == 1


async def test_the_one_shared_folder_is_the_share_archive(share: Any, tree: Path) -> None:
    s = share(tree / "photos", once=True)
    listing = (await s.client.get(s.url + "f/photos/", headers=AS_HTML)).text
    assert "Download this folder" not in listing  # it is "Download all"
    whole = await s.client.head(s.url + "archive.zip")
    r = await s.client.get(s.url + "f/photos/", headers=AS_CURL)
    assert r.headers["etag"] == whole.headers["etag"]
    assert r.headers["content-disposition"].startswith('attachment; filename="photos.zip"')
    # The same download, counted once: the share is over.
    assert len(s.shutdowns) == 1
    assert (await s.client.get(s.url + "archive.zip")).status_code == 410


async def test_zip_ranges_are_exactly_the_bytes_of_the_whole(share: Any, tree: Path) -> None:
    big_file(tree / "photos" / "big.bin", 3 * MiB + 123)
    s = share(tree / "photos", tree / "report.pdf")
    whole = (await s.client.get(s.url + "archive.zip")).content
    etag = (await s.client.head(s.url + "archive.zip")).headers["etag"]
    size = len(whole)
    for spec, (start, end) in {
        "bytes=0-99": (0, 99),
        "bytes=1000-2000000": (1000, 2_000_000),
        f"bytes={size - 5000}-": (size - 5000, size - 1),
        "bytes=-22": (size - 22, size - 1),
        f"bytes=2000000-{size + 100}": (2_000_000, size - 1),
    }.items():
        r = await s.client.get(s.url + "archive.zip", headers={"range": spec, "if-range": etag})
        assert r.status_code == 206, spec
        assert r.headers["content-range"] == f"bytes {start}-{end}/{size}"
        assert r.content == whole[start : end + 1], spec
    stale = await s.client.get(
        s.url + "archive.zip", headers={"range": "bytes=0-9", "if-range": '"zip-other"'}
    )
    assert stale.status_code == 200 and stale.content == whole
    assert (
        await s.client.get(s.url + "archive.zip", headers={"range": f"bytes={size}-"})
    ).status_code == 416
    cached = await s.client.get(s.url + "archive.zip", headers={"if-none-match": etag})
    assert cached.status_code == 304 and cached.content == b""
    many = await s.client.get(s.url + "archive.zip", headers={"range": "bytes=0-1,5-6"})
    assert many.status_code == 200 and many.content == whole


async def test_zip_etag_changes_with_the_files(share: Any, tree: Path) -> None:
    s = share(tree / "photos")
    first = (await s.client.head(s.url + "archive.zip")).headers["etag"]
    (tree / "photos" / "a.txt").write_text("changed, longer\n")
    second = (await s.client.head(s.url + "archive.zip")).headers["etag"]
    assert first != second


async def test_compressed_zip_has_no_size_and_no_ranges(share: Any, tree: Path) -> None:
    (tree / "photos" / "text.txt").write_text("compress me " * 1000)
    s = share(tree / "photos", compress=True)
    r = await s.client.get(s.url + "archive.zip", headers={"range": "bytes=0-9"})
    assert r.status_code == 200
    assert "content-length" not in r.headers and "etag" not in r.headers
    assert r.headers["accept-ranges"] == "none"
    zf = zipfile.ZipFile(io.BytesIO(r.content))
    assert zf.testzip() is None
    assert zf.getinfo("photos/text.txt").compress_type == zipfile.ZIP_DEFLATED
    assert len(r.content) < 12000


@pytest.mark.parametrize("fmt", ["tar", "tar.gz"])
async def test_tar_archives(share: Any, tree: Path, fmt: str) -> None:
    s = share(tree / "photos", tree / "report.pdf", archive=fmt)
    r = await s.client.get(s.url, headers=AS_CURL)
    assert r.status_code == 200
    ext = ".tar" if fmt == "tar" else ".tar.gz"
    assert r.headers["content-disposition"].startswith(f'attachment; filename="share{ext}"')
    assert (await s.client.get(s.url + "archive.zip")).status_code == 404
    with tarfile.open(fileobj=io.BytesIO(r.content), mode="r:*") as tf:
        names = tf.getnames()
        assert names == [
            "photos",
            "photos/2024",
            "photos/2024/b.txt",
            "photos/a.txt",
            "photos/inside",
            "photos/été 😀.txt",
            "report.pdf",
        ]
        member = tf.extractfile("photos/été 😀.txt")
        assert member is not None and member.read() == b"unicode\n"
        assert tf.getmember("photos/a.txt").uname == ""
    if fmt == "tar":
        assert int(r.headers["content-length"]) == len(r.content)
        assert len(r.content) % tarfile.RECORDSIZE == 0
    else:
        assert "content-length" not in r.headers


async def test_tar_ranges_skip_to_the_bytes(share: Any, tree: Path) -> None:
    big_file(tree / "photos" / "big.bin", 2 * MiB + 7)
    s = share(tree / "photos", archive="tar")
    whole = (await s.client.get(s.url + "archive.tar")).content
    for start, end in ((0, 511), (700, 1_500_000), (len(whole) - 20000, len(whole) - 1)):
        r = await s.client.get(s.url + "archive.tar", headers={"range": f"bytes={start}-{end}"})
        assert r.status_code == 206
        assert r.content == whole[start : end + 1]


def test_archives_are_deterministic_and_sized(tree: Path) -> None:
    items = shared_items((tree / "photos", tree / "report.pdf"))
    members = list(walk(items))
    one = make_archive("zip", members)
    two = make_archive("zip", list(walk(items)))
    data = b"".join(one.chunks())
    assert data == b"".join(two.chunks())
    assert one.size == len(data) and one.etag == two.etag
    tar = make_archive("tar", members)
    assert tar.size == tar_size(members) == len(b"".join(tar.chunks()))


def test_zip_made_large_uses_zip64(tmp_path: Path) -> None:
    # A sparse file over 4 GiB: ZIP64 sizes, computed up front; only the layout is checked here.
    big = tmp_path / "huge.bin"
    with open(big, "wb") as f:
        f.truncate(4 * 1024**3 + 10)
    members = list(walk(shared_items((big,))))
    archive = make_archive("zip", members)
    assert archive.size is not None and archive.size > 4 * 1024**3 + 10
    first = next(archive.chunks(0))
    assert first.startswith(b"PK\x03\x04")


# -- counting -----------------------------------------------------------------------------------


async def test_once_allows_one_complete_download(share: Any, tree: Path) -> None:
    s = share(tree / "report.pdf", once=True)
    assert (await s.client.head(s.url, headers=AS_CURL)).status_code == 200
    part = await s.client.get(s.url, headers={"range": "bytes=0-3"})
    assert part.status_code == 206 and part.content == b"%PDF"
    assert s.shutdowns == []
    r = await s.client.get(s.url, headers=AS_CURL)
    assert r.status_code == 200
    assert len(s.shutdowns) == 1
    gone = await s.client.get(s.url, headers=AS_CURL)
    assert gone.status_code == 410
    assert gone.headers["referrer-policy"] == "no-referrer"
    assert gone.headers["x-robots-tag"] == "noindex"
    page = await s.client.get(s.url, headers=AS_HTML)
    assert page.status_code == 410 and "Gone" in page.text
    assert (await s.client.get(s.url, headers={"range": "bytes=0-3"})).status_code == 410
    assert (await s.client.head(s.url, headers=AS_CURL)).status_code == 410


async def test_segments_then_the_last_one_completes(share: Any, tree: Path) -> None:
    data = big_file(tree / "big.bin", MiB)
    s = share(tree / "big.bin", count=1)
    got = b""
    for start in range(0, MiB, 256 * 1024):
        end = min(start + 256 * 1024, MiB) - 1
        r = await s.client.get(s.url + "f/big.bin", headers={"range": f"bytes={start}-{end}"})
        assert r.status_code == 206
        got += r.content
    assert got == data
    assert s.site.slots.completed("f/big.bin") == 1
    assert (await s.client.get(s.url + "f/big.bin")).status_code == 410


async def test_last_slot_race_has_one_winner(share: Any, tree: Path) -> None:
    big_file(tree / "big.bin", 2 * MiB)
    s = share(tree / "big.bin", count=1)
    results = await asyncio.gather(*(s.client.get(s.url, headers=AS_CURL) for _ in range(5)))
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200, 410, 410, 410, 410]
    assert len(s.shutdowns) == 1


async def test_count_applies_to_each_file_and_the_archive(share: Any, tree: Path) -> None:
    s = share(tree / "photos", count=2)
    for _ in range(2):
        assert (await s.client.get(s.url + "f/photos/a.txt")).status_code == 200
    assert (await s.client.get(s.url + "f/photos/a.txt")).status_code == 410
    # The symlink to a.txt is the same file: no more downloads through it either.
    assert (await s.client.get(s.url + "f/photos/inside")).status_code == 410
    assert (await s.client.get(s.url + "f/photos/2024/b.txt")).status_code == 200
    assert s.shutdowns == []
    assert (await s.client.get(s.url + "archive.zip")).status_code == 200
    assert (await s.client.get(s.url + "archive.zip")).status_code == 200
    # The archive had its two downloads: everything has been delivered, the share is over.
    assert len(s.shutdowns) == 1
    assert (await s.client.get(s.url + "f/photos/2024/b.txt")).status_code == 410
    listing = await s.client.get(s.url + "f/photos/", headers=AS_HTML)
    assert listing.status_code == 410


async def test_every_file_used_up_ends_the_share(share: Any, tree: Path) -> None:
    s = share(tree / "photos" / "a.txt", tree / "photos" / "2024", once=True)
    assert (await s.client.get(s.url + "f/a.txt")).status_code == 200
    assert s.shutdowns == []
    assert (await s.client.get(s.url + "f/2024/b.txt")).status_code == 200
    assert len(s.shutdowns) == 1


async def test_keep_stays_up(share: Any, tree: Path) -> None:
    s = share(tree / "report.pdf", once=True, keep=True)
    assert (await s.client.get(s.url, headers=AS_CURL)).status_code == 200
    assert (await s.client.get(s.url, headers=AS_CURL)).status_code == 410
    assert s.shutdowns == []


async def cut_download(app: ASGIApp, path: str, after: int, **headers: str) -> tuple[int, int]:
    """GET `path`, the client leaving after `after` body bytes; (status, bytes received)."""
    scope = http_scope(path, headers, pathsend=True)
    start, body = await leaving_client(app, scope, lambda start, body: len(body) >= after)
    return start["status"], len(body)


@pytest.mark.parametrize("target", ["f/big.bin", "archive.zip"])
async def test_a_cut_transfer_gives_its_slot_back(share: Any, tree: Path, target: str) -> None:
    data = big_file(tree / "big.bin", 4 * MiB)
    (tree / "small.txt").write_text("x")
    s = share(tree / "big.bin", tree / "small.txt", once=True)
    status, got = await cut_download(s.site, s.url + target, MiB)
    assert status == 200 and MiB <= got < 4 * MiB
    assert s.shutdowns == []
    # Resumed from where it stopped: the range reaching the end completes the download.
    r = await s.client.get(s.url + target, headers={"range": f"bytes={got}-"})
    assert r.status_code == 206
    if target == "f/big.bin":
        assert r.content == data[got:]
    assert (await s.client.get(s.url + target)).status_code == 410


async def test_a_cut_range_does_not_complete(share: Any, tree: Path) -> None:
    big_file(tree / "big.bin", 4 * MiB)
    s = share(tree / "big.bin", once=True)
    status, _ = await cut_download(s.site, s.url, MiB, range="bytes=1000-")
    assert status == 206
    assert s.site.slots.completed("f/big.bin") == 0
    assert (await s.client.get(s.url, headers=AS_CURL)).status_code == 200


async def test_expiry_answers_gone_and_stops(share: Any, tree: Path) -> None:
    s = share(tree / "report.pdf", expire=3600)
    assert (await s.client.get(s.url, headers=AS_CURL)).status_code == 200
    s.clock.advance(3599)
    assert (await s.client.get(s.url, headers=AS_CURL)).status_code == 200
    s.clock.advance(1)
    r = await s.client.get(s.url, headers=AS_HTML)
    assert r.status_code == 410 and "expired" in r.text
    assert (await s.client.get(s.url + "f/report.pdf")).status_code == 410
    assert len(s.shutdowns) == 1


async def test_expiry_timer_stops_the_server(share: Any, tree: Path) -> None:
    s = share(tree / "report.pdf", expire=3600)
    s.clock.advance(3600 - 0.05)
    await s.site.startup()
    await asyncio.sleep(0.3)
    assert len(s.shutdowns) == 1
    await s.site.shutdown()


async def test_hostile_names_round_trip(share: Any, tmp_path: Path) -> None:
    names = ['say "hi".txt', "back\\slash", "100%.txt", "a%20b", "#;x", "😀 été", "new\nline"]
    paths = []
    for name in names:
        (tmp_path / name).write_text(name)
        paths.append(tmp_path / name)
    s = share(*paths)
    for name in names:
        r = await s.client.get(s.url + "f/" + quote_name(name))
        assert r.status_code == 200, name
        assert r.text == name
        star = r.headers["content-disposition"].rsplit("filename*=UTF-8''", 1)[1]
        assert unquote(star) == name
    page = await s.client.get(s.url, headers=AS_HTML)
    assert "back\\slash" in page.text and "&#34;hi&#34;" in page.text


async def test_bidi_controls_in_names_are_shown_visibly(share: Any, tmp_path: Path) -> None:
    d = tmp_path / "d\u2067ir"
    d.mkdir()
    (d / "rtl\u202etxt.exe").write_text("x")
    (tmp_path / "a\u200fb.txt").write_text("y")
    s = share(d, tmp_path / "a\u200fb.txt")
    landing = await s.client.get(s.url, headers=AS_HTML)
    listing = await s.client.get(s.url + "f/" + quote_name(d.name) + "/", headers=AS_HTML)
    for page in (landing, listing):
        assert page.status_code == 200
        assert not any(c in page.text for c in "\u202e\u2067\u200f")
    assert "a[U+200F]b.txt" in landing.text and "d[U+2067]ir" in landing.text
    assert "rtl[U+202E]txt.exe" in listing.text and "d[U+2067]ir" in listing.text
    doc = (await s.client.get(s.url, headers={"accept": "application/json"})).json()
    assert {i["name"] for i in doc["items"]} == {"d[U+2067]ir", "a[U+200F]b.txt"}
    r = await s.client.get(s.url + "f/" + quote_name(d.name) + "/" + quote_name("rtl\u202etxt.exe"))
    assert r.text == "x"


async def test_names_that_are_not_utf8(share: Any, tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    with open(os.path.join(os.fsencode(d), b"caf\xe9.txt"), "wb") as f:
        f.write(b"latin-1 name")
    s = share(d, count=5)
    listing = await s.client.get(s.url + "f/d/", headers=AS_HTML)
    assert f"{s.url}f/d/caf%E9.txt" in listing.text and "caf\ufffd.txt" in listing.text
    r = await s.client.get(s.url + "f/d/caf%E9.txt")
    assert r.content == b"latin-1 name"
    assert "filename*=UTF-8''caf%EF%BF%BD.txt" in r.headers["content-disposition"]
    z = await s.client.get(s.url + "archive.zip")
    assert zipfile.ZipFile(io.BytesIO(z.content)).namelist() == ["d/", "d/caf\ufffd.txt"]
    s2 = share(d, archive="tar")
    t = await s2.client.get(s2.url + "archive.tar")
    raw = io.BytesIO(t.content)
    with tarfile.open(fileobj=raw, encoding="utf-8", errors="surrogateescape") as tf:
        assert tf.getnames() == ["d", os.fsdecode(b"d/caf\xe9.txt")]


# -- options and the command --------------------------------------------------------------------


def _problems(options: ShareOptions) -> list[str]:
    return [str(p) for p in validate(options, ServerOptions())]


def test_validate(tree: Path) -> None:
    assert _problems(ShareOptions(paths=(tree / "report.pdf", tree / "photos"))) == []
    problems = _problems(ShareOptions(paths=(tree / "nope",)))
    assert problems == [f"not found: {tree / 'nope'}"]
    (tree / "other").mkdir()
    (tree / "other" / "report.pdf").write_text("x")
    [clash] = _problems(ShareOptions(paths=(tree / "report.pdf", tree / "other" / "report.pdf")))
    assert "'report.pdf'" in clash
    assert _problems(ShareOptions(paths=(tree,), once=True, count=3))
    assert _problems(ShareOptions(paths=(tree,), once=True, count=1)) == []
    assert _problems(ShareOptions(paths=(tree,), archive="tar", compress=True))
    assert _problems(ShareOptions(paths=(tree,), token="short"))
    assert _problems(ShareOptions(paths=(tree,), token="has/slash-and-long-enough"))
    assert _problems(ShareOptions(paths=(tree,), token="a-long-enough_token")) == []
    assert _problems(ShareOptions(paths=()))
    os.mkfifo(tree / "fifo")
    assert _problems(ShareOptions(paths=(tree / "fifo",))) == [
        f"not a file or folder: {tree / 'fifo'}"
    ]


def test_token_is_random_and_in_the_url() -> None:
    a, b = ShareOptions(paths=(Path("."),)), ShareOptions(paths=(Path("."),))
    assert a.token != b.token and len(a.token) >= 22
    assert KINDS["share"].url_suffix(a) == f"/{a.token}/"
    assert ShareOptions(token="x" * 20).token == "x" * 20


def test_cli_options_are_the_fields() -> None:
    from comptoir.cli import cli

    command = cli.commands["share"]
    names = {p.name for p in command.params}
    assert {o.name for o in option_fields(ShareOptions)} <= names
    ctx = command.make_context("share", ["a", "b", "--once", "--expire", "30m", "--archive", "tar"])
    opts = build_options(ShareOptions, ctx.params)
    assert opts.paths == (Path("a"), Path("b"))
    assert opts.once and opts.limit == 1
    assert opts.expire == 1800 and opts.archive == "tar"


async def test_share_mounted_in_a_config(tree: Path) -> None:
    opts = ShareOptions(paths=(tree / "report.pdf",))
    app = build_app(make_config("share", opts))
    async with asgi_client(app) as client:
        r = await client.get(f"/{opts.token}/", headers=AS_CURL)
        assert r.status_code == 200 and r.content == b"%PDF-1.4 report\n"
        css = await client.get("/.comptoir/share.css")
        assert css.status_code == 200
        js = await client.get("/.comptoir/share.js")
        assert js.status_code == 200


async def test_share_under_a_path_prefix(tree: Path) -> None:
    opts = ShareOptions(paths=(tree / "photos",), keep=True)
    site = SiteConfig("share", opts, path="/dl", default=True, name="share")
    app = build_app(Config(server=ServerOptions(quiet=True), sites=(site,)))
    base = f"/dl/{opts.token}/"
    async with asgi_client(app) as client:
        page = await client.get(base, headers=AS_HTML)
        assert page.status_code == 200
        assert f'href="{base}f/photos/"' in page.text
        assert f'href="{base}archive.zip" download' in page.text
        assert 'href="/dl/.comptoir/share.css"' in page.text
        assert f"http://testserver{base}" in page.text
        listing = await client.get(base + "f/photos/2024/", headers=AS_HTML)
        assert f'href="{base}f/photos/2024/b.txt" download' in listing.text
        assert (await client.get(base + "f/photos/2024/b.txt")).text == "bravo\n"
        r = await client.get(base + "f/photos")
        assert r.headers["location"] == base + "f/photos/"


def test_progress_board_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console

    from comptoir import terminal

    lines: list[str] = []
    monkeypatch.setattr(terminal, "_writer", lines.append)
    clock = iter([0.0, 2.0, 2.0, 3.0, 3.0]).__next__
    board = TransferBoard(Console(file=io.StringIO()), live=False, label="share: ", clock=clock)
    t = board.begin("127.0.0.1", "bad\x1b[2Jname", 2048)
    board.advance(t, 2048)
    board.end(t, finished=True, counted=True)
    t2 = board.begin("10.0.0.2", "x", 4096)
    board.advance(t2, 1024)
    board.end(t2, finished=False, counted=False)
    board.close()
    assert lines[0] == "→ 127.0.0.1  bad\\x1b[2Jname (2.0 KiB)"
    assert lines[1].startswith("✓ 127.0.0.1  bad\\x1b[2Jname  downloaded 2.0 KiB in 2.0 s")
    assert lines[3] == "✗ 10.0.0.2  x  cut after 1.0 KiB of 4.0 KiB"
    assert lines[4] == "share: 1 download complete, 1 cut, 3.0 KiB sent"


def test_quiet_board_draws_nothing(capfd: pytest.CaptureFixture[str]) -> None:
    board = TransferBoard(None, live=False)
    t = board.begin("c", "n", 1)
    board.advance(t, 1)
    board.end(t, finished=True, counted=True)
    board.close()
    assert capfd.readouterr() == ("", "")
    assert board.complete == 1


def test_archives_leave_out_names_no_url_could_reach(tmp_path: Path) -> None:
    # `a\..\..\evil.bat` would escape the folder of a Windows extractor; a control character
    # would reach the recipient's terminal through `unzip -l`.
    d = tmp_path / "shared"
    d.mkdir()
    (d / "ok.txt").write_text("ok")
    (d / "a\\..\\..\\evil.bat").write_text("z")
    (d / "red\x1b[31m").write_text("y")
    names = [m.arcname for m in walk(shared_items((d,)))]
    assert names == ["shared/", "shared/ok.txt"]
    data = b"".join(make_archive("zip", list(walk(shared_items((d,))))).chunks())
    assert zipfile.ZipFile(io.BytesIO(data)).namelist() == ["shared/", "shared/ok.txt"]


# -- a share that ends by itself says why -----------------------------------------------------


def _talking_share(tmp_path: Path, **options: Any) -> tuple[ShareSite, ManualClock, list[str]]:
    """A share that prints on the terminal (not --quiet), its clock and its stop requests."""
    (tmp_path / "a.txt").write_text("a")
    stops: list[str] = []
    clock = ManualClock()
    context = SiteContext(
        request_shutdown=lambda: stops.append("stop"), quiet=False, store=StateStore(), clock=clock
    )
    return ShareSite(ShareOptions(paths=(tmp_path / "a.txt",), **options), context), clock, stops


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"once": True}, "every download allowed is done (--once)"),
        ({"count": 2}, "every download allowed is done (--count 2)"),
    ],
)
async def test_a_used_up_share_says_why_it_stops(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], options: dict[str, Any], reason: str
) -> None:
    site, _, stops = _talking_share(tmp_path, **options)
    async with asgi_client(site) as c:
        for _ in range(options.get("count", 1)):
            assert (await c.get(f"/{site.token}/", headers=AS_CURL)).status_code == 200
    assert stops == ["stop"]
    err = capfd.readouterr().err
    assert err.count("stopping") == 1
    assert f"share: stopping: {reason}\n" in err


async def test_an_expired_share_says_why_it_stops_once(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    site, clock, stops = _talking_share(tmp_path, expire=60)
    clock.advance(61)
    async with asgi_client(site) as c:
        for _ in range(2):
            assert (await c.get(f"/{site.token}/", headers=AS_CURL)).status_code == 410
    assert stops == ["stop"]
    assert capfd.readouterr().err == "share: stopping: the link expired (--expire)\n"


async def test_a_quiet_share_stops_without_a_word(
    share: Any, tree: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    s = share(tree / "report.pdf", once=True)
    assert (await s.client.get(s.url, headers=AS_CURL)).status_code == 200
    assert len(s.shutdowns) == 1
    assert capfd.readouterr().err == ""
