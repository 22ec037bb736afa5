"""The chat's page in a real browser (headless Chromium): two people chatting, the nickname asked
before the first message, unread counts, users' HTML shown as text, recovery after going offline
or a server restart (each missed message exactly once), a phone's screen, a mount path with a
password. Every request leaving 127.0.0.1 is refused, and CSP violations fail the test."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import live_server
from tests.live.test_browser import browser  # noqa: F401  (the fixture)

pytestmark = pytest.mark.timeout(90)
WAIT = 10_000  # ms: what a page has to show something


class Person:
    """One browser context (its own cookies and storage) on the chat's page."""

    def __init__(self, chromium: Any, url: str, **options: Any) -> None:
        self.context = chromium.new_context(**options)
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.frames: list[dict[str, Any]] = []  # every JSON event the server sent this page
        self.sockets: list[str] = []
        self.page.route("**/*", self._only_local)
        self.page.on("pageerror", lambda exc: self.problems.append(str(exc)))
        self.page.on("console", self._console)
        self.page.on("dialog", lambda d: self.problems.append("dialog: " + d.message))
        self.page.on("websocket", self._websocket)
        self.page.goto(url)

    def _only_local(self, route: Any) -> None:
        if route.request.url.startswith("http://127.0.0.1:"):
            route.continue_()
        else:
            self.problems.append("outside: " + route.request.url)
            route.abort()

    def _console(self, message: Any) -> None:
        if "Content Security Policy" in message.text or "Refused to" in message.text:
            self.problems.append(message.text)

    def _websocket(self, ws: Any) -> None:
        self.sockets.append(ws.url)

        def received(payload: str | bytes) -> None:
            try:
                event = json.loads(payload)
            except ValueError:
                return
            if isinstance(event, dict):
                self.frames.append(event)

        ws.on("framereceived", received)

    def say(self, text: str) -> None:
        self.page.fill("#chat-text", text)
        self.page.press("#chat-text", "Enter")

    def name(self, nick: str) -> None:
        """Answer the nickname prompt."""
        self.page.wait_for_selector("#chat-nick:not([hidden])", timeout=WAIT)
        self.page.fill("#chat-nick-name", nick)
        self.page.press("#chat-nick-name", "Enter")
        self.page.wait_for_selector("#chat-nick", state="hidden", timeout=WAIT)

    def message(self, text: str) -> Any:
        return self.page.locator("#chat-messages li .chat-text", has_text=text)

    def see(self, text: str) -> None:
        self.message(text).first.wait_for(timeout=WAIT)

    def texts(self) -> list[str]:
        return list(self.page.locator("#chat-messages li[data-id] .chat-text").all_inner_texts())

    def sent(self, text: str) -> int:
        """How many times the server sent this page a message with this text."""
        return sum(1 for e in self.frames if e.get("type") == "message" and e["text"] == text)

    def unread(self, key: str) -> str:
        badge = self.page.locator(f'.chat-conv[data-key="{key}"] .chat-unread')
        return str(badge.inner_text()) if badge.count() else ""

    def close(self) -> None:
        self.context.close()
        assert self.problems == []


class Crowd:
    """The people of a test, each closed (and checked) at its end."""

    def __init__(self, chromium: Any) -> None:
        self.chromium = chromium
        self.made: list[Person] = []

    def __call__(self, url: str, **options: Any) -> Person:
        person = Person(self.chromium, url, **options)
        self.made.append(person)
        return person


@pytest.fixture
def people(browser: Any) -> Iterator[Crowd]:  # noqa: F811
    crowd = Crowd(browser)
    yield crowd
    for person in crowd.made:
        person.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_people_chat_safely(people: Crowd, tmp_path: Path) -> None:
    with live_server("chat", "--history", str(tmp_path / "h.sqlite3")) as srv:
        ann = people(srv.url)
        # Reading needs no name: #general and its (empty) history, the prompt still hidden.
        ann.page.wait_for_selector("#chat-state:text('reading as a guest')", timeout=WAIT)
        assert ann.page.locator("#chat-title").inner_text() == "#general"
        assert ann.page.is_hidden("#chat-nick")
        # The first message asks for a nickname, then goes out by itself.
        ann.say("hello everyone")
        ann.name("ann")
        ann.see("hello everyone")
        assert ann.page.input_value("#chat-text") == ""
        cookie = {c["name"]: c for c in ann.context.cookies()}["comptoir_chat_nick"]
        assert cookie["value"] == "ann" and cookie["path"] == "/"

        bob = people(srv.url)
        bob.see("hello everyone")  # the history, on load
        bob.say("/nick bob")
        ann.page.locator("#chat-people li", has_text="bob").wait_for(timeout=WAIT)
        # Typing shows on the other side.
        bob.page.type("#chat-text", "ty")
        ann.page.wait_for_selector("#chat-typing:text('bob is typing')", timeout=WAIT)

        payloads = [
            "<img src=x onerror=window.__pwned=1>",
            "<script>window.__pwned=2</script>",
            "name\u202egnp.exe",
            "w" * 3000,
            "see https://example.com/a?b=1, or javascript:alert(1) and <a href=javascript:x>y</a>",
        ]
        for text in payloads:
            bob.say(text)
        ann.see("see https://example.com")
        shown = ann.texts()[-5:]
        assert shown[:2] == payloads[:2]  # as text, exactly
        assert shown[2] == "namegnp.exe"  # the override is stripped (server side)
        assert shown[3] == "w" * 3000
        assert ann.page.locator("#chat-messages img, #chat-messages script").count() == 0
        assert ann.page.evaluate("window.__pwned") is None
        links = ann.page.locator("#chat-messages a")
        assert links.count() == 1
        assert links.get_attribute("href") == "https://example.com/a?b=1"
        assert links.get_attribute("rel") == "noopener noreferrer"
        # A very long word wraps: nothing wider than the message list.
        width = "(e) => [e.scrollWidth, e.clientWidth]"
        scroll, client = ann.page.locator("#chat-messages").evaluate(width)
        assert scroll <= client
        # Local times on each message.
        assert ann.page.locator("#chat-messages li[data-id] time[datetime]").count() == 6

        # A direct message: bob's list gets the conversation, with its unread count.
        ann.page.locator("#chat-people .chat-person", has_text="bob").click()
        assert ann.page.locator("#chat-title").inner_text() == "@bob"
        ann.say("psst")
        ann.see("psst")
        bob.page.wait_for_selector('.chat-conv[data-key="@ann"] .chat-unread', timeout=WAIT)
        assert bob.unread("@ann") == "1"
        bob.page.click('.chat-conv[data-key="@ann"]')
        bob.see("psst")
        assert bob.unread("@ann") == ""

        # Back later: the cookie names ann, who writes at once.
        ann.page.reload()
        ann.page.wait_for_selector("#chat-people li:text('ann (you)')", timeout=WAIT)
        ann.say("back")
        ann.see("back")
        assert ann.page.is_hidden("#chat-nick")


def test_rooms_unread_counts_and_keyboard(people: Crowd, tmp_path: Path) -> None:
    with live_server("chat", "--history", str(tmp_path / "h.sqlite3")) as srv:
        ann = people(srv.url)
        bob = people(srv.url)
        for person, nick in ((ann, "ann"), (bob, "bob")):
            person.say(f"/nick {nick}")
            person.page.wait_for_selector(f"#chat-people li:text('{nick} (you)')", timeout=WAIT)
        # Ctrl+K goes to the room box; a new room is made and shown.
        ann.page.keyboard.press("Control+k")
        ann.page.keyboard.type("dev")
        ann.page.keyboard.press("Enter")
        ann.page.wait_for_selector('.chat-conv[data-key="#dev"][aria-current]', timeout=WAIT)
        assert ann.page.locator("#chat-title").inner_text() == "#dev"
        # Alt+Up: back to #general, from where #dev's news are counted.
        ann.page.keyboard.press("Alt+ArrowUp")
        assert ann.page.locator("#chat-title").inner_text() == "#general"
        bob.page.fill("#chat-join-name", "dev")
        bob.page.press("#chat-join-name", "Enter")
        bob.page.wait_for_selector('.chat-conv[data-key="#dev"][aria-current]', timeout=WAIT)
        for i in range(3):
            bob.say(f"dev news {i}")
        bob.see("dev news 2")
        ann.page.wait_for_selector(
            '.chat-conv[data-key="#dev"] .chat-unread:text("3")', timeout=WAIT
        )
        assert ann.unread("#general") == ""
        assert ann.page.title().startswith("(3) ")
        ann.page.click('.chat-conv[data-key="#dev"]')
        ann.see("dev news 2")
        assert ann.unread("#dev") == ""
        # "/" reaches the message box from anywhere; "?" opens the help, Escape closes it.
        ann.page.click("#chat-title")
        ann.page.keyboard.press("?")
        assert ann.page.is_visible("#chat-help")
        assert "Enter" in ann.page.locator("#chat-help").inner_text()
        ann.page.keyboard.press("Escape")
        assert ann.page.is_hidden("#chat-help")
        ann.page.keyboard.press("/")
        assert ann.page.evaluate("document.activeElement.id") == "chat-text"


def test_a_crowded_room_shows_its_count_and_lists_on_request(people: Crowd, tmp_path: Path) -> None:
    import asyncio
    import threading

    import websockets

    history = str(tmp_path / "h.sqlite3")
    with live_server("chat", "--history", history, "--max-per-ip", "200") as srv:
        ready = threading.Event()
        done = threading.Event()

        async def hold() -> None:
            url = "ws" + srv.url.rstrip("/").removeprefix("http") + "/ws"
            # Past core.PRESENCE_LIVE; reading all they are sent (a client whose queue is full
            # stops reading, and its close then waits for the timeout).
            crowd = [await websockets.connect(url, max_queue=None) for _ in range(110)]
            ready.set()
            while not done.is_set():
                await asyncio.sleep(0.05)
            for ws in crowd:
                await ws.close()

        holder = threading.Thread(target=asyncio.run, args=(hold(),))
        holder.start()
        try:
            assert ready.wait(30)
            ann = people(srv.url)
            note = ann.page.locator("#chat-people li", has_text="111 here")
            note.wait_for(timeout=WAIT)
            assert "too many to follow" in note.inner_text()
            note.get_by_role("button", name="List them").click()
            listed = ann.page.locator("#chat-messages li", has_text="In #general:")
            listed.wait_for(timeout=WAIT)
            assert listed.inner_text().count("guest") == 111
            assert ann.problems == []
        finally:
            done.set()
            holder.join(30)


def test_offline_then_back_gets_each_missed_message_once(people: Crowd, tmp_path: Path) -> None:
    history = str(tmp_path / "h.sqlite3")
    port = free_port()
    with live_server("chat", "--history", history, "--port", str(port)) as srv:
        ann = people(srv.url)
        bob = people(srv.url)
        bob.say("/nick bob")
        bob.say("before")
        ann.see("before")
        # The network goes: a banner, and bob talks meanwhile.
        ann.context.set_offline(True)
        ann.page.wait_for_selector("#chat-offline:not([hidden])", timeout=WAIT)
        assert "Offline" in ann.page.inner_text("#chat-offline")
        missed = [f"missed {i}" for i in range(5)]
        for text in missed:
            bob.say(text)
        bob.see("missed 4")
        ann.context.set_offline(False)
        ann.see("missed 4")
        ann.page.wait_for_selector("#chat-offline", state="hidden", timeout=WAIT)
        bob.say("after")
        ann.see("after")
        assert ann.texts() == ["before", *missed, "after"]
        # The server itself sent each once: recovery from the last id, no history replayed.
        assert [ann.sent(t) for t in ["before", *missed, "after"]] == [1] * 7
        assert any("last_id=" in url for url in ann.sockets[1:])
    # The server restarts (same port, same history): the page reconnects by itself, and what
    # was posted before it did arrives once.
    with live_server("chat", "--history", history, "--port", str(port)) as srv:
        r = httpx.post(
            srv.url + "api/rooms/general/messages", json={"text": "while away", "nick": "carol"}
        )
        assert r.status_code == 201
        ann.see("while away")
        bob.see("while away")
        assert ann.texts() == ["before", *missed, "after", "while away"]
        assert ann.sent("while away") == 1 and ann.sent("before") == 1


def test_a_phone_and_the_dark_theme(people: Crowd, tmp_path: Path) -> None:
    with live_server(
        "chat", "--history", str(tmp_path / "h.sqlite3"), "--rooms", "general,dev"
    ) as srv:
        phone = people(
            srv.url,
            viewport={"width": 390, "height": 844},
            is_mobile=True,
            has_touch=True,
            color_scheme="light",
        )
        page = phone.page
        # The state line is left out on a phone: the connection is known from the people list.
        page.wait_for_selector("#chat-people li:text('(you)')", state="attached", timeout=WAIT)
        # Nothing wider than the screen; the message box and the menu are on it.
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        box = page.locator("#chat-text").bounding_box()
        assert box is not None and box["y"] + box["height"] <= 844 and box["x"] >= 0
        assert page.is_visible("#chat-menu") and page.is_hidden("#chat-side")
        # The rooms slide in from the menu; another room is one tap away.
        page.tap("#chat-menu")
        page.wait_for_selector("#chat-side", state="visible", timeout=WAIT)
        page.locator(".chat-conv", has_text="#dev").tap()
        page.wait_for_selector('.chat-conv[data-key="#dev"][aria-current]', state="attached")
        assert page.locator("#chat-title").inner_text() == "#dev"
        page.wait_for_selector("#chat-side", state="hidden", timeout=WAIT)
        phone.say("from my phone")
        phone.name("pat")
        phone.see("from my phone")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        # The theme switch of every page: dark colours, the chat's too.
        page.goto(srv.url + ".comptoir/theme?set=dark&next=/")
        # The page opens on #general again, #dev kept in the list (this browser's storage).
        page.tap("#chat-menu")
        page.locator('.chat-conv[data-key="#dev"]').tap()
        phone.see("from my phone")
        assert page.get_attribute("html", "data-theme") == "dark"
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(21, 21, 23)"


def test_under_a_path_with_a_password(people: Crowd, tmp_path: Path) -> None:
    sites = tmp_path / "sites.toml"
    sites.write_text(
        '[[site]]\ndefault = true\npath = "/team"\nkind = "chat"\nhistory = "h.sqlite3"\n',
        encoding="utf-8",
    )
    env = {"COMPTOIR_PASSWORD": "sesame-sesame"}
    with live_server("run", str(sites), "--password", env=env) as srv:
        base = srv.url  # the banner's URL has the site's path
        ann = people(base)
        ann.page.fill("#password", "sesame-sesame")
        ann.page.click("button[type=submit]")
        ann.page.wait_for_url(base, timeout=WAIT)
        ann.page.wait_for_selector("#chat-state:text('reading as a guest')", timeout=WAIT)
        ann.say("behind the door")
        ann.name("ann")
        ann.see("behind the door")
        assert ann.page.url == base and base.endswith("/team/")
        assert ann.sockets[0] == "ws" + base.removeprefix("http") + "ws"
        cookie = {c["name"]: c for c in ann.context.cookies()}["comptoir_chat_nick"]
        assert cookie["path"] == "/team/"
        # The room list comes from the API under the path, through the session.
        ann.page.wait_for_selector('.chat-conv[data-key="#general"]', timeout=WAIT)
