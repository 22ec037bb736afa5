"""`comptoir serve` as a site: index pages, listings, redirects, errors, methods, odd names."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

from comptoir.app import build_app
from comptoir.config import Config, ServerOptions, SiteConfig
from comptoir.sites.static import StaticOptions
from comptoir.types import ASGIApp
from tests.conftest import make_config

Site = Callable[..., httpx.AsyncClient]
AS_JSON = {"accept": "application/json"}
STAMP = 1_700_000_000  # 2023-11-14 22:13:20 UTC


@pytest.fixture
def site(tmp_path: Path, aclient: Callable[[ASGIApp], httpx.AsyncClient]) -> Site:
    """An in-process client for `comptoir serve tmp_path [options]`."""

    def make(**options: object) -> httpx.AsyncClient:
        opts = StaticOptions(root=tmp_path, **options)  # type: ignore[arg-type]
        return aclient(build_app(make_config("static", opts)))

    return make


@dataclass
class Row:
    """One row of a listing page."""

    href: str
    text: str
    size: str = ""
    exact: str = ""
    datetime: str = ""
    time: str = ""


@dataclass
class ListingPage(HTMLParser):
    """What a person sees of a listing page: breadcrumbs, parent link, rows, title."""

    crumbs: list[tuple[str, str]] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    parent: str | None = None
    title: str = ""
    h1: str = ""
    summary: str = ""
    _stack: list[str] = field(default_factory=list)
    _in_crumbs: bool = False
    _in_row: bool = False
    _row_class: str = ""

    def __post_init__(self) -> None:
        super().__init__()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self._stack.append(tag)
        if tag == "nav" and "crumbs" in a.get("class", ""):
            self._in_crumbs = True
        elif tag == "a" and self._in_crumbs:
            self.crumbs.append((a["href"], ""))
        elif tag == "tr" and a.get("class") in ("dir", "file", "parent"):
            self._in_row = True
            self._row_class = a["class"]
        elif tag == "a" and self._in_row:
            if self._row_class == "parent":
                self.parent = a["href"]
            else:
                self.rows.append(Row(href=a["href"], text=""))
        elif tag == "span" and self._in_row and self.rows:
            self.rows[-1].exact = a.get("title", "")
        elif tag == "time" and self._in_row and self.rows:
            self.rows[-1].datetime = a.get("datetime", "")

    def handle_endtag(self, tag: str) -> None:
        if self._stack:
            self._stack.pop()
        if tag == "nav":
            self._in_crumbs = False
        elif tag == "tr":
            self._in_row = False

    def handle_data(self, data: str) -> None:
        top = self._stack[-1] if self._stack else ""
        if top == "title":
            self.title += data
        elif top == "h1":
            self.h1 += data
        elif top == "a" and self._in_crumbs:
            href, text = self.crumbs[-1]
            self.crumbs[-1] = (href, text + data)
        elif self._in_row and self.rows and self._row_class != "parent":
            row = self.rows[-1]
            if top == "a":
                row.text += data
            elif top == "span":
                row.size += data
            elif top == "time":
                row.time += data
        elif top == "p":
            self.summary += data


def parse_listing(html: str) -> ListingPage:
    """Parse a listing page."""
    page = ListingPage()
    page.feed(html)
    page.close()
    return page


def fill(root: Path) -> None:
    """A folder with files and folders of mixed case, known sizes and times."""
    for name in ("B-dir", "a-dir"):
        (root / name).mkdir()
    (root / "a-dir" / "inner").mkdir()
    (root / "a-dir" / "inner" / "deep.txt").write_text("deep")
    (root / "c.txt").write_bytes(b"c" * 1536)
    (root / "A.txt").write_bytes(b"hello")
    (root / "b.txt").write_bytes(b"b" * (3 * 1024 * 1024 + 1))
    (root / ".secret").write_text("hidden")
    for p in (root / "B-dir", root / "a-dir", root / "c.txt", root / "A.txt", root / "b.txt"):
        os.utime(p, (STAMP, STAMP))


# --- index pages and listings -----------------------------------------------------------------


async def test_index_html_is_served_for_a_folder(tmp_path: Path, site: Site) -> None:
    (tmp_path / "index.html").write_text("<h1>home</h1>")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "index.html").write_text("<h1>sub</h1>")
    client = site()
    r = await client.get("/")
    assert (r.status_code, r.text) == (200, "<h1>home</h1>")
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert "etag" in r.headers
    r = await client.get("/sub/")
    assert (r.status_code, r.text) == (200, "<h1>sub</h1>")
    r = await client.get("/", headers={"if-none-match": r.headers["etag"]})
    assert r.status_code == 200, "the ETag is the index file's own"


async def test_listing_sorted_folders_first_with_sizes_and_times(
    tmp_path: Path, site: Site
) -> None:
    fill(tmp_path)
    r = await site().get("/")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["x-content-type-options"] == "nosniff"
    page = parse_listing(r.text)
    assert [(row.text, row.href) for row in page.rows] == [
        ("a-dir/", "/a-dir/"),
        ("B-dir/", "/B-dir/"),
        ("A.txt", "/A.txt"),
        ("b.txt", "/b.txt"),
        ("c.txt", "/c.txt"),
    ]
    sizes = {row.text: (row.size, row.exact) for row in page.rows}
    assert sizes["A.txt"] == ("5 B", "5 bytes")
    assert sizes["c.txt"] == ("1.5 KiB", "1,536 bytes")
    assert sizes["b.txt"] == ("3.0 MiB", "3,145,729 bytes")
    assert sizes["a-dir/"] == ("", "")
    for row in page.rows:
        assert row.datetime == "2023-11-14T22:13:20+00:00"
        assert row.time == "2023-11-14 22:13"
    assert page.title == "Index of /"
    assert page.crumbs == [("/", "/")]
    assert page.parent is None
    assert page.summary == "2 folders, 3 files"


async def test_listing_breadcrumbs_and_parent_link(tmp_path: Path, site: Site) -> None:
    fill(tmp_path)
    r = await site().get("/a-dir/inner/")
    page = parse_listing(r.text)
    assert page.crumbs == [("/", "/"), ("/a-dir/", "a-dir"), ("/a-dir/inner/", "inner")]
    assert page.parent == "/a-dir/"
    assert page.h1 == "Index of /a-dir/inner/"
    assert [(row.text, row.href) for row in page.rows] == [("deep.txt", "/a-dir/inner/deep.txt")]
    assert page.summary == "0 folders, 1 file"


async def test_listing_escapes_names(tmp_path: Path, site: Site) -> None:
    name = "<img src=x onerror=alert(1)> & \"'.txt"
    (tmp_path / name).write_text("x")
    r = await site().get("/")
    assert "<img" not in r.text
    assert "&lt;img src=x onerror=alert(1)&gt; &amp; " in r.text
    page = parse_listing(r.text)
    assert page.rows[0].text == name
    assert page.rows[0].href == "/%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E%20%26%20%22%27.txt"


async def test_listing_shows_bidi_controls_visibly(tmp_path: Path, site: Site) -> None:
    # `rtl\u202etxt.exe` would read as `rtlexe.txt`: the control is shown, the link still works.
    (tmp_path / "rtl\u202etxt.exe").write_text("x")
    r = await site().get("/")
    assert "\u202e" not in r.text
    page = parse_listing(r.text)
    assert page.rows[0].text == "rtl[U+202E]txt.exe"
    assert (await site().get(page.rows[0].href)).text == "x"
    entry = (await site().get("/", headers=AS_JSON)).json()["entries"][0]
    assert entry["name"] == "rtl[U+202E]txt.exe"
    assert (await site().get(entry["url"])).text == "x"


async def test_json_listing(tmp_path: Path, site: Site) -> None:
    fill(tmp_path)
    r = await site().get("/", headers=AS_JSON)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.headers["vary"] == "Accept"
    doc = r.json()
    assert doc["path"] == "/"
    assert [(e["name"], e["type"], e["size"], e["url"]) for e in doc["entries"]] == [
        ("a-dir", "directory", None, "/a-dir/"),
        ("B-dir", "directory", None, "/B-dir/"),
        ("A.txt", "file", 5, "/A.txt"),
        ("b.txt", "file", 3 * 1024 * 1024 + 1, "/b.txt"),
        ("c.txt", "file", 1536, "/c.txt"),
    ]
    assert {e["modified"] for e in doc["entries"]} == {"2023-11-14T22:13:20+00:00"}
    r = await site().get("/a-dir/", headers=AS_JSON)
    assert r.json() == {
        "path": "/a-dir/",
        "entries": [
            {
                "name": "inner",
                "type": "directory",
                "size": None,
                "modified": r.json()["entries"][0]["modified"],
                "url": "/a-dir/inner/",
            }
        ],
    }


async def test_browsers_get_html_even_if_they_also_accept_json(tmp_path: Path, site: Site) -> None:
    r = await site().get("/", headers={"accept": "text/html,application/json;q=0.9,*/*;q=0.8"})
    assert r.headers["content-type"].startswith("text/html")


async def test_no_listing_answers_404_but_keeps_index_pages(tmp_path: Path, site: Site) -> None:
    fill(tmp_path)
    (tmp_path / "B-dir" / "index.html").write_text("B")
    client = site(listing=False)
    for path in ("/", "/a-dir/", "/a-dir/inner/"):
        r = await client.get(path)
        assert r.status_code == 404
        assert "A.txt" not in r.text
        r = await client.get(path, headers=AS_JSON)
        assert r.status_code == 404
        assert r.json() == {"error": "Not found", "status": 404}
    assert (await client.get("/B-dir/")).text == "B"
    assert (await client.get("/A.txt")).text == "hello"


async def test_dotfiles_hidden_unless_asked(tmp_path: Path, site: Site) -> None:
    fill(tmp_path)
    (tmp_path / ".config").mkdir()
    (tmp_path / ".config" / "x.txt").write_text("x")
    r = await site().get("/", headers=AS_JSON)
    assert ".secret" not in {e["name"] for e in r.json()["entries"]}
    for path in ("/.secret", "/.config/", "/.config/x.txt", "/.config"):
        assert (await site().get(path)).status_code == 404
    client = site(hidden=True)
    r = await client.get("/", headers=AS_JSON)
    assert {".secret", ".config"} <= {e["name"] for e in r.json()["entries"]}
    assert (await client.get("/.secret")).text == "hidden"
    assert (await client.get("/.config/x.txt")).text == "x"


async def test_names_no_url_can_reach_are_not_listed(tmp_path: Path, site: Site) -> None:
    (tmp_path / "back\\slash.txt").write_text("x")
    (tmp_path / "new\nline.txt").write_text("x")
    (tmp_path / "ok.txt").write_text("x")
    r = await site().get("/", headers=AS_JSON)
    assert [e["name"] for e in r.json()["entries"]] == ["ok.txt"]


async def test_special_files_are_neither_listed_nor_served(tmp_path: Path, site: Site) -> None:
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "ok.txt").write_text("x")
    r = await site().get("/", headers=AS_JSON)
    assert [e["name"] for e in r.json()["entries"]] == ["ok.txt"]
    assert (await site().get("/pipe")).status_code == 404


# --- canonical URLs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "location"),
    [
        ("/a-dir", "/a-dir/"),
        ("/a-dir/inner", "/a-dir/inner/"),
        ("/a-dir?x=1&y=%20z", "/a-dir/?x=1&y=%20z"),
        ("/a-dir/./inner", "/a-dir/inner/"),
        ("/caf%C3%A9%20%231", "/caf%C3%A9%20%231/"),
        ("/%61-dir", "/a-dir/"),
    ],
)
async def test_folder_without_slash_redirects(
    tmp_path: Path, site: Site, url: str, location: str
) -> None:
    fill(tmp_path)
    (tmp_path / "café #1").mkdir()
    r = await site().get(url)
    assert r.status_code == 301
    assert r.headers["location"] == location
    follow = await site().get(location)
    assert follow.status_code == 200


async def test_redirect_never_leaves_the_site(tmp_path: Path, site: Site) -> None:
    # `//evil.example` is a protocol-relative URL: echoing it would send users off-site.
    (tmp_path / "evil.example").mkdir()
    client = site()
    for path in ("//evil.example", "///evil.example"):
        # A full URL, so that the client does not read `//evil.example` as a host.
        r = await client.get("http://testserver" + path)
        assert r.request.url.raw_path == path.encode()
        assert r.status_code == 301
        assert r.headers["location"] == "/evil.example/"


async def test_file_with_trailing_slash_is_404(tmp_path: Path, site: Site) -> None:
    (tmp_path / "a.txt").write_text("a")
    assert (await site().get("/a.txt/")).status_code == 404


async def test_site_under_a_path_prefix(
    tmp_path: Path, aclient: Callable[[ASGIApp], httpx.AsyncClient]
) -> None:
    fill(tmp_path)
    site = SiteConfig("static", StaticOptions(root=tmp_path), path="/docs", name="docs")
    client = aclient(build_app(Config(server=ServerOptions(quiet=True), sites=(site,))))
    r = await client.get("/docs/a-dir")
    assert r.headers["location"] == "/docs/a-dir/"
    r = await client.get("/docs/a-dir/")
    page = parse_listing(r.text)
    assert page.crumbs[0] == ("/docs/", "/")
    assert page.crumbs[1] == ("/docs/a-dir/", "a-dir")
    assert page.parent == "/docs/"
    assert page.rows[0].href == "/docs/a-dir/inner/"
    assert (await client.get("/docs/A.txt")).text == "hello"
    r = await client.get("/docs/", headers=AS_JSON)
    assert r.json()["entries"][0]["url"] == "/docs/a-dir/"


# --- types, caching, errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "ctype"),
    [
        ("a.html", "text/html; charset=utf-8"),
        ("a.htm", "text/html; charset=utf-8"),
        ("a.css", "text/css; charset=utf-8"),
        ("a.js", "text/javascript; charset=utf-8"),
        ("a.mjs", "text/javascript; charset=utf-8"),
        ("a.json", "application/json; charset=utf-8"),
        ("a.svg", "image/svg+xml; charset=utf-8"),
        ("a.txt", "text/plain; charset=utf-8"),
        ("a.md", "text/markdown; charset=utf-8"),
        ("a.xml", "application/xml; charset=utf-8"),
        ("a.wasm", "application/wasm"),
        ("a.png", "image/png"),
        ("a.webp", "image/webp"),
        ("a.woff2", "font/woff2"),
        ("a.pdf", "application/pdf"),
        ("a.mp4", "video/mp4"),
        ("A.PNG", "image/png"),
        ("noext", "application/octet-stream"),
        ("a.unknownext", "application/octet-stream"),
    ],
)
async def test_content_types(tmp_path: Path, site: Site, name: str, ctype: str) -> None:
    (tmp_path / name).write_bytes(b"x")
    r = await site().get("/" + name)
    assert r.headers["content-type"] == ctype
    assert r.headers["x-content-type-options"] == "nosniff"


async def test_cache_control_policy(tmp_path: Path, site: Site) -> None:
    (tmp_path / "a.txt").write_text("a")
    r = await site().get("/a.txt")
    assert r.headers["cache-control"] == "public, max-age=0, must-revalidate"
    r = await site(cache=3600).get("/a.txt")
    assert r.headers["cache-control"] == "public, max-age=3600"
    # Listings and errors change without notice: never cached as files are.
    assert (await site(cache=3600).get("/")).headers["cache-control"] == "no-cache"
    assert (await site(cache=3600).get("/nope")).headers["cache-control"] == "no-store"


async def test_missing_file_plain_404(tmp_path: Path, site: Site) -> None:
    r = await site().get("/nope.txt")
    assert r.status_code == 404
    assert r.text == "Not found\n"
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.headers["x-content-type-options"] == "nosniff"
    r = await site().get("/nope.txt", headers=AS_JSON)
    assert r.json() == {"error": "Not found", "status": 404}


async def test_custom_404_page(tmp_path: Path, site: Site) -> None:
    (tmp_path / "404.html").write_text("<h1>lost</h1>")
    (tmp_path / "sub").mkdir()
    client = site()
    for url in ("/nope.txt", "/sub/nope", "/.hidden", "/sub/../../x", "/%2e%2e/x"):
        r = await client.get(url)
        assert r.status_code == 404, url
        assert r.text == "<h1>lost</h1>"
        assert r.headers["content-type"] == "text/html; charset=utf-8"
        assert r.headers["cache-control"] == "no-cache"
    # Conditionals and ranges never turn the error page into a 304 or 206.
    r = await client.get("/nope", headers={"range": "bytes=0-1", "if-none-match": "*"})
    assert (r.status_code, r.text) == (404, "<h1>lost</h1>")
    # Scripts asking for JSON get JSON.
    r = await client.get("/nope.txt", headers=AS_JSON)
    assert r.json() == {"error": "Not found", "status": 404}
    # Malformed requests keep their own status.
    r = await client.get("/%zz")
    assert r.status_code == 400


async def test_spa_falls_back_to_index_for_routes(tmp_path: Path, site: Site) -> None:
    (tmp_path / "index.html").write_text("<div id=app>")
    (tmp_path / "404.html").write_text("lost")
    (tmp_path / "app.js").write_text("js")
    client = site(spa=True)
    for url in ("/users/42", "/settings", "/a/b/c/"):
        r = await client.get(url)
        assert (r.status_code, r.text) == (200, "<div id=app>"), url
        assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert (await client.get("/app.js")).text == "js"
    r = await client.get("/missing.js")
    assert (r.status_code, r.text) == (404, "lost")
    r = await site().get("/users/42")
    assert (r.status_code, r.text) == (404, "lost"), "without --spa"


async def test_spa_without_index_is_a_plain_404(tmp_path: Path, site: Site) -> None:
    r = await site(spa=True).get("/route")
    assert r.status_code == 404


# --- methods ----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "PROPFIND", "TRACE"])
async def test_other_methods_are_405_with_allow(tmp_path: Path, site: Site, method: str) -> None:
    (tmp_path / "a.txt").write_text("a")
    for url in ("/a.txt", "/", "/nope"):
        r = await site().request(method, url, content=b"body")
        assert r.status_code == 405
        assert r.headers["allow"] == "GET, HEAD, OPTIONS"
    assert (tmp_path / "a.txt").read_text() == "a"


async def test_options_answers_allow(tmp_path: Path, site: Site) -> None:
    (tmp_path / "a.txt").write_text("a")
    for url in ("/a.txt", "/", "/nope"):
        r = await site().options(url)
        assert r.status_code == 204
        assert r.headers["allow"] == "GET, HEAD, OPTIONS"
        assert "content-length" not in r.headers
        assert r.content == b""


# --- HEAD -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "headers"),
    [
        ("/", {}),
        ("/", AS_JSON),
        ("/a-dir/inner/", {}),
        ("/a-dir", {}),
        ("/a-dir?q=1", {}),
        ("/nope", {}),
        ("/nope", AS_JSON),
        ("/%zz", {}),
        ("/.secret", {}),
        ("/A.txt", {}),
        ("/A.txt", {"range": "bytes=1-2"}),
        ("/A.txt/", {}),
    ],
)
async def test_head_has_the_headers_of_get(
    tmp_path: Path, site: Site, url: str, headers: dict[str, str]
) -> None:
    fill(tmp_path)
    client = site()
    get, head = await client.get(url, headers=headers), await client.head(url, headers=headers)
    assert head.status_code == get.status_code
    assert dict(head.headers) == dict(get.headers)
    assert head.content == b""
    assert int(get.headers["content-length"]) == len(get.content)


async def test_head_of_custom_404_and_spa(tmp_path: Path, site: Site) -> None:
    (tmp_path / "404.html").write_text("lost")
    (tmp_path / "index.html").write_text("app")
    for client, url in ((site(), "/nope"), (site(spa=True), "/route")):
        get, head = await client.get(url), await client.head(url)
        assert (head.status_code, dict(head.headers)) == (get.status_code, dict(get.headers))
        assert head.content == b""


# --- odd names --------------------------------------------------------------------------------

ODD_NAMES = [
    "with space.txt",
    "hash#tag.txt",
    "question?mark.txt",
    "100%.txt",
    "%41.txt",
    "café.txt",
    "cafe\u0301 nfd.txt",
    "emoji 🎉.txt",
    'quote\'s "double".txt',
    "<angle>.txt",
    "amp&er=1;x.txt",
    "plus+sign.txt",
    "日本語.txt",
    "trailing.",
    "-dash",
    "semi;colon",
]


async def test_odd_names_are_listed_and_served_through_their_links(
    tmp_path: Path, site: Site
) -> None:
    folder = tmp_path / "dir with space #1 & <b>"
    folder.mkdir()
    expected: dict[bytes, bytes] = {}
    for i, name in enumerate(ODD_NAMES):
        for where in (tmp_path, folder):
            content = f"{i}:{name}".encode()
            (where / name).write_bytes(content)
            expected[os.fsencode(where / name)] = content
    # Names that are not UTF-8 (Latin-1 from an old disk): bytes paths create them as they are.
    for where in (tmp_path, folder):
        raw = os.path.join(os.fsencode(where), b"latin1-caf\xe9.txt")
        with open(raw, "wb") as f:
            f.write(b"latin-1 name")
        expected[raw] = b"latin-1 name"
    bad_dir = os.path.join(os.fsencode(tmp_path), b"dir-\xff")
    os.mkdir(bad_dir)
    with open(os.path.join(bad_dir, b"inside.txt"), "wb") as f:
        f.write(b"inside")
    expected[os.path.join(bad_dir, b"inside.txt")] = b"inside"

    client = site()
    fetched: dict[str, bytes] = {}

    async def crawl(url: str) -> None:
        r = await client.get(url)
        assert r.status_code == 200, url
        page = parse_listing(r.text)
        for row in page.rows:
            target = urljoin(url, row.href)
            if row.text.endswith("/"):
                await crawl(target)
            else:
                got = await client.get(target)
                assert got.status_code == 200, (row.text, target)
                fetched[target] = got.content

    await crawl("/")
    assert sorted(fetched.values()) == sorted(expected.values())

    # The JSON listing's links lead to the same files.
    r = await client.get("/" + "dir%20with%20space%20%231%20%26%20%3Cb%3E/", headers=AS_JSON)
    entries = r.json()["entries"]
    assert len(entries) == len(ODD_NAMES) + 1
    for e in entries:
        got = await client.get(e["url"])
        assert got.status_code == 200, e
    names = {e["name"] for e in entries}
    assert "latin1-caf\ufffd.txt" in names, "undecodable bytes shown as U+FFFD"
    assert set(ODD_NAMES) <= names


async def test_display_of_names_that_are_not_utf8(tmp_path: Path, site: Site) -> None:
    with open(os.path.join(os.fsencode(tmp_path), b"caf\xe9.txt"), "wb") as f:
        f.write(b"x")
    r = await site().get("/")
    page = parse_listing(r.text)
    assert page.rows[0].text == "caf\ufffd.txt"
    assert page.rows[0].href == "/caf%E9.txt"
    assert (await site().get("/caf%E9.txt")).content == b"x"
    assert (await site().get("/caf%C3%A9.txt")).status_code == 404
