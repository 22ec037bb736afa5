"""The routes of a receive site, all under the capability token:

- `GET /<token>/`: the upload page (or, on `Accept: application/json`, the files received);
- `PUT /<token>/<path>`: one file, the body as is (`curl -T file URL`, the page's uploads);
- `POST /<token>/`: multipart/form-data, one or several files (`curl -F file=@x URL`).

Any other path, a wrong token included, is the same plain 404 as an unknown path.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from typing import Any

from comptoir import terminal
from comptoir.errors import BodyTimeout, ClientGone, HTTPError
from comptoir.http.client import client_label
from comptoir.http.errors import send_error, wants_json
from comptoir.http.listing import human_size
from comptoir.http.numbers import parse_decimal
from comptoir.http.paths import real_root, unquote_bytes
from comptoir.http.responses import send_uncached
from comptoir.sites import SiteContext
from comptoir.sites.receive import ReceiveOptions
from comptoir.sites.receive.body import (
    MULTIPART_OVERHEAD,
    TrackedBody,
    multipart_boundary,
    receive_multipart,
    receive_put,
)
from comptoir.sites.receive.upload import (
    Limits,
    Quota,
    Saved,
    Upload,
    too_large,
    total_exceeded,
)
from comptoir.sites.toolkit import (
    header,
    not_allowed,
    send_allowed,
    send_redirect,
    serve_link,
)
from comptoir.types import Receive, Scope, Send
from comptoir.web import render

# The link is a secret: pages must not leak it to other sites nor to search engines.
ALLOWED_ROOT = "GET, HEAD, POST, PUT, OPTIONS"
ALLOWED_FILE = "PUT, OPTIONS"
# The page and the JSON list show at most this many of the latest files.
LIST_LIMIT = 1000


class ReceiveSite:
    """The ASGI app of a receive site."""

    def __init__(self, options: ReceiveOptions, context: SiteContext) -> None:
        self.options = options
        self.root = real_root(options.root)
        self.token = options.token
        self.base_url = f"{context.prefix}/{options.token}/"
        self.prefix = context.prefix
        self.store = context.store
        self.quiet = context.quiet
        self.request_shutdown = context.request_shutdown
        self.limits = Limits(options.max_size, options.max_total)
        # Keys in the store shared by the workers, distinct for each receive site of a config.
        site_id = hashlib.sha256(f"{options.token}\0{self.root}".encode()).hexdigest()[:16]
        self.key = f"receive:{site_id}:"
        # Requests in progress in this worker, cleaned up if the worker stops under them.
        self.in_flight: set[Upload] = set()
        # What this worker received, for the summary it prints when it stops (as share's).
        self.label = f"receive (worker {os.getpid()}): " if context.workers > 1 else "receive: "
        self.files_received = 0
        self.bytes_received = 0
        self.incomplete = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one request."""
        await serve_link(scope, receive, send, self.token, self._route, home=self.base_url)

    async def _route(self, scope: Scope, receive: Receive, send: Send, rest: str) -> None:
        method = scope["method"]
        if rest == "" and method in ("GET", "HEAD"):
            await send_redirect(scope, send, self.base_url, keep_query=True)
            return
        if rest in ("", "/"):
            if method in ("GET", "HEAD"):
                await self._page(scope, send)
            elif method == "POST":
                await self._upload(scope, receive, send, None)
            elif method == "PUT":
                await self._upload(scope, receive, send, [])
            elif method == "OPTIONS":
                await send_allowed(send, ALLOWED_ROOT)
            else:
                raise not_allowed(ALLOWED_ROOT)
            return
        if method == "PUT":
            # Decoded component by component: an encoded slash is part of a name, not a folder.
            path = [
                unquote_bytes(c.encode("latin-1")).decode("utf-8", "replace")
                for c in rest[1:].split("/")
            ]
            await self._upload(scope, receive, send, path)
        elif method == "OPTIONS":
            await send_allowed(send, ALLOWED_FILE)
        elif method in ("GET", "HEAD"):
            # Received files are not served back: this link only takes.
            raise HTTPError(404, "Not found")
        else:
            raise not_allowed(ALLOWED_FILE)

    # -- uploads -------------------------------------------------------------------------------

    async def _upload(
        self, scope: Scope, receive: Receive, send: Send, path: list[str] | None
    ) -> None:
        """Receive a PUT (`path`: components from the URL) or a multipart POST (`path` None)."""
        length = _content_length(scope)
        self._check_count_left()
        quota = Quota(self.store, self.key + "bytes", self.limits.max_total)
        upload = Upload(self.root, self.limits, quota, self.options.run_id)
        self.in_flight.add(upload)
        body = TrackedBody(receive)
        try:
            if path is not None:
                self._refuse_early_put(upload.quota, length)
                await receive_put(body.receive, upload, path, length)
            else:
                boundary = multipart_boundary(header(scope["headers"], b"content-type") or "")
                self._refuse_early_post(upload.quota, length)
                await receive_multipart(body.receive, upload, boundary)
            counted = self._take_count(len(upload.parts))
            try:
                saved = await upload.commit()
            except BaseException:
                if counted is not None:
                    self.store.incr(self.key + "count", -len(upload.parts))
                raise
        except ClientGone:
            await upload.abort()
            self.incomplete += 1
            # Nobody reads this answer; it gives the access log a status that says what happened.
            with contextlib.suppress(Exception):
                await send_error(scope, send, 400, "Upload incomplete")
            return
        except HTTPError as exc:
            await upload.abort()
            if isinstance(exc, BodyTimeout):
                self.incomplete += 1
            if body.started and not body.ended:
                # Refused in the middle of the body (a limit passed): a client still sending
                # would get a reset, not this answer, if we closed now. Read (and drop) a bounded
                # amount of what is left first, as nginx's lingering close does.
                await body.drain()
            # The rest of the body may be unread: the connection cannot carry another request.
            headers = {**exc.headers, "Connection": "close"}
            raise HTTPError(exc.status, exc.message, headers) from None
        except BaseException:
            await upload.abort()
            raise
        finally:
            self.in_flight.discard(upload)
        self._record(scope, saved)
        await self._send_saved(scope, send, saved)
        if counted is not None and self.options.count is not None and counted >= self.options.count:
            # The Nth file is in and its sender has the answer: the link's work is done. A server
            # that ends by itself says why (exactly one request reaches the count).
            n = self.options.count
            self._say(f"stopping: received {n} file{'s' if n > 1 else ''} (--count {n})")
            self.request_shutdown()

    def _refuse_early_put(self, quota: Quota, length: int | None) -> None:
        """413 before reading a body whose Content-Length already passes a limit."""
        if length is None:
            return
        if self.limits.max_size is not None and length > self.limits.max_size:
            raise too_large(self.limits.max_size)
        # Reserve the whole file now: concurrent uploads cannot together pass --max-total.
        quota.need(length, block=0)

    def _refuse_early_post(self, quota: Quota, length: int | None) -> None:
        # A multipart body is its files plus framing; refuse only what cannot fit.
        limit = self.limits.max_total
        if limit is None or length is None:
            return
        quota.ceiling = length
        if quota.used() + length > limit + MULTIPART_OVERHEAD:
            raise total_exceeded(limit)

    def _check_count_left(self) -> None:
        count = self.options.count
        if count is not None and self.store.get_int(self.key + "count") >= count:
            raise HTTPError(410, "This link has received all the files it accepts")

    def _take_count(self, files: int) -> int | None:
        """Count the request's files against --count (all or none); the new total."""
        if self.options.count is None:
            return None
        total = self.store.incr_below(self.key + "count", self.options.count, files)
        if total is None:
            left = max(0, self.options.count - self.store.get_int(self.key + "count"))
            if not left:
                raise HTTPError(410, "This link has received all the files it accepts")
            # Some room is left, not enough for all: the sender learns how much, to send less.
            raise HTTPError(
                409,
                f"This link accepts {left} more file{'s' if left > 1 else ''}; this upload has"
                f" {files}: send at most {left} at a time",
            )
        return total

    def _record(self, scope: Scope, saved: list[Saved]) -> None:
        """Add the files to the session's list (shared by workers) and say so on the terminal."""
        client = client_label(scope)
        now = time.time()
        for f in saved:
            self.files_received += 1
            self.bytes_received += f.size
            seq = self.store.incr(self.key + "seq")
            entry = {"name": f.name, "size": f.size, "time": now}
            self.store.set(f"{self.key}file:{seq:012d}", json.dumps(entry).encode())
            if not self.quiet:
                # Names are sanitized (no control characters): safe to print as they are.
                terminal.write_line(f"received {f.name} ({human_size(f.size)}) from {client}")

    async def _send_saved(self, scope: Scope, send: Send, saved: list[Saved]) -> None:
        if wants_json(scope):
            files = [{"name": f.name, "size": f.size, "sent_as": f.sent_as} for f in saved]
            body = json.dumps({"files": files}).encode()
            ctype = b"application/json"
        else:
            body = "".join(f"saved: {f.name} ({f.size} bytes)\n" for f in saved).encode()
            ctype = b"text/plain; charset=utf-8"
        await send_uncached(send, 201, body, ctype)

    def received(self) -> list[dict[str, Any]]:
        """The files received while the server runs, oldest first (the latest LIST_LIMIT)."""
        out = []
        for key in self.store.keys(self.key + "file:")[-LIST_LIMIT:]:
            raw = self.store.get(key)
            if raw is not None:
                out.append(json.loads(raw))
        return out

    # -- pages ---------------------------------------------------------------------------------

    async def _page(self, scope: Scope, send: Send) -> None:
        files = self.received()
        if wants_json(scope):
            body = json.dumps({"files": files}).encode()
            ctype = b"application/json"
        else:
            body = render(
                "receive.html",
                prefix=self.prefix,
                upload_url=self.base_url,
                files=[{**f, "human_size": human_size(f["size"])} for f in files],
                limits=self._limits_text(),
                max_size=self.limits.max_size or 0,
            ).encode()
            ctype = b"text/html; charset=utf-8"
        await send_uncached(send, 200, body, ctype, head=scope["method"] == "HEAD", vary=True)

    def _limits_text(self) -> str:
        parts = []
        if self.limits.max_size is not None:
            parts.append(f"up to {human_size(self.limits.max_size)} per file")
        if self.limits.max_total is not None:
            parts.append(f"{human_size(self.limits.max_total)} in all")
        if self.options.count is not None:
            n = self.options.count
            parts.append(f"{n} file{'s' if n > 1 else ''} at most")
        return ", ".join(parts)

    async def shutdown(self) -> None:
        """Lifespan shutdown: remove the temporary files of uploads still in progress, print
        what this worker received (on Ctrl-C as when --count ends the server)."""
        for upload in list(self.in_flight):
            await upload.abort()
            self.incomplete += 1
        n = self.files_received
        incomplete = f", {self.incomplete} incomplete" if self.incomplete else ""
        self._say(
            f"{n} file{'' if n == 1 else 's'} received, {human_size(self.bytes_received)} in all"
            f"{incomplete}"
        )

    def _say(self, text: str) -> None:
        """One line about the site as a whole on the terminal, unless quiet."""
        if not self.quiet:
            terminal.write_line(self.label + text)


def _content_length(scope: Scope) -> int | None:
    """The declared body size, None when the body is chunked; 400 when malformed."""
    text = (header(scope["headers"], b"content-length") or "").strip()
    if not text:
        return None
    length = parse_decimal(text)
    if length is None:
        raise HTTPError(400, "Malformed Content-Length")
    return length
