"""The ASGI app of an api site: custom routes, then the table routes, the OpenAPI document and the
front page.

    GET /                          the tables (a page for browsers, JSON for others)
    GET /openapi.json              OpenAPI 3.1, made from the tables as they are
    GET /api/<table>[.json|.csv|.ndjson]    rows (query.py: filters, sort, pages, facets)
    GET /api/<table>/<key>         one row
    GET /api/<parent>/<key>/<child>         the rows of `child` that point to that row

    POST /api/<table>, PUT|PATCH|DELETE /api/<table>/<key>   with --write (writes.py)

Reads answer any origin (CORS, never with credentials); without --write the tables are read-only:
other methods get 405 with `Allow`. Before a read, the changes other workers wrote are applied,
and a file changed on disk is read again (live.py).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode

import polars as pl

from comptoir.errors import HTTPError
from comptoir.http.paths import location_value
from comptoir.http.reuse import REUSE, Computed
from comptoir.sites import SiteContext
from comptoir.sites.api import ApiOptions
from comptoir.sites.api.errors import ApiError
from comptoir.sites.api.live import LiveTables
from comptoir.sites.api.openapi import openapi_document
from comptoir.sites.api.output import csv_chunks, dumps, json_chunks, ndjson_chunks, row_object
from comptoir.sites.api.pages import curl_line, docs_page, form_target, row_page, table_page
from comptoir.sites.api.query import (
    Query,
    QueryError,
    after_position,
    facet_counts,
    find,
    page_of,
    parse_query,
    typed,
)
from comptoir.sites.api.relations import Relation, find_relations
from comptoir.sites.api.routes import Route, fill
from comptoir.sites.api.rowstore import json_etag
from comptoir.sites.api.tables import Problem as RowProblem
from comptoir.sites.api.tables import Table, load_table
from comptoir.sites.api.writes import Writes
from comptoir.sites.toolkit import send_http_error, wants_html
from comptoir.terminal import write_line
from comptoir.types import Receive, Scope, Send
from comptoir.web import render

READ_METHODS = "GET, HEAD, OPTIONS"
# An integer as Python writes it, of 18 digits at most (any fits in an Int64).
_CANONICAL = re.compile(r"-?[1-9][0-9]{0,17}|0")
FORMATS = {".json": "json", ".csv": "csv", ".ndjson": "ndjson"}
MEDIA = {
    "json": b"application/json",
    "csv": b"text/csv; charset=utf-8",
    "ndjson": b"application/x-ndjson",
}
CORS = (b"access-control-allow-origin", b"*")
# A query string longer than this gets no Link header (it would be four times as long).
MAX_LINK_QUERY = 2048


def load_tables(options: ApiOptions) -> dict[str, Table]:
    """Every table of the options, read now (ConfigError for a file that cannot be served)."""
    tables: dict[str, Table] = {}
    for name, path in options.table_files().items():
        tables[name] = load_table(
            name,
            path,
            key=options.keys().get(name),
            types=options.column_types().get(name),
            strict=options.strict,
        )
    return tables


class ApiSite:
    """The ASGI app of an api site."""

    def __init__(self, options: ApiOptions, context: SiteContext) -> None:
        self.options = options
        self.prefix = context.prefix
        self.log: Callable[[str], None] = write_line
        self.tables = load_tables(options)
        for table in self.tables.values():
            self._report(table.problems, table.skipped)
        self.relations = find_relations(self.tables, options.relation)
        self.routes: tuple[Route, ...] = options.route
        self.live = LiveTables(
            self.tables,
            self._load,
            log=lambda line: self.log(line),
            reported=lambda table: self._report(table.problems, table.skipped),
            reloaded=self._reloaded,
            writable=options.write,
        )
        self.writes = Writes(self.live, self.prefix, options.cors) if options.write else None
        # Rows by key are offered to the outer fast path (`_outer_row`), under the site's mount.
        self._mount = self.prefix.encode("utf-8", "surrogateescape")
        self._rows_at = self._mount + b"/api/"
        self.row_offer = Computed(self._outer_row, under=True)

    def _report(self, problems: list[RowProblem], skipped: int) -> None:
        for problem in problems:
            self.log(f"api: {problem} (row left out)")
        if skipped > len(problems):
            self.log(f"api: … {skipped - len(problems)} more rows left out")

    # --- the request ---------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one request."""
        if scope["type"] != "http":
            return
        method = scope["method"]
        path = scope["path"]
        route, params = self._route(path)
        if route is None and not path.startswith("/api/"):
            # The front page, the OpenAPI document and unknown paths are answered as every site
            # answers them: errors as text, JSON, or a page for a browser, by Accept.
            error = None
            if path not in ("/", "/openapi.json", "/docs"):
                error = HTTPError(404, "Not found")
            elif method not in ("GET", "HEAD", "OPTIONS"):
                error = HTTPError(405, "Method not allowed", {"Allow": READ_METHODS})
            if error is not None:
                await send_http_error(scope, send, error, self.prefix + "/")
                return
        try:
            if self.writes is not None and route is None and path.startswith("/api/"):
                if method == "OPTIONS":
                    await self.writes.options(scope, send, path)
                    return
                if method not in ("GET", "HEAD"):
                    await self.writes.handle(scope, receive, send, path)
                    return
            if method == "OPTIONS":
                await self._preflight(scope, send)
                return
            if method not in ("GET", "HEAD"):
                raise ApiError(
                    405,
                    {"error": f"{method} is not allowed: this API is read-only"},
                    {"Allow": READ_METHODS},
                )
            if route is not None and params is not None:
                await self._send_json(scope, send, await self._custom(route, params))
            elif path == "/":
                await self._front(scope, send)
            elif path == "/docs":
                await self._send_html(scope, send, docs_page(self.prefix))
            elif path == "/openapi.json":
                doc = openapi_document(self.tables, self.relations, self.options, self.prefix)
                await self._send_json(scope, send, doc)
            else:
                await self._api(scope, send, path[len("/api/") :])
        except ApiError as exc:
            await self._send_json(scope, send, exc.body, exc.status, exc.headers)
        except QueryError as exc:
            body = {"error": exc.message, "parameter": exc.parameter}
            await self._send_json(scope, send, body, 400)

    def _route(self, path: str) -> tuple[Route | None, dict[str, Any] | None]:
        for route in self.routes:
            params = route.match(path)
            if params is not None:
                return route, params
        return None, None

    async def _api(self, scope: Scope, send: Send, rest: str) -> None:
        parts = rest.split("/")
        if len(parts) == 1:
            name, fmt = _format(parts[0], scope)
            table = await self._table(name)
            await self._list(scope, send, table, fmt)
            return
        if len(parts) == 2 and parts[1]:
            table = await self._table(unquote(parts[0]))
            row = self._row(table, unquote(parts[1]))
            if wants_html(scope):
                page = row_page(
                    prefix=self.prefix,
                    table=table,
                    relations=self.relations,
                    row=row,
                    host=_host(scope),
                    scheme=_scheme(scope),
                )
                await self._send_html(scope, send, page)
                return
            obj = row_object(row)
            body = dumps(obj)
            # Its ETag, for If-Match on a write (the row's values: the nested rows aside).
            tag = {"ETag": json_etag(body), "Access-Control-Expose-Headers": "ETag"}
            offer: Computed | None = self.row_offer
            if scope["query_string"]:
                await self._nest(table, [obj], self._query(scope, table))
                body = dumps(obj)
                offer = None  # a query: not what the fast path answers (`_outer_row`)
            await self._send_body(scope, send, body, headers=tag, offer=offer)
            return
        if len(parts) == 3 and parts[2]:
            parent = await self._table(unquote(parts[0]))
            self._row(parent, unquote(parts[1]))
            child_name, fmt = _format(unquote(parts[2]), scope)
            child = await self._table(child_name)
            relation = self.relations.link(parent.name, child.name)
            if relation is None:
                message = f"table {child.name!r} does not point to {parent.name!r}"
                raise ApiError(404, {"error": message})
            value = typed(parent, parent.key, unquote(parts[1]), "key")
            await self._list(scope, send, child, fmt, pl.col(relation.column) == value)
            return
        raise ApiError(404, {"error": "Not found"})

    # --- tables and rows -----------------------------------------------------------------

    async def _table(self, name: str) -> Table:
        table = self.tables.get(name)
        if table is None:
            raise ApiError(404, {"error": f"no table {name!r}"})
        await self.live.refresh(name)  # other workers' writes; the file changed on disk
        return self.tables[name]

    def _load(self, name: str) -> Table:
        """Read a table's file again (live.py calls it, in a thread)."""
        options = self.options
        return load_table(
            name,
            self.tables[name].path,
            key=options.keys().get(name),
            types=options.column_types().get(name),
            strict=options.strict,
            keep_later=True,
        )

    def _reloaded(self) -> None:
        """A file was read again: the relations are found again."""
        self.relations = find_relations(self.tables, self.options.relation)

    def _outer_row(self, scope: Scope) -> tuple[bytes, bytes] | None:
        """`GET /api/<table>/<key>` with nothing else asked, from the scope the worker receives
        (the outer fast path calls it: fastpath.py): the row's JSON and ETag as `_api` answers
        them, or None wherever the full stack must answer — a table to bring up to date first
        (other workers' writes, the file's check every second), a key that is no row (404), a
        page for a browser, a query, an escaped path, a custom route."""
        if scope.get("query_string") or scope.get("root_path"):
            return None
        raw = scope.get("raw_path") or b""
        if not raw.startswith(self._rows_at) or b"%" in raw:
            return None
        name, _, key = raw[len(self._rows_at) :].partition(b"/")
        if not key or b"/" in key or wants_html(scope):
            return None
        try:
            live = self.live.live.get(name.decode())
            text = key.decode()
        except UnicodeDecodeError:
            return None
        if live is None or not live.fresh():
            return None
        if self.routes and self._route(raw[len(self._mount) :].decode())[0] is not None:
            return None
        table = self.tables[live.name]
        span = table.span()
        if span is not None and _CANONICAL.fullmatch(text):
            # Keys 1…N and a key written as Python writes integers: what `typed` would make
            # of it, without its checks (a third of this function's time).
            found = int(text) - span[0]
            at: int | None = found if 0 <= found < span[1] else None
        else:
            try:
                at = table.position(typed(table, table.key, text, table.key))
            except QueryError:
                return None
        if at is None:
            return None
        body = table.json_row(at)
        return body, json_etag(body).encode()

    def _row(self, table: Table, text: str) -> dict[str, Any]:
        try:
            key = typed(table, table.key, text, table.key)
        except QueryError:
            raise ApiError(404, {"error": f"no row {text!r} in {table.name!r}"}) from None
        at = table.position(key)
        if at is None:
            raise ApiError(404, {"error": f"no row {text!r} in {table.name!r}"})
        return table.frame.row(at, named=True)

    def _query(self, scope: Scope, table: Table, *, export: bool = False) -> Query:
        return parse_query(
            table,
            _pairs(scope),
            default_limit=self.options.default_limit,
            max_limit=self.options.max_limit,
            export=export,
        )

    # --- lists ---------------------------------------------------------------------------

    async def _list(
        self,
        scope: Scope,
        send: Send,
        table: Table,
        fmt: str,
        where: pl.Expr | None = None,
    ) -> None:
        html = fmt == "json" and wants_html(scope)
        if html:
            target = form_target(_pairs(scope))
            if target is not None:
                # The filter form's fields, as the filter parameter they stand for.
                location = self.prefix + scope["path"]
                location += "?" + urlencode(target) if target else ""
                await _see_other(scope, send, location)
                return
        query = self._query(scope, table, export=fmt != "json")
        if where is not None:
            query.filters.append(where)
        if query.limit is None:
            frame = await asyncio.to_thread(_select, table, query, None)
            await self._stream(scope, send, fmt, frame)
            return
        shown = query.fields
        if shown is not None and not html and (query.embed or query.expand):
            # Nesting needs the key (_embed) and the pointing columns (_expand): selected too,
            # and left out of the answer afterwards.
            needed = ([table.key] if query.embed else []) + query.expand
            query.fields = list(dict.fromkeys([*shown, *needed]))
        # From the indexes on the event loop when they answer at once, else in a thread.
        answer = _quick_page(table, query)
        if answer is None:
            answer = await asyncio.to_thread(_page, table, query)
        frame, total, facets = answer
        headers = {"X-Total-Count": str(total)}
        link = _link(scope, self.prefix, query, total)
        if link:
            headers["Link"] = link
        if fmt != "json":
            await self._stream(scope, send, fmt, frame, headers)
            return
        if html:
            page = table_page(
                prefix=self.prefix,
                path=scope["path"],
                table=table,
                relations=self.relations,
                pairs=_pairs(scope),
                query=query,
                rows=frame.rows(named=True),
                total=total,
                facets=facets,
                title=table.name if where is None else f"{table.name} of this row",
                host=_host(scope),
                scheme=_scheme(scope),
            )
            await self._send_html(scope, send, page)
            return
        rows = [row_object(r) for r in frame.rows(named=True)]
        await self._nest(table, rows, query)
        if shown is not None and query.fields != shown:
            extra = set(query.fields or ()) - set(shown)
            rows = [{k: v for k, v in r.items() if k not in extra} for r in rows]
        body: Any = rows
        if query.facets:
            body = {"rows": rows, "facets": facets, "total": total}
        await self._send_json(scope, send, body, headers=headers)

    async def _nest(self, table: Table, rows: list[dict[str, Any]], query: Query) -> None:
        """`_embed` children and `_expand` parents into `rows`."""
        for child_name in query.embed:
            if child_name not in self.tables:
                raise QueryError("_embed", f"no table {child_name!r}")
            child = await self._table(child_name)
            relation = self.relations.link(table.name, child.name)
            if relation is None:
                raise QueryError("_embed", f"table {child_name!r} does not point to {table.name!r}")
            keys = [r[table.key] for r in rows]
            found = child.frame.filter(pl.col(relation.column).is_in(keys))
            by_parent: dict[Any, list[dict[str, Any]]] = {}
            for r in found.rows(named=True):
                by_parent.setdefault(r[relation.column], []).append(row_object(r))
            for r in rows:
                r[child.name] = by_parent.get(r[table.key], [])
        for column in query.expand:
            relation = self.relations.parent_of(table.name, column)
            if relation is None:
                raise QueryError("_expand", f"column {column!r} points to no table")
            parent = await self._table(relation.parent)
            name = relation.expand_name
            for r in rows:
                at = parent.position(r.get(column)) if r.get(column) is not None else None
                r[name] = row_object(parent.frame.row(at, named=True)) if at is not None else None

    # --- custom routes -------------------------------------------------------------------

    async def _custom(self, route: Route, params: dict[str, Any]) -> Any:
        if route.table is None:
            return route.body
        not_found = route.not_found or {"error": "Not found"}
        if route.require is not None:
            other = await self._table(route.require[0])
            try:
                self._row(other, fill(route.require[1], params))
            except ApiError:
                raise ApiError(404, not_found) from None
        table = await self._table(route.table)
        if route.key is not None:
            try:
                row = row_object(self._row(table, fill(route.key, params)))
            except ApiError:
                raise ApiError(404, not_found) from None
            return {f: row[f] for f in route.fields} if route.fields else row
        query = Query(limit=None)
        for column, template in route.where:
            try:
                value = typed(table, column, fill(template, params), column)
            except QueryError:
                # A path segment that is no value of the column: nothing there (the route's
                # own values were checked at start).
                raise ApiError(404, not_found) from None
            query.filters.append(pl.col(column) == value)
        frame = await asyncio.to_thread(_select, table, query, None)
        if route.pluck is not None:
            return [row_object({"v": v})["v"] for v in frame[route.pluck].to_list()]
        if route.fields:
            frame = frame.select(route.fields)
        return [row_object(r) for r in frame.rows(named=True)]

    # --- answers -------------------------------------------------------------------------

    async def _front(self, scope: Scope, send: Send) -> None:
        tables = [
            {
                "name": t.name,
                "rows": t.frame.height,
                "key": t.key,
                "columns": [(c, _type(t, c)) for c in t.columns],
                "url": f"{self.prefix}/api/{quote(t.name)}",
                "curl": curl_line(
                    _scheme(scope), _host(scope), f"{self.prefix}/api/{quote(t.name)}?_limit=5"
                ),
            }
            for t in self.tables.values()
        ]
        if not wants_html(scope):
            await self._send_json(scope, send, {"tables": tables})
            return
        body = render("api_index.html", tables=tables, prefix=self.prefix).encode()
        await self._send_html(scope, send, body)

    async def _send_html(self, scope: Scope, send: Send, body: bytes) -> None:
        headers = [
            (b"content-type", b"text/html; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-cache"),
            (b"vary", b"accept"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send(
            {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body}
        )

    async def _preflight(self, scope: Scope, send: Send) -> None:
        headers = [
            CORS,
            (b"access-control-allow-methods", b"GET, HEAD, OPTIONS"),
            (b"access-control-max-age", b"3600"),
            (b"allow", READ_METHODS.encode()),
            (b"content-length", b"0"),
        ]
        for k, v in scope.get("headers", ()):
            if k == b"access-control-request-headers":
                headers.append((b"access-control-allow-headers", v))
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    async def _send_json(
        self,
        scope: Scope,
        send: Send,
        obj: Any,
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> None:
        await self._send_body(scope, send, dumps(obj), status, headers)

    async def _send_body(
        self,
        scope: Scope,
        send: Send,
        body: bytes,
        status: int = 200,
        headers: dict[str, str] | None = None,
        offer: Computed | None = None,
    ) -> None:
        out = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            CORS,
            (b"cache-control", b"no-cache"),
        ]
        out.extend((k.lower().encode(), v.encode("latin-1")) for k, v in (headers or {}).items())
        start = {"type": "http.response.start", "status": status, "headers": out}
        if offer is not None and scope["method"] == "GET":
            start[REUSE] = offer
        await send(start)
        await send(
            {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body}
        )

    async def _stream(
        self,
        scope: Scope,
        send: Send,
        fmt: str,
        frame: pl.DataFrame,
        headers: dict[str, str] | None = None,
    ) -> None:
        out = [(b"content-type", MEDIA[fmt]), CORS, (b"cache-control", b"no-cache")]
        out.extend((k.lower().encode(), v.encode("latin-1")) for k, v in (headers or {}).items())
        await send({"type": "http.response.start", "status": 200, "headers": out})
        if scope["method"] == "HEAD":
            await send({"type": "http.response.body", "body": b""})
            return
        chunks = {"csv": csv_chunks, "ndjson": ndjson_chunks, "json": json_chunks}[fmt](frame)
        # Each chunk is made in a thread (a whole table is many of them), the next one while this
        # one is sent: one chunk ahead, so that memory holds two chunks at most.
        loop = asyncio.get_running_loop()
        ahead = loop.run_in_executor(None, _next, chunks)
        try:
            while (chunk := await ahead) is not None:
                ahead = loop.run_in_executor(None, _next, chunks)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        finally:
            _drop(ahead)
        await send({"type": "http.response.body", "body": b""})


def _scheme(scope: Scope) -> str:
    return "https" if scope.get("scheme") in ("https", "wss") else "http"


def _host(scope: Scope) -> str:
    """The Host header, for the curl lines of the pages (escaped by the templates)."""
    host: bytes = next((v for k, v in scope.get("headers", ()) if k == b"host"), b"localhost")
    return host.decode("latin-1")


async def _see_other(scope: Scope, send: Send, location: str) -> None:
    headers = [(b"location", location_value(location)), (b"content-length", b"0")]
    await send({"type": "http.response.start", "status": 303, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


def _next(chunks: Iterator[bytes]) -> bytes | None:
    return next(chunks, None)


def _drop(ahead: asyncio.Future[bytes | None]) -> None:
    """A chunk made ahead that will not be sent (the client went away): not waited for, and its
    error, if any, not reported (the one that ended the answer is)."""
    if not ahead.done():
        ahead.cancel()
    elif not ahead.cancelled():
        ahead.exception()


def _type(table: Table, column: str) -> str:
    from comptoir.sites.api.query import type_name

    return type_name(table.dtype(column))


def _format(name: str, scope: Scope) -> tuple[str, str]:
    """(table name, format) from `/api/<name>[.fmt]` and the Accept header."""
    name = unquote(name)
    for suffix, fmt in FORMATS.items():
        if name.endswith(suffix):
            return name[: -len(suffix)], fmt
    accept = next((v for k, v in scope.get("headers", ()) if k == b"accept"), b"")
    if b"text/csv" in accept:
        return name, "csv"
    if b"ndjson" in accept:
        return name, "ndjson"
    return name, "json"


def _pairs(scope: Scope) -> list[tuple[str, str]]:
    raw = scope.get("query_string", b"").decode("latin-1")
    pairs = parse_qsl(raw, keep_blank_values=True, encoding="latin-1")
    # Bytes as they came, read as UTF-8 (what browsers and curl send).
    return [(_utf8(k), _utf8(v)) for k, v in pairs]


def _utf8(text: str) -> str:
    return text.encode("latin-1").decode("utf-8", "replace")


def _select(table: Table, query: Query, limit: int | None) -> pl.DataFrame:
    """The rows of a query, sorted, from its page's start (in a thread)."""
    frame = table.frame
    if query.after is not None:
        frame = frame.slice(after_position(table, query.after) + 1)
    lazy = frame.lazy()
    if query.filters:
        lazy = lazy.filter(pl.all_horizontal(query.filters))
    if query.sort:
        columns = [c for c, _ in query.sort]
        lazy = lazy.sort(
            columns,
            descending=[d for _, d in query.sort],
            nulls_last=True,
            maintain_order=True,
        )
    if query.fields is not None:
        lazy = lazy.select(query.fields)
    if query.offset:
        lazy = lazy.slice(query.offset)
    if limit is not None:
        lazy = lazy.head(limit)
    return lazy.collect()


def _page(table: Table, query: Query) -> tuple[pl.DataFrame, int, dict[str, Any]]:
    """(the page's rows, how many rows match, facets) of a query (in a thread)."""
    answer = _answer(table, query, quick=False)
    assert answer is not None  # only a quick answer gives up
    return answer


def _quick_page(table: Table, query: Query) -> tuple[pl.DataFrame, int, dict[str, Any]] | None:
    """`_page`, on the event loop, when the indexes answer at once (query.py); else None."""
    return _answer(table, query, quick=True)


def _answer(
    table: Table, query: Query, *, quick: bool
) -> tuple[pl.DataFrame, int, dict[str, Any]] | None:
    # The filters are evaluated once (or answered by an index): the count, the facets and the
    # page all come from the rows found.
    found = find(table.frame, query, quick)
    if found is None:
        return None
    facets: dict[str, Any] = {}
    for column in query.facets:
        counts = facet_counts(found, column, quick)
        if counts is None:
            return None
        top = counts.sort(["len", column], descending=[True, False], nulls_last=True).head(30)
        facets[column] = [
            {"value": row_object({"v": v})["v"], "count": n} for v, n in top.iter_rows()
        ]
    if query.after is not None and quick and not table.frame[table.key].flags["SORTED_ASC"]:
        return None  # the key's row is found by a dict of every key, made at the first lookup
    after = -1 if query.after is None else after_position(table, query.after)
    frame = page_of(found, query, after, quick)
    return None if frame is None else (frame, found.total, facets)


def _link(scope: Scope, prefix: str, query: Query, total: int) -> str:
    """RFC 8288 Link: first, prev, next, last pages (by _page, or _offset)."""
    limit = query.limit
    if not limit or query.after is not None:
        return ""
    if len(scope.get("query_string", b"")) > MAX_LINK_QUERY:
        # Four links repeat the query: past this, proxies and clients refuse the header.
        return ""
    path = prefix + scope["path"]
    kept = [(k, v) for k, v in _pairs(scope) if k not in ("_page", "_offset", "_limit")]
    last = max(0, (total - 1) // limit)
    current = query.offset // limit

    def url(page: int) -> str:
        q = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in kept)
        q = (q + "&" if q else "") + f"_page={page + 1}&_limit={limit}"
        return f"<{path}?{q}>"

    links = [f'{url(0)}; rel="first"']
    if current > 0:
        links.append(f'{url(current - 1)}; rel="prev"')
    if current < last:
        links.append(f'{url(current + 1)}; rel="next"')
    links.append(f'{url(last)}; rel="last"')
    return ", ".join(links)


__all__ = ["ApiError", "ApiSite", "Relation", "load_tables"]
