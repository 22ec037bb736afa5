"""The hub: the chat's core in the main process, reached by every worker over a Unix socket.

With `--workers N`, granian forks N processes, each holding some of the connections; a message
must reach them all, a nickname must be unique across them, and ids must follow one order. The
hub (`ChatHub`, a main-process service: services.py) holds the one `ChatCore` and listens on a
Unix socket in the run's folder, published to the workers (`SiteContext.endpoints`). Each
worker's `HubBroker` opens one connection at start: requests go up as JSON lines `{"rid", "op",
"args"}`, answers come back `{"rid", "ok"}` or `{"rid", "error": [code, message]}`, and every
event of the site comes down as `{"event": ...}` in the order of its ids — an event a request
caused before its answer. The TCP door (tcp.py) uses the same core directly, on the hub's loop.
With one worker and no TCP door there is no hub: the worker holds the core (`services()`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from comptoir.errors import ConfigError
from comptoir.sites.chat.broker import Deliver, dispatch
from comptoir.sites.chat.core import ChatCore, ChatError, keep_presence, make_core

if TYPE_CHECKING:
    from comptoir.sites.chat import ChatOptions
    from comptoir.sites.contract import ServiceContext

# A worker reads its socket all the time; one that lets this much pile up is stuck, and is cut
# off rather than allowed to grow the main process's memory.
WORKER_BACKLOG = 64 * 1024 * 1024
# Longest line either side sends: an event holds at most one --max-message text (1 MiB at most),
# a history-free answer far less.
LINE_LIMIT = 8 * 1024 * 1024

_sockets = itertools.count(1)


class ChatHub:
    """The main-process service holding the chat's core (see the module)."""

    name = "chat"

    def __init__(self, options: ChatOptions, context: ServiceContext) -> None:
        self.options = options
        self.context = context
        self.core: ChatCore | None = None
        self.server: asyncio.AbstractServer | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.ticker: asyncio.Task[None] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    async def start(self) -> list[str]:
        """Open the history, listen on the socket and publish its path."""
        from comptoir.sites.chat import endpoint_name

        try:
            self.core = make_core(self.options)
        except OSError as exc:
            raise ConfigError(f"chat history: {exc}") from None
        folder = self.context.run_dir
        if folder is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="comptoir-chat-")
            folder = Path(self._tmp.name)
        path = folder / f"chat-{next(_sockets)}.sock"
        self.server = await asyncio.start_unix_server(self._worker, path, limit=LINE_LIMIT)
        path.chmod(0o600)
        self.context.publish(endpoint_name(self.options), str(path))
        self.ticker = asyncio.create_task(keep_presence(self.core))
        return []

    async def stop(self) -> None:
        """Close the workers' connections and the history."""
        if self.ticker is not None:
            self.ticker.cancel()
        if self.server is not None:
            self.server.close()
        for writer in list(self.writers):
            writer.close()
        if self.core is not None:
            self.core.history.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    async def _worker(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one worker: its requests, and every event."""
        core = self.core
        assert core is not None
        self.writers.add(writer)

        def send(message: dict[str, Any]) -> None:
            if writer.is_closing():
                return
            if writer.transport.get_write_buffer_size() > WORKER_BACKLOG:
                writer.close()
                return
            writer.write(orjson.dumps(message) + b"\n")

        def deliver(event: dict[str, Any]) -> None:
            send({"event": event})

        subscriber = core.subscribe(deliver)
        try:
            while True:
                try:
                    line = await reader.readline()
                except (ValueError, ConnectionError):
                    return
                if not line:
                    return
                send(answer(core, subscriber, line))
        finally:
            core.unsubscribe(subscriber)
            self.writers.discard(writer)
            writer.close()


def answer(core: ChatCore, subscriber: int, line: bytes) -> dict[str, Any]:
    """The answer to one request line of a worker."""
    try:
        request = orjson.loads(line)
        rid = request["rid"]
        result = dispatch(core, subscriber, request["op"], request["args"])
    except ChatError as exc:
        return {"rid": rid, "error": [exc.code, exc.message]}
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        return {"rid": locals().get("rid"), "error": ["bad_request", str(exc)]}
    return {"rid": rid, "ok": result}


class HubBroker:
    """A worker's broker: the hub's core, over one Unix socket connection."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.task: asyncio.Task[None] | None = None
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.rids = itertools.count(1)
        self.deliver: Deliver | None = None

    async def start(self, deliver: Deliver) -> None:
        """Connect to the hub and follow its events."""
        self.deliver = deliver
        self.reader, self.writer = await asyncio.open_unix_connection(self.path, limit=LINE_LIMIT)
        self.task = asyncio.create_task(self._follow(self.reader, deliver))

    async def _follow(self, reader: asyncio.StreamReader, deliver: Deliver) -> None:
        try:
            # The hub gone, or a line it did not finish: `finally` fails every wait.
            with contextlib.suppress(ValueError, ConnectionError):
                while line := await reader.readline():
                    message = orjson.loads(line)
                    event = message.get("event")
                    if event is not None:
                        deliver(event)
                        continue
                    future = self.pending.pop(message.get("rid"), None)
                    if future is None or future.done():
                        continue
                    error = message.get("error")
                    if error is not None:
                        future.set_exception(ChatError(*error))
                    else:
                        future.set_result(message.get("ok"))
        finally:
            writer, self.writer = self.writer, None
            if writer is not None:
                writer.close()
            for future in self.pending.values():
                if not future.done():
                    future.set_exception(ChatError("unavailable", "the chat is not available"))
            self.pending.clear()
            # Every connection of this worker is told: the chat cannot go on without the hub.
            deliver({"type": "unavailable"})

    async def close(self) -> None:
        """Leave the hub (it frees this worker's nicknames)."""
        writer, self.writer = self.writer, None
        if writer is not None:
            writer.close()
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(BaseException):
                await self.task

    async def call(self, operation: str, *args: Any) -> Any:
        """Ask the hub; its answer, or the ChatError it gave."""
        writer = self.writer
        if writer is None:
            raise ChatError("unavailable", "the chat is not available")
        rid = next(self.rids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[rid] = future
        writer.write(orjson.dumps({"rid": rid, "op": operation, "args": list(args)}) + b"\n")
        return await future
