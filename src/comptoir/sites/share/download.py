"""Transfer accounting of a share: what a download takes and gives back, and when the share is over.

Every download is planned before it starts (http/plan.py). Its plan says whether it would send
the representation's last byte; if so it takes a slot (limits.py) and keeps it only if that byte
went out. `Downloads.serve` takes the slot from the plan it is given and runs the `respond` that
sends exactly that plan: what counts and what reaches the client come from one decision.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

from comptoir.errors import ClientGone
from comptoir.http.client import client_label
from comptoir.http.plan import Plan
from comptoir.sites.share.archive import ArchiveChanged
from comptoir.sites.share.limits import (
    EXPIRED,
    LEASE_TTL,
    USED_UP,
    Availability,
    DownloadSlots,
    Gone,
)
from comptoir.sites.share.progress import Transfer, TransferBoard
from comptoir.sites.toolkit import header
from comptoir.types import Message, Receive, Scope, Send

# The count key of the archive of everything shared.
ARCHIVE_UNIT = "archive"

Respond = Callable[[Send], Awaitable[None]]


class Download:
    """The `send` of one transfer: counts bytes, notices a cut, draws the transfer's line.

    granian keeps accepting `send` after the client left (the bytes go nowhere), so a cut is
    noticed from `receive()`'s `http.disconnect`, watched by a task while the body goes out.
    A chunk the server cannot take within the stall timeout (the client stopped reading) cuts the
    transfer. A body is finished once its last byte went out: all of its Content-Length (granian may
    report the request over as soon as those are out), else the final body message — which
    carries the body's last bytes itself (http/plan.py reads one chunk ahead), so a client never
    holds the whole body of an answer not yet finished, whether its size is known or not.
    """

    def __init__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        board: TransferBoard,
        label: str,
        stall_timeout: float = 60.0,
    ) -> None:
        self.scope = scope
        self.stall_timeout = stall_timeout
        self.receive = receive
        self._send = send
        self.board = board
        self.label = label
        self.gone = asyncio.Event()
        self.status = 0
        # Bytes of body handed to the server, and how many the response announced.
        self.sent = 0
        self.length: int | None = None
        # The last byte went out (to the server; the network may still lose it).
        self.finished = False
        # No progress for the stall timeout: the transfer was cut.
        self.stalled = False
        self.transfer: Transfer | None = None

    @contextlib.asynccontextmanager
    async def watching(self) -> AsyncIterator[None]:
        """Watch for the client leaving while the body is sent."""
        task = asyncio.create_task(self._watch())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _watch(self) -> None:
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                self.gone.set()
                return

    async def send(self, message: Message) -> None:
        """Pass a message on, or raise ClientGone once the client has left."""
        mtype = message["type"]
        if mtype == "http.response.body" and not message.get("more_body", False):
            # Let a disconnect already on its way be seen before the last byte counts.
            await asyncio.sleep(0)
        if self.gone.is_set():
            if self.finished:
                return  # only the empty closing message is left: nothing was lost
            raise ClientGone()
        if mtype == "http.response.start":
            self.status = message["status"]
            if self.status in (200, 206):
                length = header(message.get("headers", ()), b"content-length")
                self.length = int(length) if length is not None and length.isdigit() else None
                self.transfer = self.board.begin(client_label(self.scope), self.label, self.length)
        elif mtype == "http.response.body":
            try:
                # The server takes a chunk once the client has read enough of the earlier ones:
                # a chunk it cannot take for so long is a client that stopped reading.
                await asyncio.wait_for(self._send(message), self.stall_timeout)
            except TimeoutError:
                self.stalled = True
                raise ClientGone() from None
            body = message.get("body", b"")
            self.sent += len(body)
            if body and self.transfer is not None:
                self.board.advance(self.transfer, len(body))
            if not message.get("more_body", False) or (
                self.length is not None and self.sent >= self.length
            ):
                self.finished = True
            return
        elif mtype == "http.response.pathsend":
            # Only used without --count (see ShareSite.pathsend): the server sends it all.
            await self._send(message)
            if self.transfer is not None:
                self.board.advance(self.transfer, self.transfer.total or 0)
            self.finished = True
            return
        await self._send(message)


class Downloads:
    """The downloads of one share in this worker: slots taken and settled, progress, the end.

    The share is over once the archive, or every file, has had all its complete downloads (in
    any worker): then, and on expiry, this worker asks the server to stop once its own transfers
    are done (`stop`; nothing with --keep).
    """

    def __init__(
        self,
        slots: DownloadSlots,
        board: TransferBoard,
        share_id: str,
        file_units: Callable[[], Iterable[str]],
        stop: Callable[[], None],
        stall_timeout: float = 60.0,
    ) -> None:
        self.slots = slots
        self.stall_timeout = stall_timeout
        self.board = board
        self.over_key = f"share:{share_id}:over"
        # The count keys of every shared file (read from disk: call it in a thread).
        self.file_units = file_units
        self.stop = stop
        self.in_flight = 0
        self.closing = False
        self._stop_requested = False

    def store_over(self) -> bool:
        """True once everything shared has had all its complete downloads (all workers)."""
        return self.slots.count is not None and self.slots.store.get(self.over_key) is not None

    def over(self) -> Availability | None:
        """Why nothing can be downloaded any more, or None while something can."""
        if self.slots.expired():
            return EXPIRED
        if self.store_over():
            return USED_UP
        return None

    def check(self, unit: str) -> Availability:
        """May `unit` be downloaded at all (expiry, the share over, complete downloads left)?"""
        if self.store_over():
            return USED_UP
        return self.slots.check(unit)

    async def serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        unit: str,
        label: str,
        plan: Plan,
        respond: Respond,
    ) -> None:
        """Answer a download of `unit` by `respond(send)`, which sends `plan`.

        A plan that completes a download takes a slot first (410 when none is left), and keeps it
        only if the last byte went out; answers without a body count for nothing.
        """
        available = self.check(unit)
        if not available.ok:
            raise Gone(available)
        if not plan.body:
            # HEAD, 304, 412, 416: no body, nothing to count or draw.
            await respond(send)
            return
        slot = self.slots.take(unit) if plan.completes else None
        download = Download(scope, receive, send, self.board, label, self.stall_timeout)
        self.in_flight += 1
        renewing = asyncio.create_task(self._renew(slot)) if slot is not None else None
        try:
            # Cut, stalled, or a file changed under the transfer: the response stays incomplete,
            # which tells the client; the slot goes back below.
            with contextlib.suppress(ClientGone, OSError, ArchiveChanged):
                async with download.watching():
                    await respond(download.send)
        finally:
            self.in_flight -= 1
            if renewing is not None:
                renewing.cancel()
            counted = plan.completes and download.finished
            if slot is not None and not counted:
                self.slots.give_back(slot)
            if download.transfer is not None:
                self.board.end(download.transfer, finished=download.finished, counted=counted)
        if counted:
            await self._completed(unit, slot)
        self._maybe_stop()

    async def _renew(self, slot: str) -> None:
        """Renew a transfer's slot while it lives: a worker that dies stops renewing it."""
        while True:
            await asyncio.sleep(LEASE_TTL / 3)
            self.slots.renew(slot)

    async def _completed(self, unit: str, slot: str | None) -> None:
        """Count a complete download; past the last one, the share is over."""
        done = self.slots.complete(unit, slot)
        limit = self.slots.count
        if limit is None or done < limit:
            return
        if unit == ARCHIVE_UNIT or await asyncio.to_thread(self._all_files_used_up):
            self.slots.store.set(self.over_key, b"1")
            self.finish()

    def _all_files_used_up(self) -> bool:
        return all(self.slots.used_up(unit) for unit in self.file_units())

    def finish(self) -> None:
        """Everything is used up or expired: stop once this worker's transfers are done."""
        self.closing = True
        self._maybe_stop()

    def _maybe_stop(self) -> None:
        if self.closing and self.in_flight == 0 and not self._stop_requested:
            self._stop_requested = True
            # SIGTERM to the main process: granian lets other workers' transfers finish
            # within --grace.
            self.stop()
