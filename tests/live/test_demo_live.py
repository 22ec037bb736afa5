"""`comptoir demo`: it starts, prints one URL per site, and each site answers on its name."""

from __future__ import annotations

import re
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote

import pytest

from comptoir.demo import SAMPLES_DIR, SITES
from comptoir.sites.receive import DEMO_TOKEN as DROP_TOKEN
from comptoir.sites.share import DEMO_TOKEN as SHARE_TOKEN
from tests.conftest import need_tool
from tests.live.test_browser import browser  # noqa: F401  (a fixture, used below)
from tests.live.test_run_live import raw_request
from tests.live.vhosts import SitesServer, sites_server

SAMPLE_FILES = {p.name for p in SAMPLES_DIR.iterdir()}


@pytest.fixture(scope="module")
def temp_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's TMPDIR, where it makes the folder of its run."""
    return tmp_path_factory.mktemp("tmp")


@pytest.fixture(scope="module")
def demo(temp_root: Path) -> Iterator[SitesServer]:
    """The demo, started once for the module."""
    env = {"TMPDIR": str(temp_root)}
    with sites_server("demo", url_count=len(SITES), env=env) as srv:
        yield srv


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Each demo site's front page path, by site name."""
    run_dir = tmp_path_factory.mktemp("run")
    return {s.name: s.path(run_dir) for s in SITES}


def run_dir_of(temp_root: Path) -> Path:
    """The temporary folder of the running demo."""
    found = list(temp_root.glob("comptoir-demo-*"))
    assert len(found) == 1, found
    return found[0]


def test_quiet_prints_one_url_per_site(demo: SitesServer, paths: dict[str, str]) -> None:
    port = demo.port
    assert demo.urls == [f"http://{s.name}.localhost:{port}{paths[s.name]}" for s in SITES]
    # The links with a token are complete: the banner gives addresses that work.
    assert f"http://share.localhost:{port}/{SHARE_TOKEN}/" in demo.urls
    assert f"http://drop.localhost:{port}/{DROP_TOKEN}/" in demo.urls


def test_home_page_is_www_and_the_default(demo: SitesServer) -> None:
    for host in ("www.localhost", "127.0.0.1", f"127.0.0.1:{demo.port}", "other.localhost"):
        r = demo.get(host)
        assert r.status_code == 200, host
        assert "<title>comptoir demo</title>" in r.text
    page = demo.get("www.localhost").text
    assert demo.get("www.localhost", "/.comptoir/comptoir.css").status_code == 200
    assert (
        demo.get("www.localhost", "/sites.js").headers["content-type"].startswith("text/javascript")
    )
    assert 'href="/.comptoir/comptoir.css"' in page


def test_files_site_lists_odd_names_that_can_be_fetched(demo: SitesServer) -> None:
    r = demo.get("files.localhost")
    assert r.status_code == 200
    hrefs = re.findall(r'href="([^"]+)"', r.text)
    for name in SAMPLE_FILES:
        assert any(unquote(h).rstrip("/") == "/" + name for h in hrefs), name
    for href in ("/%23hashtag.txt", "/100%25%20honest.csv", "/rock%20%26%20roll.txt"):
        assert href in hrefs
        assert demo.get("files.localhost", href).status_code == 200
    assert "&amp;" in r.text  # names are escaped in the page, not pasted in
    nested = demo.get("files.localhost", "/nested%20folder/notes%20(v2).txt")
    assert nested.text.startswith("Version 2")


def test_every_demo_site_answers_on_its_name(demo: SitesServer, paths: dict[str, str]) -> None:
    for site in SITES:
        r = demo.get(site.host, paths[site.name], headers={"Accept": "text/html"})
        assert r.status_code == 200, site.name
        # The home page links it: its front page is a page for browsers.
        assert r.headers["content-type"].startswith("text/html"), site.name


def test_share_site_gives_curl_the_sample_files(demo: SitesServer, tmp_path: Path) -> None:
    curl = need_tool("curl")
    url = f"http://127.0.0.1:{demo.port}/{SHARE_TOKEN}/"
    subprocess.run(
        [curl, "-sSf", "-OJ", "-H", "Host: share.localhost", url],
        cwd=tmp_path,
        check=True,
        timeout=30,
    )
    (archive,) = tmp_path.iterdir()
    with zipfile.ZipFile(archive) as z:
        names = {PurePosixPath(n).name for n in z.namelist()}
    assert names >= SAMPLE_FILES
    # The token is still the key: any other path is an unknown one.
    assert demo.get("share.localhost", "/sample-share-lynk/").status_code == 404
    assert demo.get("share.localhost", "/").status_code == 404


def test_drop_site_takes_curl_uploads_into_the_run_folder(
    demo: SitesServer, temp_root: Path, tmp_path: Path
) -> None:
    curl = need_tool("curl")
    sent = tmp_path / "hello from curl.txt"
    sent.write_text("dropped\n")
    url = f"http://127.0.0.1:{demo.port}/{DROP_TOKEN}/"
    subprocess.run(
        [curl, "-sSf", "-o", "/dev/null", "-T", str(sent), "-H", "Host: drop.localhost", url],
        check=True,
        timeout=30,
    )
    assert (run_dir_of(temp_root) / "drop" / sent.name).read_text() == "dropped\n"
    # The demo's cap: a file announced larger is refused before its body is read.
    answer = raw_request(
        demo.port,
        f"PUT /{DROP_TOKEN}/big.bin HTTP/1.1\r\nHost: drop.localhost\r\n"
        "Content-Length: 30000000\r\nConnection: close\r\n\r\n".encode(),
    )
    assert answer.startswith(b"HTTP/1.1 413")


def test_echo_site_answers_like_httpbin(demo: SitesServer) -> None:
    r = demo.get("echo.localhost", "/get?demo=1")
    assert r.status_code == 200
    body = r.json()
    assert body["args"] == {"demo": "1"}
    assert body["headers"]["Host"] == "echo.localhost"


def test_the_run_folder_is_removed_at_exit(tmp_path: Path) -> None:
    with sites_server("demo", url_count=len(SITES), env={"TMPDIR": str(tmp_path)}) as srv:
        r = srv.client.put(
            f"/{DROP_TOKEN}/a.txt", content=b"a\n", headers={"Host": "drop.localhost"}
        )
        assert r.status_code == 201
        assert (run_dir_of(tmp_path) / "drop" / "a.txt").exists()
        srv.proc.send_signal(2)  # SIGINT, as Ctrl-C
        assert srv.proc.wait(20) == 0
    assert list(tmp_path.glob("comptoir-demo-*")) == []


def test_home_page_links_work_in_a_browser(
    demo: SitesServer,
    paths: dict[str, str],
    browser: Any,  # noqa: F811  (the fixture imported above)
) -> None:
    # Chromium resolves *.localhost to this machine itself: no Host header to forge.
    home = f"http://www.localhost:{demo.port}/"
    page = browser.new_page()
    try:
        assert page.goto(home).status == 200
        links = page.locator("a[data-host]")
        expected = [f"http://{s.host}:{demo.port}{paths[s.name]}" for s in SITES if not s.default]
        # sites.js filled in this page's port, keeping each link's path.
        assert [links.nth(i).get_attribute("href") for i in range(links.count())] == expected
        for i, url in enumerate(expected):
            with page.expect_navigation() as nav:
                page.locator("a[data-host]").nth(i).click()
            assert nav.value is not None and nav.value.status == 200, url
            assert page.url == url
            page.goto(home)
    finally:
        page.close()
