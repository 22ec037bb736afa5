"""`comptoir talk URL`: a terminal client of a chat site (`comptoir chat`), over its JSON protocol.

Three ways to use it:

- at a terminal: incoming messages are printed above the input line, which is redrawn with what
  was being typed (readline keeps the line editing and history); `/commands` as on the TCP door;
- `--send TEXT`: one message, then exit 0 once the server has sent it back (it is stored);
- lines piped on stdin: each line a message (or a `/command`), exit at EOF once every message was
  acknowledged. Scripts are kept within the site's `--rate` (given in the welcome event).

Reading the terminal blocks, so a thread does it and hands each line to the event loop; the loop
alone talks to the server and prints. A password goes in an `Authorization: Basic` header on the
handshake, which the password gate accepts as it does for any script (security/auth.py).
Everything a user can get wrong (the URL, the password, a server that is not there) ends with
one line on stderr, never a traceback: exit 2 for usage, 1 for everything else.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import getpass
import os
import re
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

import orjson

from comptoir.errors import ConfigError
from comptoir.sites.chat.protocol import joined_line

SUBPROTOCOL = "comptoir.chat.v1"
# Terminal controls (ESC, C0 and C1 but tab and newline) and bidirectional overrides.
_TERMINAL_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
PASSWORD_ENV = "COMPTOIR_PASSWORD"
# How long the server has to answer: the handshake, the welcome, a message's acknowledgement.
ANSWER_TIMEOUT = 10.0
PROMPT = "> "
HELP = (
    "commands: /nick NAME, /join ROOM, /leave [ROOM], /who [ROOM], /rooms, /dm NICK TEXT, "
    "/help, /quit; any other line is a message to your current room"
)


class TalkError(Exception):
    """Something that ends the client, said in one line (exit code 1)."""


@dataclass(frozen=True)
class Endpoint:
    """Where the chat is: its WebSocket URL and the site's HTTP root (for the API)."""

    ws: str
    http: str

    @property
    def shown(self) -> str:
        """The address as messages show it."""
        return self.ws


def endpoint(url: str) -> Endpoint:
    """The chat's addresses from what the user typed (ConfigError when it is no URL).

    `ws://host:port/ws` is taken as is; `http://host:port/prefix/` (a chat site's page, mounted
    anywhere) gives `ws://host:port/prefix/ws`; `host:port` means `http://host:port/`.
    """
    text = url.strip()
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https", "ws", "wss") or not parts.hostname:
        raise ConfigError(f"not a chat URL: {url!r} (try http://HOST:PORT/ or ws://HOST:PORT/ws)")
    try:
        parts.port  # noqa: B018  (raises ValueError for a port out of range)
    except ValueError:
        raise ConfigError(f"not a chat URL: {url!r} (a bad port)") from None
    secure = scheme in ("https", "wss")
    path = parts.path or "/"
    if scheme in ("http", "https") and not path.rstrip("/").endswith("/ws"):
        path = path.rstrip("/") + "/ws"
    site = path.rstrip("/").removesuffix("/ws")
    netloc = parts.netloc.rpartition("@")[2]  # credentials in a URL would be printed back
    ws = urlunsplit(("wss" if secure else "ws", netloc, path, parts.query, ""))
    http = urlunsplit(("https" if secure else "http", netloc, site + "/", "", ""))
    return Endpoint(ws, http)


def read_password(env: dict[str, str] | None = None) -> str:
    """The password: $COMPTOIR_PASSWORD, else asked at the terminal (never echoed)."""
    value = (os.environ if env is None else env).get(PASSWORD_ENV)
    if value:
        return value
    try:
        # getpass reads /dev/tty when there is one: stdin may be the lines a script pipes.
        return getpass.getpass("Password: ")
    except (EOFError, OSError):
        raise ConfigError(f"--password: no terminal to ask on; set {PASSWORD_ENV}") from None


def basic_header(password: str) -> str:
    """`Authorization` for the password gate (it ignores the user name)."""
    return "Basic " + base64.b64encode(b":" + password.encode()).decode()


class TokenBucket:
    """The site's `--rate` on this side: a script never sends faster than it may."""

    def __init__(self, per_second: float, burst: float) -> None:
        self.rate = per_second
        self.burst = max(1.0, burst)
        self.tokens = self.burst
        self.stamp = time.monotonic()

    async def take(self) -> None:
        """Wait for a token."""
        while True:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= 1:
                self.tokens -= 1
                return
            await asyncio.sleep((1 - self.tokens) / self.rate)


def _bucket(rate: object) -> TokenBucket:
    from comptoir.sites.chat.text import parse_rate

    try:
        per_second, burst = parse_rate(str(rate))
    except ValueError:
        per_second, burst = 20.0, 20.0
    # A little below the site's rate: the server's clock and ours do not tick together.
    return TokenBucket(per_second * 0.9, max(1.0, burst - 1))


@dataclass
class Output:
    """Where lines go: printed above the input line at a terminal, plainly otherwise."""

    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    interactive: bool = False
    line_buffer: Callable[[], str] = field(default=lambda: "")  # the line being typed

    @staticmethod
    def no_buffer() -> str:
        """No line is being typed (not at a terminal)."""
        return ""

    def show(self, line: str, *, error: bool = False) -> None:
        """One line for the user; at a terminal, the line being typed is drawn again below.
        What a server sent is shown without terminal controls: any server (talk connects where
        it is told) could otherwise set the title, the clipboard or the colours."""
        line = _TERMINAL_UNSAFE.sub("", line)
        if self.interactive:
            # Carriage return and "erase line": the prompt and what was typed make way for the
            # line, then come back under it.
            self.out.write(f"\r\x1b[K{line}\n{PROMPT}{self.line_buffer()}")
            self.out.flush()
        else:
            stream = self.err if error else self.out
            stream.write(line + "\n")
            stream.flush()


def _indented(text: object) -> str:
    """A message's lines after its first indented: none can pass for another author's line."""
    return str(text).replace("\n", "\n    ")


def _clock(ts: object) -> str:
    if not isinstance(ts, int):
        return ""
    return time.strftime("%H:%M ", time.localtime(ts / 1000))


class Talk:
    """One connection to a chat site and what the user does with it (see the module)."""

    def __init__(self, ws: Any, output: Output, *, quiet: bool) -> None:
        self.ws = ws
        self.output = output
        # Scripts (--send, piped lines) see only answers to their commands and errors.
        self.quiet = quiet
        self.nick = ""
        self.room = "general"
        self.rooms: set[str] = set()
        self.bucket = TokenBucket(20.0, 20.0)
        self.max_message = 4096
        # Messages sent and not yet seen back (or refused by an error event), oldest first.
        self.unacked: deque[dict[str, Any]] = deque()
        self.waiters: list[tuple[Callable[[dict[str, Any]], bool], asyncio.Future[Any]]] = []
        # Events as numbered: a request waits for an answer among those after it, which may
        # have been read before it started waiting (the reader runs ahead).
        self.count = 0
        self.recent: deque[tuple[int, dict[str, Any]]] = deque(maxlen=1000)
        self.failed = False
        self.closed: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    # Receiving -----------------------------------------------------------------------------

    async def receive(self) -> None:
        """Read events until the connection ends (the reason in `closed`)."""
        from websockets.exceptions import ConnectionClosed

        # However it closed, the close code below says how.
        with contextlib.suppress(ConnectionClosed):
            async for frame in self.ws:
                try:
                    event = orjson.loads(frame)
                except orjson.JSONDecodeError:
                    continue  # a plain line before the JSON welcome: not for this client
                if isinstance(event, dict):
                    await self.handle(event)
        rcvd = getattr(self.ws, "close_code", None)
        reason = getattr(self.ws, "close_reason", "") or ""
        if not self.closed.done():
            self.closed.set_result(_closed_message(rcvd, reason))
        for _, future in self.waiters:
            if not future.done():
                future.set_exception(TalkError(self.closed.result()))

    async def handle(self, event: dict[str, Any]) -> None:
        """Show one event, answer pings, settle what waits for it."""
        self.count += 1
        self.recent.append((self.count, event))
        kind = event.get("type")
        if kind == "ping":
            await self.ws.send('{"type":"pong"}')
        elif kind == "welcome":
            self.nick = str(event.get("nick", ""))
            self.bucket = _bucket(event.get("rate"))
            self.max_message = int(event.get("max_message") or self.max_message)
        elif kind == "joined":
            self.rooms.add(str(event.get("room")))
        elif kind == "left":
            self.rooms.discard(str(event.get("room")))
        elif kind == "nick" and event.get("from") == self.nick:
            self.nick = str(event.get("nick"))
        elif kind in ("message", "dm") and event.get("from") == self.nick and self.unacked:
            self.unacked.popleft()
        elif kind == "error" and event.get("code") != "rate_limited" and self.unacked:
            self.unacked.popleft()  # the message it answers was refused
            self.failed = True
        claimed = False
        for predicate, future in list(self.waiters):
            if not future.done() and predicate(event):
                future.set_result(event)
                claimed = True
        if not (claimed and kind == "error"):  # a refusal waited for is said by the waiter
            self.show(event)

    def show(self, event: dict[str, Any]) -> None:
        """An event as a line (typing and protocol events are not shown)."""
        kind = event.get("type")
        room = event.get("room")
        where = "" if room in (None, self.room) else f"#{room} "
        who = event.get("from")
        line: str | None = None
        if kind == "error":
            if event.get("code") == "rate_limited":
                return
            self.output.show(f"! {event.get('message')}", error=True)
            return
        if kind == "who":
            members = ", ".join(event.get("members") or ()) or "nobody"
            self.output.show(f"* in #{room}: {members}")
            return
        if self.quiet:
            return
        if kind == "message":
            line = f"{_clock(event.get('ts'))}{where}{who}: {_indented(event.get('text'))}"
        elif kind == "dm":
            text = _indented(event.get("text"))
            line = f"{_clock(event.get('ts'))}(dm) {who} → {event.get('to')}: {text}"
        elif kind in ("join", "leave") and who != self.nick:
            verb = "joined" if kind == "join" else "left"
            line = f"* {who} {verb} #{room}"
        elif kind == "nick":
            line = f"* {who} is now {event.get('nick')}"
        elif kind == "joined":
            line = joined_line(str(room), list(event.get("members") or ()), event.get("count"))
        elif kind == "left":
            line = f"* you left #{room}"
        elif kind == "truncated":
            line = f"* older messages of #{room} are no longer kept: some were missed"
        elif kind == "welcome":
            line = f"* connected as {self.nick}; /help lists the commands"
        if line is not None:
            self.output.show(line)

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], after: int = 0
    ) -> dict[str, Any]:
        """The first event after number `after` that `predicate` accepts (TalkError when the
        connection ends first)."""
        for number, event in self.recent:
            if number > after and predicate(event):
                return event
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        entry = (predicate, future)
        self.waiters.append(entry)
        try:
            waited: asyncio.Future[Any] = future
            done, _ = await asyncio.wait(
                [waited, self.closed], timeout=ANSWER_TIMEOUT, return_when="FIRST_COMPLETED"
            )
            if future in done:
                return future.result()
            if self.closed.done():
                raise TalkError(self.closed.result())
            raise TalkError(f"no answer from the server in {ANSWER_TIMEOUT:.0f} s")
        finally:
            self.waiters.remove(entry)

    # Sending --------------------------------------------------------------------------------

    async def send(self, frame: dict[str, Any]) -> None:
        """One frame, within the site's rate."""
        await self.bucket.take()
        await self.ws.send(orjson.dumps(frame).decode())

    async def set_nick(self, nick: str) -> None:
        """Take a nickname (TalkError with the server's reason when refused)."""
        old, after = self.nick, self.count
        await self.send({"type": "nick", "nick": nick})
        event = await self.wait_for(
            lambda e: (e.get("type") == "nick" and e.get("from") == old) or _refusal(e), after
        )
        if event["type"] == "error":
            raise TalkError(str(event.get("message")))

    async def join(self, room: str) -> None:
        """Enter a room and write there from now on (TalkError when refused)."""
        wanted, after = room.strip().removeprefix("#").lower(), self.count
        await self.send({"type": "join", "room": wanted})
        event = await self.wait_for(
            lambda e: (e.get("type") == "joined" and e.get("room") == wanted) or _refusal(e),
            after,
        )
        if event["type"] == "error":
            raise TalkError(str(event.get("message")))
        self.room = wanted

    async def say(self, text: str, to: str | None = None) -> None:
        """Send a message to the current room (or a direct message); acknowledged later."""
        if len(text.encode()) > self.max_message:
            self.output.show(f"! longer than {self.max_message} bytes: not sent", error=True)
            self.failed = True
            return
        if to is None:
            frame: dict[str, Any] = {"type": "message", "room": self.room, "text": text}
        else:
            frame = {"type": "dm", "to": to, "text": text}
        self.unacked.append(frame)
        await self.send(frame)

    async def settle(self) -> None:
        """Wait until every message sent was seen back (or refused)."""
        deadline = time.monotonic() + ANSWER_TIMEOUT
        while self.unacked:
            if self.closed.done():
                raise TalkError(self.closed.result())
            if time.monotonic() > deadline:
                raise TalkError(f"{len(self.unacked)} message(s) not acknowledged by the server")
            await asyncio.sleep(0.02)

    async def line(self, text: str, http: str, authorization: str | None) -> bool:
        """One line typed or piped: a /command or a message; False to stop (/quit)."""
        text = text.rstrip("\r\n")
        if not text.strip():
            return True
        if not text.startswith("/"):
            await self.say(text)
            return True
        name, _, rest = text[1:].partition(" ")
        rest = rest.strip()
        name = name.lower()
        try:
            if name == "quit":
                return False
            if name == "help":
                self.output.show(f"* {HELP}")
            elif name == "nick" and rest:
                await self.set_nick(rest)
            elif name == "join" and rest:
                await self.join(rest)
            elif name in ("leave", "part"):
                await self.send({"type": "leave", "room": rest or self.room})
            elif name == "who":
                await self.send({"type": "who", "room": rest.removeprefix("#") or self.room})
            elif name == "rooms":
                self.output.show(await asyncio.to_thread(_rooms_line, http, authorization))
            elif name in ("dm", "msg") and len(rest.split(maxsplit=1)) == 2:
                to, message = rest.split(maxsplit=1)
                await self.say(message, to=to)
            else:
                self.output.show(f"! unknown or incomplete command /{name}; /help", error=True)
                self.failed = True
        except TalkError as exc:
            self.output.show(f"! {exc}", error=True)
            self.failed = True
        return True


def _refusal(event: dict[str, Any]) -> bool:
    """An error event answering a request (a dropped frame's `rate_limited` answers none)."""
    return event.get("type") == "error" and event.get("code") != "rate_limited"


def _rooms_line(http: str, authorization: str | None) -> str:
    request = urllib.request.Request(http + "api/rooms", headers={"accept": "application/json"})
    if authorization:
        request.add_header("authorization", authorization)
    try:
        with urllib.request.urlopen(request, timeout=ANSWER_TIMEOUT) as response:
            rooms = orjson.loads(response.read()).get("rooms", [])
    except (OSError, ValueError) as exc:
        return f"! the rooms could not be listed: {exc}"
    return "* rooms: " + (", ".join(f"#{r['name']} ({r['members']})" for r in rooms) or "none")


def _closed_message(code: int | None, reason: str) -> str:
    if code in (None, 1000, 1001, 1005, 1006) and not reason:
        return "the server closed the connection"
    return f"the server closed the connection ({code}{': ' + reason if reason else ''})"


async def _connect(target: Endpoint, authorization: str | None) -> Any:
    """Open the WebSocket; each way it can fail as one TalkError."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI

    headers = {"authorization": authorization} if authorization else None
    try:
        # No proxy: a chat on the LAN is reached directly, whatever $HTTP_PROXY says.
        return await connect(
            target.ws,
            subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
            additional_headers=headers,
            open_timeout=ANSWER_TIMEOUT,
            proxy=None,
            max_size=2 * 1024 * 1024,
        )
    except InvalidStatus as exc:
        status = exc.response.status_code
        if status in (401, 403):
            if authorization:
                raise TalkError(f"{target.shown}: wrong password (403)") from None
            if await asyncio.to_thread(_needs_password, target.http):
                raise TalkError(
                    f"{target.shown}: the server asks for a password: add --password "
                    f"(or set {PASSWORD_ENV})"
                ) from None
            raise TalkError(
                f"{target.shown}: the server refused the connection ({status})"
            ) from None
        if status == 429:
            raise TalkError(f"{target.shown}: too many failed logins; try again later") from None
        if status == 404:
            raise TalkError(
                f"{target.shown}: no chat here (404): is it a chat site's URL?"
            ) from None
        raise TalkError(f"{target.shown}: the server answered {status}, not a WebSocket") from None
    except InvalidURI as exc:
        raise TalkError(f"not a WebSocket URL: {exc.uri}") from None
    except InvalidHandshake as exc:
        raise TalkError(f"{target.shown}: the handshake failed: {exc}") from None
    except TimeoutError:
        raise TalkError(f"{target.shown}: no answer in {ANSWER_TIMEOUT:.0f} s") from None
    except OSError as exc:
        # asyncio tries each address of the name: its message lists them, not the reason.
        if isinstance(exc, ConnectionRefusedError) or "refused" in str(exc).lower():
            raise TalkError(f"cannot connect to {target.shown}: connection refused") from None
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise TalkError(f"cannot connect to {target.shown}: {reason.lower()}") from None


def _needs_password(http: str) -> bool:
    """Whether the site answers a plain request with a Basic challenge (a password is set)."""
    request = urllib.request.Request(http + "api/rooms", headers={"accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=ANSWER_TIMEOUT):
            return False
    except urllib.error.HTTPError as exc:
        return exc.code == 401 and "basic" in (exc.headers.get("www-authenticate") or "").lower()
    except OSError:
        return False


def _start_reader(
    loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str | None], tty: bool
) -> None:
    """Read stdin in a thread (input() with readline at a terminal), each line to the loop."""

    def read() -> None:
        try:
            while True:
                if tty:
                    try:
                        line = input(PROMPT)
                    except EOFError:
                        break
                else:
                    line = sys.stdin.readline()
                    if not line:
                        break
                loop.call_soon_threadsafe(queue.put_nowait, line)
        except (OSError, ValueError, UnicodeDecodeError):
            pass  # stdin closed or not text: as at its end
        finally:
            with contextlib.suppress(RuntimeError):  # the loop may be gone already
                loop.call_soon_threadsafe(queue.put_nowait, None)

    # A daemon: a read that blocks never keeps the process alive once the chat is over.
    threading.Thread(target=read, name="comptoir-talk-stdin", daemon=True).start()


async def talk(
    url: str,
    *,
    nick: str | None = None,
    room: str | None = None,
    send: str | None = None,
    password: str | None = None,
) -> int:
    """Run the client (see the module); the exit code."""
    target = endpoint(url)
    authorization = basic_header(password) if password else None
    tty = send is None and sys.stdin.isatty() and sys.stdout.isatty()
    line_buffer: Callable[[], str] = Output.no_buffer
    if tty:
        with contextlib.suppress(ImportError):
            import readline  # line editing and history for input(); not on every platform

            line_buffer = readline.get_line_buffer
    output = Output(interactive=tty, line_buffer=line_buffer)
    ws = await _connect(target, authorization)
    client = Talk(ws, output, quiet=not tty)
    receiver = asyncio.create_task(client.receive())
    try:
        await client.wait_for(lambda e: e.get("type") == "welcome")
        await client.wait_for(lambda e: e.get("type") == "joined")
        if nick:
            await client.set_nick(nick)
        if room:
            await client.join(room)
        if send is not None:
            await client.say(send)
            await client.settle()
            return 1 if client.failed else 0
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        _start_reader(asyncio.get_running_loop(), queue, tty)
        while True:
            got = asyncio.ensure_future(queue.get())
            waits: list[asyncio.Future[Any]] = [got, client.closed]
            done, _ = await asyncio.wait(waits, return_when="FIRST_COMPLETED")
            if got not in done:
                got.cancel()
                raise TalkError(client.closed.result())
            line = got.result()
            if line is None or not await client.line(line, target.http, authorization):
                break
        await client.settle()
        if tty:
            output.out.write("\n")
        return 1 if client.failed else 0
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(), 2)
        receiver.cancel()
        with contextlib.suppress(BaseException):
            await receiver


def run_talk(
    url: str,
    *,
    nick: str | None = None,
    room: str | None = None,
    send: str | None = None,
    password: bool = False,
) -> int:
    """`comptoir talk`: the exit code (ConfigError, exit 2, for what the user must fix)."""
    target = endpoint(url)  # a bad URL is a usage error, found before anything else
    del target
    if send is not None and not send.strip():
        raise ConfigError("--send: the message is empty")
    from comptoir.sites.chat.text import BadName, check_nick, check_room

    # The chat's own rules: a name it would refuse is the user's to fix (exit 2).
    for flag, value, check in (("--nick", nick, check_nick), ("--room", room, check_room)):
        try:
            if value is not None:
                check(value)
        except BadName as exc:
            raise ConfigError(f"{flag}: {exc}") from None
    secret = read_password() if password else None
    try:
        return asyncio.run(talk(url, nick=nick, room=room, send=send, password=secret))
    except TalkError as exc:
        sys.stderr.write(f"comptoir: error: {' '.join(str(exc).split())}\n")
        return 1
