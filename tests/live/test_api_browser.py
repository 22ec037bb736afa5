"""An api site in a real browser: the table pages (sort, filter form, facets, relations) and the
offline /docs explorer, with every request leaving 127.0.0.1 refused (no CDN may be needed)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import live_server
from tests.live.test_browser import browser  # noqa: F401  (the fixture)

ASSOC = Path(__file__).resolve().parent.parent.parent / "examples" / "assocapi"


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:  # noqa: F811
    p = browser.new_page()
    outside: list[str] = []

    def only_local(route: Any) -> None:
        url = route.request.url
        if url.startswith("http://127.0.0.1:"):
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    p.route("**/*", only_local)
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield p
    finally:
        p.close()
    assert outside == []
    assert errors == []


def test_table_pages_sort_filter_facets_and_relations(page: Any) -> None:
    with live_server("api", str(ASSOC)) as srv:
        page.goto(srv.url)
        page.get_by_role("link", name="associations_etudiantes").first.click()
        page.wait_for_url("**/api/associations_etudiantes")
        assert page.locator("h1").inner_text() == "associations_etudiantes"
        assert page.locator(".summary").inner_text().startswith("6 rows")
        # Sort by a column header: descending on the second click.
        page.get_by_role("link", name="membres").click()
        page.get_by_role("link", name="membres").click()
        page.wait_for_url("**_sort=-membres")
        first = page.locator("table.listing tbody tr").first.locator("td").nth(1)
        assert first.inner_text() == "Bureau des Sports"
        # The filter form becomes a real filter parameter.
        page.select_option("select[name=_column]", "membres")
        page.select_option("select[name=_op]", "gt")
        page.fill("input[name=_value]", "40")
        page.click("button[type=submit]")
        page.wait_for_url("**membres__gt=40**")
        assert page.locator("table.listing tbody tr").count() == 3
        # The row, and the table pointing to it.
        page.get_by_role("link", name="1", exact=True).click()
        page.wait_for_url("**/api/associations_etudiantes/1")
        page.get_by_role("link", name="evenements_associations (by association_id)").click()
        page.wait_for_url("**/api/associations_etudiantes/1/evenements_associations")
        assert page.locator("table.listing tbody tr").count() == 2


def test_docs_explore_the_api_offline(page: Any) -> None:
    with live_server("api", str(ASSOC)) as srv:
        page.goto(srv.url + "docs")
        page.wait_for_selector(".opblock-summary-path", timeout=15_000)
        paths = page.locator(".opblock-summary-path").all_inner_texts()
        assert "/api/associations_etudiantes/{key}" in [p.replace("\u200b", "") for p in paths]
        # Try a request from the explorer: it reaches this server and shows the answer.
        one_row = "/api/associations_etudiantes/{key}"
        page.locator(".opblock-summary-path", has_text=one_row).first.click()
        # Operations open ready to try (tryItOutEnabled): fill in the key, execute.
        page.locator("input[placeholder=key]").first.fill("3")
        page.get_by_role("button", name="Execute").first.click()
        # The explorer shows the request as curl, then the server's answer.
        answer = page.locator(".live-responses-table .microlight", has_text="Bureau des Sports")
        answer.first.wait_for(timeout=15_000)
        status = page.locator(".live-responses-table tbody .response-col_status").first
        assert status.inner_text().strip() == "200"
