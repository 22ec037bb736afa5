"""Writes to an api site's tables (`--write`): what a request asks, checked, and its answer.

    POST   /api/<table>          a JSON object → 201, Location, ETag, the stored row (its key
                                 given when absent: one more than the largest, for integer keys)
    PUT    /api/<table>/<key>    the whole row (absent columns become null) → 200 and the row
    PATCH  /api/<table>/<key>    the columns given → 200 and the row
    DELETE /api/<table>/<key>    → 204

Refused, each with a JSON body saying why, never a 500 and never a row half written:
- 415: a body that is not `application/json` (PATCH also takes `application/merge-patch+json`);
- 413: a body over 1 MiB; 400: not UTF-8, not JSON, nested deeper than 32 levels;
- 422: not an object, or columns the table does not have or values not of their column's type,
  every field named in `fields`;
- 409: POST of a key the table has; 404: no such row (PUT, PATCH and DELETE do not create);
- 412: `If-Match` without the row's current ETag (a hash of its values, sent with every row);
- 403: a browser's request from another origin than the site's and those given with `--cors`;
- 405 with `Allow` on the paths that take no write (exports, relations, custom routes).

`decide` checks one change against the rows as they are and makes the new rows; live.py calls it
under the journal's lock, so what it checks (a key taken, an ETag) is still true when the change
is written.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from comptoir.errors import ClientGone
from comptoir.http.numbers import parse_decimal
from comptoir.sites.api.changes import (
    column_value,
    delete,
    free_key,
    next_key,
    put,
    row_at,
    row_etag,
)
from comptoir.sites.api.errors import ApiError
from comptoir.sites.api.output import dumps, jsonable, row_object
from comptoir.sites.api.query import QueryError, type_name, typed
from comptoir.sites.api.tables import Table, integer_range
from comptoir.sites.toolkit import header
from comptoir.types import Receive, Scope, Send

if TYPE_CHECKING:
    from comptoir.sites.api.live import LiveTables

MAX_BODY = 1024 * 1024
MAX_DEPTH = 32
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
READ = "GET, HEAD, OPTIONS"
TABLE_METHODS = "GET, HEAD, OPTIONS, POST"
ROW_METHODS = "GET, HEAD, OPTIONS, PUT, PATCH, DELETE"
FORMATS = (".json", ".csv", ".ndjson")
JSON_TYPES = ("application/json",)
PATCH_TYPES = ("application/json", "application/merge-patch+json")
EXPOSED = b"ETag, Location, X-Total-Count, Link"
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_BRACKET = re.compile(r"[\[\]{}]")


@dataclass(frozen=True)
class Change:
    """What a write request asks of a table."""

    method: str
    key: str | None = None  # the path's key, as text
    values: Mapping[str, Any] | None = None
    if_match: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Done:
    """A change made: the status, the row stored (None once deleted) and its key."""

    status: int
    row: dict[str, Any] | None
    key: Any


# --- one change against the rows --------------------------------------------------------------


def decide(table: Table, change: Change) -> tuple[Table, Done, dict[str, Any]]:
    """The rows after `change`, what to answer, and the journal's entry (ApiError if refused)."""
    if change.method == "POST":
        return _post(table, change.values or {})
    key = _path_key(table, change.key or "")
    current = row_at(table, key) if key is not None else None
    # A missing row is a 404 whatever the If-Match: preconditions are evaluated only where the
    # answer without them would be a success (RFC 9110 §13.2.1), and no write creates a row
    # by its key.
    if current is None:
        raise ApiError(404, {"error": f"no row {change.key!r} in {table.name!r}"})
    if change.if_match is not None:
        etag = row_etag(current)
        if not ("*" in change.if_match or etag in change.if_match):
            message = "the row changed since it was read (If-Match)"
            raise ApiError(412, {"error": message}, {"ETag": etag})
    if change.method == "DELETE":
        return delete(table, key), Done(204, None, key), {"op": "delete", "key": jsonable(key)}
    row = dict(current) if change.method == "PATCH" else dict.fromkeys(table.columns)
    errors = _fill(table, row, change.values or {})
    if table.key in (change.values or {}) and table.key not in errors and row[table.key] != key:
        # A body at odds with the row it is sent to: the conflict RFC 9110 (§9.3.4) names.
        shown = jsonable(key)
        message = f"the key cannot change (it is {shown!r} here)"
        raise ApiError(409, {"error": message, "key": shown})
    if errors:
        raise _unfit(table, errors)
    row[table.key] = key
    return put(table, row), Done(200, row, key), {"op": "put", "row": row_object(row)}


def _post(table: Table, values: Mapping[str, Any]) -> tuple[Table, Done, dict[str, Any]]:
    row: dict[str, Any] = dict.fromkeys(table.columns)
    given = {k: v for k, v in values.items() if not (k == table.key and v is None)}
    if table.source.rowid and table.key in given:
        errors = {table.key: "the row number is given by the server: leave it out"}
        del given[table.key]
    else:
        errors = {}
    errors.update(_fill(table, row, given))
    key = row[table.key]
    if key is None and table.key not in errors:
        if table.dtype(table.key).is_integer():
            key = next_key(table)
            if key > integer_range(table.dtype(table.key))[1]:
                # A row was given the largest key the column holds: the smallest free one.
                key = free_key(table)
            row[table.key] = key
        else:
            kind = type_name(table.dtype(table.key))
            errors[table.key] = f"required: keys of {kind} type are not given by the server"
    if errors:
        raise _unfit(table, errors)
    if table.position(key) is not None:
        shown = jsonable(key)
        raise ApiError(409, {"error": f"{table.name!r} has a row {shown!r} already", "key": shown})
    return put(table, row), Done(201, row, key), {"op": "put", "row": row_object(row)}


def _fill(table: Table, row: dict[str, Any], values: Mapping[str, Any]) -> dict[str, str]:
    """Put `values` into `row`, converted; the fields that could not be, with why."""
    errors: dict[str, str] = {}
    for name, value in values.items():
        if name not in row:
            errors[name] = f"no column {name!r} in table {table.name!r}"
            continue
        if isinstance(value, dict | list):
            errors[name] = "a value is a string, a number, true, false or null"
            continue
        try:
            row[name] = column_value(table, name, value)
        except ValueError as exc:
            errors[name] = str(exc)
    return errors


def _unfit(table: Table, errors: dict[str, str]) -> ApiError:
    return ApiError(422, {"error": f"the row does not fit table {table.name!r}", "fields": errors})


def _path_key(table: Table, text: str) -> Any:
    try:
        return typed(table, table.key, text, table.key)
    except QueryError:
        return None


# --- the request ----------------------------------------------------------------------------


class Writes:
    """The write side of an api site: requests to changes, changes to answers."""

    def __init__(self, live: LiveTables, prefix: str, cors: tuple[str, ...]) -> None:
        self.live = live
        self.prefix = prefix
        self.cors = frozenset(o.rstrip("/").lower() for o in cors)

    def allow(self, path: str) -> str:
        """The methods `path` takes (its `Allow`)."""
        parts = path[len("/api/") :].split("/")
        if len(parts) == 1 and parts[0] and not parts[0].endswith(FORMATS):
            return TABLE_METHODS
        if len(parts) == 2 and parts[0] and parts[1]:
            return ROW_METHODS
        return READ

    async def options(self, scope: Scope, send: Send, path: str) -> None:
        """OPTIONS, and CORS preflights: writes only for the site's own origin and `--cors`."""
        allow = self.allow(path)
        asked = (header(scope["headers"], b"access-control-request-method") or "").upper()
        origin = header(scope["headers"], b"origin") or ""
        write = asked in WRITE_METHODS and self._trusted(origin)
        headers = [
            (b"access-control-allow-origin", origin.encode("latin-1") if write else b"*"),
            (b"access-control-allow-methods", (allow if write else READ).encode()),
            (b"access-control-max-age", b"3600"),
            (b"allow", allow.encode()),
            (b"vary", b"origin"),
            (b"content-length", b"0"),
        ]
        for k, v in scope.get("headers", ()):
            if k == b"access-control-request-headers":
                headers.append((b"access-control-allow-headers", v))
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    async def handle(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        """Answer one POST, PUT, PATCH or DELETE under /api/."""
        origin = header(scope["headers"], b"origin")
        try:
            await self._handle(scope, receive, send, path, origin)
        except ApiError as refusal:
            await self._send(send, origin, refusal.status, refusal.body, refusal.headers)

    async def _handle(
        self, scope: Scope, receive: Receive, send: Send, path: str, origin: str | None
    ) -> None:
        method = scope["method"]
        allow = self.allow(path)
        parts = [unquote(p) for p in path[len("/api/") :].split("/")]
        name = parts[0]
        for suffix in FORMATS if len(parts) == 1 else ():
            name = name.removesuffix(suffix)
        if name not in self.live.tables and len(parts) <= 2:
            raise ApiError(404, {"error": f"no table {name!r}"})
        if method not in allow.split(", "):
            raise ApiError(405, {"error": f"{method} is not allowed here"}, {"Allow": allow})
        if origin is not None and not self._allowed(scope, origin):
            message = f"writes from {origin} are not allowed (--cors ORIGIN allows an origin)"
            raise ApiError(403, {"error": message})
        values = None
        if method != "DELETE":
            values = parse_body(scope, await read_body(scope, receive), method)
        change = Change(method, parts[1] if len(parts) == 2 else None, values, _if_match(scope))
        outcome = await self.live.write(name, change)
        if isinstance(outcome, ApiError):
            raise outcome
        await self._answer(send, origin, name, outcome)

    def _allowed(self, scope: Scope, origin: str) -> bool:
        """The site's own origin, or one given with --cors."""
        host = header(scope["headers"], b"host") or ""
        own = f"{scope.get('scheme', 'http')}://{host}".lower()
        return self._trusted(origin) or origin.lower() == own

    def _trusted(self, origin: str) -> bool:
        """An origin given with --cors."""
        return origin.lower() in self.cors

    async def _answer(self, send: Send, origin: str | None, table: str, done: Done) -> None:
        if done.row is None:
            await self._send(send, origin, done.status, None, {})
            return
        headers = {"ETag": row_etag(done.row)}
        if done.status == 201:
            key = quote(str(jsonable(done.key)), safe="")
            headers["Location"] = f"{self.prefix}/api/{quote(table, safe='')}/{key}"
        await self._send(send, origin, done.status, row_object(done.row), headers)

    async def _send(
        self,
        send: Send,
        origin: str | None,
        status: int,
        body: Any,
        headers: Mapping[str, str],
    ) -> None:
        data = b"" if body is None else dumps(body)
        out = [(b"cache-control", b"no-store")]
        if body is not None:
            out.append((b"content-type", b"application/json"))
        out.append((b"content-length", str(len(data)).encode()))
        if origin is not None and self._trusted(origin):
            # Another origin the site was told to trust: its scripts may read the answer.
            out.append((b"access-control-allow-origin", origin.encode("latin-1")))
            out.append((b"access-control-expose-headers", EXPOSED))
        out.append((b"vary", b"origin"))
        out.extend((k.lower().encode(), v.encode("latin-1")) for k, v in headers.items())
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": data})


def _if_match(scope: Scope) -> tuple[str, ...] | None:
    values = [v.decode("latin-1") for k, v in scope["headers"] if k == b"if-match"]
    if not values:
        return None
    return tuple(t.strip() for v in values for t in v.split(",") if t.strip())


async def read_body(scope: Scope, receive: Receive) -> bytes:
    """The whole request body: 413 past MAX_BODY, before reading it when Content-Length says."""
    too_large = ApiError(
        413, {"error": f"the body is larger than {MAX_BODY // 1024} KiB"}, {"Connection": "close"}
    )
    declared = header(scope["headers"], b"content-length")
    if declared is not None:
        length = parse_decimal(declared.strip())
        if length is None:
            raise ApiError(400, {"error": "invalid Content-Length"}, {"Connection": "close"})
        if length > MAX_BODY:
            raise too_large
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise too_large
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def parse_body(scope: Scope, body: bytes, method: str) -> dict[str, Any]:
    """A write's JSON object: 415 for another type, 400 for bytes that are not JSON, 422 for
    JSON that is not an object."""
    content_type = header(scope["headers"], b"content-type") or ""
    media, _, params = content_type.partition(";")
    accepted = PATCH_TYPES if method == "PATCH" else JSON_TYPES
    charset = re.search(r"charset\s*=\s*\"?([\w-]+)", params, re.I)
    if media.strip().lower() not in accepted or (
        charset and charset.group(1).lower() not in ("utf-8", "utf8")
    ):
        shown = media.strip() or "no Content-Type"
        headers = {"Accept-Patch" if method == "PATCH" else "Accept-Post": ", ".join(accepted)}
        message = f"send the row as JSON (Content-Type: application/json), not {shown}"
        raise ApiError(415, {"error": message}, headers)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, {"error": "the body is not UTF-8"}) from None
    if nesting(text) > MAX_DEPTH:
        raise ApiError(400, {"error": f"the body is nested deeper than {MAX_DEPTH} levels"})
    try:
        value = json.loads(text, parse_constant=_no_constant, object_pairs_hook=_object)
    except ValueError as exc:
        raise ApiError(400, {"error": f"the body is not JSON: {exc}"}) from None
    if not isinstance(value, dict):
        raise ApiError(422, {"error": "send one row: a JSON object of column values"})
    return value


def nesting(text: str) -> int:
    """How deeply arrays and objects nest in a JSON text (brackets inside strings not counted)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return 0
    depth = deepest = 0
    for bracket in _BRACKET.findall(_STRING.sub('""', text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the name {key!r} appears twice")
        out[key] = value
    return out
