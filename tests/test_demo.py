"""`comptoir demo` is made from the registry: each kind's demo sites, and a home page linking them.

The live suite (tests/live/test_demo_live.py) runs the demo itself and follows the links in a
browser; these check what it is made of, without a server.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest

import comptoir.demo
from comptoir.config import ServerOptions
from comptoir.demo import HOME, SITES, DemoEntry, code_spans, demo_config, render_home_page
from comptoir.sites import KINDS, DemoSite
from comptoir.sites.static import StaticOptions


def test_every_kind_is_in_the_demo_and_valid(tmp_path: Path) -> None:
    assert {s.kind for s in SITES} == set(KINDS)
    config = demo_config(ServerOptions(), tmp_path)
    assert [s.default for s in config.sites].count(True) == 1
    for site in config.sites:
        assert KINDS[site.kind].validate(site.options, config.server) == []


def test_the_demo_follows_the_registry() -> None:
    # The home page first, then each kind's sites in the registry's order.
    assert SITES[0] == HOME
    assert [(s.kind, s.site) for s in SITES[1:]] == [
        (kind.name, site) for kind in KINDS.values() for site in kind.demo
    ]


def test_demo_site_names_are_distinct_host_labels() -> None:
    names = [s.name for s in SITES]
    assert len(names) == len(set(names)), names
    for name in names:
        assert re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", name), name


def test_descriptions_are_one_sentence_with_balanced_code_marks() -> None:
    for s in SITES[1:]:
        text = s.site.description
        assert text and text.count("`") % 2 == 0, s.name
        assert "\n" not in text and "<" not in text.replace("`", ""), s.name


def test_home_page_links_every_other_demo_site(tmp_path: Path) -> None:
    # The links are made from SITES: each site's host and front page (a share's token included).
    page = render_home_page(tmp_path)
    links = re.findall(r'<a data-host="([^"]+)" href="([^"]+)"', page)
    linked = [(host, urlsplit(href).hostname, urlsplit(href).path) for host, href in links]
    assert linked == [(s.host, s.host, s.path(tmp_path)) for s in SITES if not s.default]
    assert "<code>comptoir share</code>" in page
    assert "{{" not in page and "{%" not in page


def test_descriptions_are_escaped_with_code_marked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert code_spans("a `b` & `c`") == [("a ", False), ("b", True), (" & ", False), ("c", True)]
    odd = DemoEntry(
        "static",
        DemoSite("odd", "<b>bold</b> & `<i>`", lambda demo: StaticOptions(root=demo.samples)),
    )
    monkeypatch.setattr(comptoir.demo, "SITES", (HOME, odd))
    page = render_home_page(tmp_path)
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; <code>&lt;i&gt;</code>" in page
    assert "<b>" not in page


def test_the_home_site_serves_the_page_rendered_in_the_run_folder(tmp_path: Path) -> None:
    options = HOME.options(tmp_path)
    assert options.root == tmp_path / "www"
    assert not options.listing
    assert (options.root / "index.html").read_text(encoding="utf-8") == render_home_page(tmp_path)
    # The page's other files come with it.
    assert (options.root / "sites.js").is_file()


def test_the_demo_module_names_every_kind_it_serves() -> None:
    # Its docstring lists the tour by kind, for a reader; it must say what the registry serves.
    import comptoir.demo
    from comptoir.sites import KINDS

    doc = comptoir.demo.__doc__ or ""
    listed = dict(re.findall(r"^- `kind = \"(\w+)\"`: (.*);?$", doc, re.M))
    assert list(listed) == list(KINDS)
    for name, kind in KINDS.items():
        for site in kind.demo:
            assert f"`{site.name}`" in listed[name], (name, site.name)
