"""Login, theme switch and logout in a real browser (headless Chromium), with JavaScript off."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import live_server

CHROMIUM = "/usr/bin/chromium"
LIGHT_BG = "rgb(253, 253, 252)"
DARK_BG = "rgb(21, 21, 23)"


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


def test_login_theme_and_logout_without_javascript(browser: Any, tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.txt").write_text("a")
    with live_server("serve", str(tmp_path), env={"COMPTOIR_PASSWORD": "open sesame"}) as srv:
        # Light colours by default, so that "dark" below is the server's doing, not the system's.
        context = browser.new_context(java_script_enabled=False, color_scheme="light")
        page = context.new_page()
        violations: list[str] = []
        page.on(
            "console",
            lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
        )
        try:
            page.goto(srv.url + "sub/")
            # Sent to the login page, which remembers where we were going.
            assert page.url == srv.url + ".comptoir/login?next=/sub/"
            assert page.title() == "Password required"
            page.fill("#password", "wrong")
            page.click("button[type=submit]")
            assert page.locator(".error").inner_text() == "Wrong password."
            page.fill("#password", "open sesame")
            page.click("button[type=submit]")
            assert page.url == srv.url + "sub/"
            assert page.title() == "Index of /sub/"

            cookies = {c["name"]: c for c in context.cookies()}
            session = cookies["comptoir_session_static"]
            assert session["httpOnly"] is True
            assert session["sameSite"] == "Lax"
            assert session["path"] == "/"
            assert session["secure"] is False
            assert session["expires"] == -1  # ends with the browser session

            body_bg = "getComputedStyle(document.body).backgroundColor"
            # JavaScript is off for the page; evaluate still runs in Playwright's own world.
            assert page.evaluate(body_bg) == LIGHT_BG
            page.click("footer nav.theme >> text=dark")
            assert page.url == srv.url + "sub/"
            assert page.get_attribute("html", "data-theme") == "dark"
            assert page.evaluate(body_bg) == DARK_BG
            page.reload()
            assert page.get_attribute("html", "data-theme") == "dark"
            theme = {c["name"]: c for c in context.cookies()}["comptoir_theme"]
            assert theme["value"] == "dark" and theme["httpOnly"] is False
            assert theme["sameSite"] == "Lax"
            page.click("footer nav.theme >> text=auto")
            assert page.get_attribute("html", "data-theme") == "auto"
            assert "comptoir_theme" not in {c["name"] for c in context.cookies()}

            page.click("footer .logout button")
            assert page.title() == "Password required"
            page.goto(srv.url + "sub/a.txt")
            assert page.title() == "Password required"
            assert violations == []
        finally:
            context.close()
