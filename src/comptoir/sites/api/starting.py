"""What a worker serves for an api site: the site (app.py), made in the background when the cache
has every table, answering rows by key from the cache meanwhile.

Importing Polars is 0.8 to 1.2 s of a worker's start on one core, reading the tables back from the
cache 0.2 s more: a start that waited for them answered its first request two seconds after the
command. When the cache (cache.py) has every table as its file now is, the worker instead starts
serving at once, without Polars: the site is made in a thread, and until it is ready

- `GET /api/<table>/<key>` with an integer key, nothing else asked, is answered from the rows
  written as JSON (rowstore.py) — the very bytes and headers the site answers with — as long as
  the data file is the one the cache holds and no journal of writes is beside it (both checked at
  each such request: two `stat`s);
- every other request waits for the site, then is the site's.

Without the cache (a first start, a file edited since), the site is made before serving, as it
always was, and a file that cannot be served stops the start.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from comptoir.sites.api import ApiOptions, cache
from comptoir.sites.api.files import journal_path
from comptoir.sites.api.rowstore import RowStore, json_etag
from comptoir.sites.contract import SiteContext
from comptoir.sites.toolkit import wants_html
from comptoir.terminal import write_line
from comptoir.types import Receive, Scope, Send

if TYPE_CHECKING:
    from comptoir.sites.api.app import ApiSite

# A key as the site reads it from a path: an integer spelled as Python writes it (`01`, `+1`
# are the site's to answer).
_KEY = re.compile(r"-?[1-9][0-9]{0,19}|0")  # no integer column holds more digits
_CORS = (b"access-control-allow-origin", b"*")


@dataclass(frozen=True)
class EarlyRows:
    """One table's rows as the cache holds them, and what tells they are still the file's."""

    path: Path
    stamp: list[int]
    first: int
    rows: RowStore

    def current(self) -> bool:
        """Whether the data file is the one the rows were read from, with no writes beside it."""
        try:
            if cache.stamp(self.path) != self.stamp:
                return False
        except OSError:
            return False
        return not os.path.lexists(journal_path(self.path))


class ApiApp:
    """The ASGI app of an api site in a worker (see the module's docstring)."""

    def __init__(self, options: ApiOptions, context: SiteContext) -> None:
        self.options = options
        self.log: Callable[[str], None] = write_line
        self.site: ApiSite | None = None
        self.early: dict[str, EarlyRows] = {}
        self._made: Future[ApiSite] = Future()
        self._started: asyncio.Task[ApiSite] | None = None
        if not _all_cached(options):
            self.site = self._make(options, context)
            self._made.set_result(self.site)
            return
        self.early = _early_rows(options)
        threading.Thread(
            target=self._make_later, args=(options, context), name="comptoir-api", daemon=True
        ).start()

    def _make(self, options: ApiOptions, context: SiteContext) -> ApiSite:
        from comptoir.sites.api.app import ApiSite

        site = ApiSite(options, context)
        site.log = lambda line: self.log(line)
        return site

    def _make_later(self, options: ApiOptions, context: SiteContext) -> None:
        try:
            self._made.set_result(self._make(options, context))
        except BaseException as exc:  # what a start that read the tables first would have said
            self._made.set_exception(exc)
            self.log(f"api: the tables could not be read: {exc}")
            # As when the site is made before serving: the server stops, with the reason said.
            context.request_shutdown()

    # --- the worker's life -----------------------------------------------------------------

    async def start(self) -> None:
        """At the worker's start: what a crash left in a journal goes into its file — now when
        the site is made, else once it is (requests wait for that too)."""
        if self.site is not None:
            await self.site.live.start()
            return
        self._started = asyncio.ensure_future(self._start())

    async def _start(self) -> ApiSite:
        site = await asyncio.wrap_future(self._made)  # a failure was said by _make_later
        try:
            await site.live.start()
        except Exception as exc:
            self.log(f"api: the journals could not be applied: {exc}")
            raise
        self.site = site
        self.early = {}  # the site reads its own rows file: its offsets need not be held twice
        return site

    async def close(self) -> None:
        """At the worker's end: every write in its file."""
        try:
            site = await self._ready()
        except Exception:
            return  # never made: nothing written
        await site.live.close()

    async def _ready(self) -> ApiSite:
        if self._started is not None:
            return await asyncio.shield(self._started)
        if self.site is None:
            # No start yet (an app served without a lifespan, as in tests): the site as made.
            self.site = await asyncio.wrap_future(self._made)
            self.early = {}
        return self.site

    # --- requests --------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one request: the site's, or a row by key while the site is being made."""
        site = self.site
        if site is None and scope["type"] == "http":
            body = self._early_row(scope)
            if body is not None:
                await _send_row(scope, send, body)
                return
            try:
                site = await self._ready()
            except Exception:
                # Said in the server's log; the reason (paths, file contents) is not the
                # client's business.
                await _send_unavailable(scope, send, "the tables could not be read")
                return
        elif site is None:
            site = await self._ready()
        await site(scope, receive, send)

    def _early_row(self, scope: Scope) -> bytes | None:
        """`GET /api/<table>/<key>` from the cache's rows, as the site answers it; None for
        anything else, or when the rows may no longer be the file's."""
        if scope["method"] not in ("GET", "HEAD") or scope["query_string"]:
            return None
        path = scope["path"]
        if not path.startswith("/api/") or b"%" in (scope.get("raw_path") or b"%"):
            return None
        name, _, key = path[len("/api/") :].partition("/")
        rows = self.early.get(name)
        if rows is None or not _KEY.fullmatch(key) or wants_html(scope):
            return None
        if any(route.match(path) is not None for route in self.options.route):
            return None
        at = int(key) - rows.first
        if not 0 <= at < rows.rows.rows or not rows.current():
            return None
        return rows.rows.row(at)  # None: the file cut short since (the site answers)


def _all_cached(options: ApiOptions) -> bool:
    """Whether the cache has every table as its file is now."""
    keys = options.keys()
    types = options.column_types()
    return all(
        cache.lookup(path, key=keys.get(name), types=types.get(name), strict=options.strict)
        for name, path in options.table_sources()
    )


def _early_rows(options: ApiOptions) -> dict[str, EarlyRows]:
    """The tables whose rows by key the cache can answer: integer keys in order, rows written."""
    keys = options.keys()
    types = options.column_types()
    out: dict[str, EarlyRows] = {}
    for name, path in options.table_sources():
        entry = cache.lookup(path, key=keys.get(name), types=types.get(name), strict=options.strict)
        if entry is None or entry.span is None:
            continue
        rows = entry.row_store()
        if rows is not None and rows.rows == entry.span[1]:
            out[name] = EarlyRows(path, entry.meta["stamp"], entry.span[0], rows)
    return out


async def _send_row(scope: Scope, send: Send, body: bytes) -> None:
    """A row as the site sends it (app.ApiSite._send_body, with the row's ETag)."""
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        _CORS,
        (b"cache-control", b"no-cache"),
        (b"etag", json_etag(body).encode()),
        (b"access-control-expose-headers", b"ETag"),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})


async def _send_unavailable(scope: Scope, send: Send, message: str) -> None:
    import json

    body = json.dumps({"error": message}).encode() + b"\n"
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        _CORS,
        (b"cache-control", b"no-cache"),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})
