"""The listing page in a real browser (headless Chromium through Playwright)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.conftest import live_server

CHROMIUM = "/usr/bin/chromium"
ODD = "odd #1 ?x=y & 'quotes' \"<é>\" 100% 🎉.txt"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium, or a skip where there is none (a failure in CI)."""
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is required in CI")
        pytest.skip(f"{CHROMIUM} not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            yield b
        finally:
            b.close()


def test_browse_listing_follow_folder_and_open_an_odd_file(browser: Any, tmp_path: Path) -> None:
    folder = tmp_path / "My Folder #2"
    (folder / "deeper").mkdir(parents=True)
    (folder / ODD).write_text("odd content ✓\n", encoding="utf-8")
    (tmp_path / "top.txt").write_text("top")
    with live_server("serve", str(tmp_path)) as srv:
        page = browser.new_page()
        try:
            response = page.goto(srv.url)
            assert response is not None and response.status == 200
            assert page.title() == "Index of /"
            # The stylesheet loads (shared assets under /.comptoir/).
            color = page.evaluate("getComputedStyle(document.body).backgroundColor")
            assert color != "rgba(0, 0, 0, 0)"
            rows = page.locator("table.listing tbody tr:not(.parent) td:first-child a")
            assert rows.all_inner_texts() == ["My Folder #2/", "top.txt"]

            page.get_by_role("link", name="My Folder #2/").click()
            page.wait_for_url(srv.url + "My%20Folder%20%232/")
            assert page.locator("h1").inner_text() == "Index of /My Folder #2/"
            crumbs = page.locator("nav.crumbs a")
            assert crumbs.all_inner_texts() == ["/", "My Folder #2"]
            assert rows.all_inner_texts() == ["deeper/", ODD]

            # Breadcrumbs lead back up.
            page.get_by_role("link", name="deeper/").click()
            page.wait_for_url("**/deeper/")
            assert crumbs.all_inner_texts() == ["/", "My Folder #2", "deeper"]
            crumbs.nth(1).click()
            page.wait_for_url(srv.url + "My%20Folder%20%232/")

            with page.expect_navigation():
                page.get_by_role("link", name=ODD).click()
            assert page.locator("body").inner_text().strip() == "odd content ✓"
            assert page.evaluate("decodeURIComponent(location.pathname)") == (
                "/My Folder #2/" + ODD
            )
        finally:
            page.close()


def test_a_missing_page_is_styled_and_leads_back(browser: Any, tmp_path: Path) -> None:
    (tmp_path / "top.txt").write_text("top")
    with live_server("serve", str(tmp_path)) as srv:
        page = browser.new_page()
        try:
            response = page.goto(srv.url + "gone/<b>away</b>.html")
            assert response is not None and response.status == 404
            assert page.title() == "Not found"
            # The stylesheet loads under the page's strict CSP, and the path reads as asked.
            color = page.evaluate("getComputedStyle(document.body).backgroundColor")
            assert color != "rgba(0, 0, 0, 0)"
            assert page.locator("code.path").inner_text() == "/gone/<b>away</b>.html"
            page.get_by_role("link", name="Back to the front page").click()
            page.wait_for_url(srv.url)
            assert page.title() == "Index of /"
        finally:
            page.close()


def test_html_a_client_makes_echo_answer_runs_no_script(browser: Any) -> None:
    # /response-headers answers the client's HTML (httpbin's behaviour); without the sandbox a
    # link to it ran the script in the host's origin, next to password-protected sites.
    script = "<script>document.title='ran';document.cookie='planted=1;path=/'</script>"
    with live_server("echo") as srv:
        page = browser.new_page()
        try:
            query = urlencode({"Content-Type": "text/html", "x": script})
            response = page.goto(srv.url + "response-headers?" + query)
            assert response is not None and response.status == 200
            # The page is the client's HTML, script element included, as httpbin answers it.
            assert page.locator("script").count() == 1
            assert page.title() != "ran"
            assert page.context.cookies() == []
            assert response.headers["content-security-policy"] == "sandbox"
        finally:
            page.close()
