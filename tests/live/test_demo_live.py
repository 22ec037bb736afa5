"""`comptoir demo`: it starts, prints one URL per site, and each site answers on its name."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import unquote

import pytest

from comptoir.config import ServerOptions
from comptoir.demo import DEMO_DIR, SITES, demo_config
from comptoir.sites import KINDS
from tests.live.vhosts import SitesServer, sites_server


@pytest.fixture(scope="module")
def demo() -> Iterator[SitesServer]:
    """The demo, started once for the module."""
    with sites_server("demo", url_count=len(SITES)) as srv:
        yield srv


def test_quiet_prints_one_url_per_site(demo: SitesServer) -> None:
    assert demo.urls == [f"http://{s.name}.localhost:{demo.port}/" for s in SITES]


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
    on_disk = sorted(p.name for p in (DEMO_DIR / "files").iterdir())
    for name in on_disk:
        assert any(unquote(h).rstrip("/") == "/" + name for h in hrefs), name
    for href in ("/%23hashtag.txt", "/100%25%20honest.csv", "/rock%20%26%20roll.txt"):
        assert href in hrefs
        assert demo.get("files.localhost", href).status_code == 200
    assert "&amp;" in r.text  # names are escaped in the page, not pasted in
    nested = demo.get("files.localhost", "/nested%20folder/notes%20(v2).txt")
    assert nested.text.startswith("Version 2")


def test_every_demo_site_answers_on_its_name(demo: SitesServer) -> None:
    for site in SITES:
        assert demo.get(site.host).status_code == 200, site.name


def test_home_page_links_every_other_demo_site() -> None:
    # Adding a site to SITES needs a link on the home page too: this keeps the two in step.
    page = (DEMO_DIR / "www" / "index.html").read_text(encoding="utf-8")
    linked = set(re.findall(r'data-host="([^"]+)"', page))
    assert linked == {s.host for s in SITES if not s.default}


def test_demo_config_is_valid_for_every_kind() -> None:
    config = demo_config(ServerOptions())
    assert [s.default for s in config.sites].count(True) == 1
    for site in config.sites:
        assert KINDS[site.kind].validate(site.options) == []
