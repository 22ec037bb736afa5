"""A request's query string as a query on a table: filters, search, sort, page, fields, facets.

Every parameter is checked against the table: an unknown column or operator, a value that is not of
the column's type, a bad `_sort` or `_limit` is a `QueryError` naming the parameter as the client
wrote it (the app answers 400 with it). Nothing is ignored silently.

    col=value            equal (typed); repeated: any of the values
    col__ne=value        not equal            col__in=a,b,c        one of
    col__lt / __lte / __gt / __gte=value      ordered comparisons
    col__contains=text   substring (case-sensitive); __icontains: case-insensitive
    col__startswith=text                      col__isnull=true|false
    q=text               any text column contains it (case-insensitive)
    _sort=col,-other     stable, nulls last    _fields=a,b           only these columns
    _limit=N (default 100, at most the site's max; `all` for .csv/.ndjson exports)
    _offset=N | _page=N  _after=KEY (keyset: the rows after that key, in key order)
    _facet=col           counts per value      _embed=child  _expand=column
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from comptoir.sites.api.tables import Table

OPERATORS = (
    "ne",
    "lt",
    "lte",
    "gt",
    "gte",
    "in",
    "contains",
    "icontains",
    "startswith",
    "isnull",
)
RESERVED = frozenset(
    ("_sort", "_limit", "_offset", "_page", "_after", "_fields", "_facet", "_embed", "_expand", "q")
)
# More filters than columns could ever need is a client gone wrong (10,000 in one query string).
MAX_FILTERS = 100
MAX_FACETS = 10
FACET_VALUES = 30


class QueryError(Exception):
    """A parameter the query cannot take: the app answers 400 naming it."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.message = message


@dataclass
class Query:
    """What a list request asks of a table."""

    filters: list[pl.Expr] = field(default_factory=list)
    sort: list[tuple[str, bool]] = field(default_factory=list)  # (column, descending)
    limit: int | None = 100  # None: every row (exports)
    offset: int = 0
    page: int | None = None
    after: Any = None
    fields: list[str] | None = None
    facets: list[str] = field(default_factory=list)
    embed: list[str] = field(default_factory=list)
    expand: list[str] = field(default_factory=list)


def parse_query(
    table: Table,
    pairs: Sequence[tuple[str, str]],
    *,
    default_limit: int,
    max_limit: int,
    export: bool = False,
) -> Query:
    """The Query of a list request's parameters (QueryError for the first wrong one)."""
    query = Query(limit=default_limit)
    equal: dict[str, list[Any]] = {}
    filters = 0
    for name, value in pairs:
        if name in RESERVED:
            _reserved(query, table, name, value, max_limit=max_limit, export=export)
            continue
        filters += 1
        if filters > MAX_FILTERS:
            raise QueryError(name, f"too many filters (at most {MAX_FILTERS})")
        column, _, op = name.partition("__")
        if column not in table.columns:
            raise QueryError(name, f"no column {column!r} in table {table.name!r}")
        if not op:
            equal.setdefault(column, []).append(typed(table, column, value, name))
            continue
        if op not in OPERATORS:
            raise QueryError(name, f"unknown operator {op!r} (one of {', '.join(OPERATORS)})")
        query.filters.append(_operator(table, column, op, value, name))
    for column, values in equal.items():
        col = pl.col(column)
        query.filters.append(col == values[0] if len(values) == 1 else col.is_in(values))
    if query.page is not None:
        if query.limit is None:
            raise QueryError("_page", "needs a _limit")
        query.offset = (query.page - 1) * query.limit
    if query.after is not None and any(c != table.key for c, _ in query.sort):
        raise QueryError("_after", f"pages by key: sort by {table.key} (or not at all)")
    return query


def _reserved(
    query: Query, table: Table, name: str, value: str, *, max_limit: int, export: bool
) -> None:
    if name == "q":
        text = [c for c in table.columns if table.dtype(c) == pl.String]
        if value and text:
            needle = value.lower()
            query.filters.append(
                pl.any_horizontal(
                    pl.col(c).str.to_lowercase().str.contains(needle, literal=True) for c in text
                ).fill_null(False)
            )
    elif name == "_sort":
        for part in value.split(","):
            column = part.removeprefix("-").strip()
            if column not in table.columns:
                raise QueryError(name, f"no column {column!r} to sort by")
            query.sort.append((column, part.startswith("-")))
    elif name == "_limit":
        if value == "all" and export:
            query.limit = None
            return
        limit = _whole(name, value)
        if limit > max_limit:
            raise QueryError(name, f"at most {max_limit} (the .csv and .ndjson exports take `all`)")
        query.limit = limit
    elif name == "_offset":
        query.offset = _whole(name, value)
    elif name == "_page":
        page = _whole(name, value)
        if page < 1:
            raise QueryError(name, "pages start at 1")
        query.page = page
    elif name == "_after":
        query.after = typed(table, table.key, value, name)
    elif name == "_fields":
        # Each column once, in the order asked (a repeated one is asked once).
        wanted = list(dict.fromkeys(f.strip() for f in value.split(",") if f.strip()))
        for f in wanted:
            if f not in table.columns:
                raise QueryError(name, f"no column {f!r}")
        query.fields = wanted
    elif name == "_facet":
        if value not in table.columns:
            raise QueryError(name, f"no column {value!r}")
        if len(query.facets) >= MAX_FACETS:
            raise QueryError(name, f"at most {MAX_FACETS} facets")
        query.facets.append(value)
    elif name == "_embed":
        query.embed.append(value)
    elif name == "_expand":
        query.expand.append(value)


def _whole(name: str, value: str) -> int:
    if not value.isdigit():
        raise QueryError(name, "must be a whole number")
    if len(value) > 12:
        raise QueryError(name, "too large (at most 12 digits)")
    return int(value)


def _operator(table: Table, column: str, op: str, value: str, name: str) -> pl.Expr:
    col = pl.col(column)
    if op == "isnull":
        flag = _boolean(value)
        if flag is None:
            raise QueryError(name, "must be true or false")
        return col.is_null() if flag else col.is_not_null()
    if op in ("contains", "icontains", "startswith"):
        text = col if table.dtype(column) == pl.String else col.cast(pl.String)
        if op == "startswith":
            return text.str.starts_with(value).fill_null(False)
        if op == "icontains":
            return (
                text.str.to_lowercase().str.contains(value.lower(), literal=True).fill_null(False)
            )
        return text.str.contains(value, literal=True).fill_null(False)
    if op == "in":
        values = [typed(table, column, v, name) for v in value.split(",")]
        return col.is_in(values)
    typed_value = typed(table, column, value, name)
    compared: pl.Expr
    if op == "ne":
        compared = (col != typed_value).fill_null(True)
    elif op == "lt":
        compared = col < typed_value
    elif op == "lte":
        compared = col <= typed_value
    elif op == "gt":
        compared = col > typed_value
    else:
        compared = col >= typed_value
    return compared


def _boolean(value: str) -> bool | None:
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    return None


def typed(table: Table, column: str, value: str, name: str) -> Any:
    """`value` as a value of `column`'s type (QueryError naming `name` when it is not one)."""
    dtype = table.dtype(column)
    try:
        if dtype.is_integer():
            if not value.strip().lstrip("+-").isdigit() or len(value) > 20:
                raise ValueError
            return int(value)
        if dtype.is_float():
            number = float(value)
            return number
        if dtype == pl.Boolean:
            flag = _boolean(value)
            if flag is None:
                raise ValueError
            return flag
        if dtype == pl.Date:
            return dt.date.fromisoformat(value)
        if dtype == pl.Datetime:
            return dt.datetime.fromisoformat(value)
    except ValueError:
        kind = type_name(dtype)
        article = "an" if kind[0] in "aeiou" else "a"
        raise QueryError(name, f"{value!r} is not {article} {kind} (column {column!r})") from None
    return value


def type_name(dtype: pl.DataType) -> str:
    """A column type as the API names it: integer, float, boolean, date, datetime, string."""
    if dtype.is_integer():
        return "integer"
    if dtype.is_float():
        return "float"
    if dtype == pl.Boolean:
        return "boolean"
    if dtype == pl.Date:
        return "date"
    if dtype == pl.Datetime:
        return "datetime"
    return "string"
