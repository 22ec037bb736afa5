"""A request's query string as a query on a table: filters, search, sort, page, fields, facets;
and the rows it asks for, found with the help of indexes of the table's frame (`find`, `page_of`).

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
import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import polars as pl

from comptoir.sites.api.tables import Table, integer_range

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
    # The filters that are a column equal to one of some values (`col=v`, `col__in=a,b`): also
    # in `filters`, and named here so that an index can answer them (`find`).
    equal: list[Equal] = field(default_factory=list)
    sort: list[tuple[str, bool]] = field(default_factory=list)  # (column, descending)
    limit: int | None = 100  # None: every row (exports)
    offset: int = 0
    page: int | None = None
    after: Any = None
    fields: list[str] | None = None
    facets: list[str] = field(default_factory=list)
    embed: list[str] = field(default_factory=list)
    expand: list[str] = field(default_factory=list)

    def where_equal(self, column: str, values: Sequence[Any], *, listed: bool = False) -> None:
        """Keep the rows whose `column` is one of `values` (typed): a filter an index can answer.
        `listed` (`col__in`) is `is_in` even for one value, as it always was."""
        col = pl.col(column)
        expr = col == values[0] if len(values) == 1 and not listed else col.is_in(values)
        self.filters.append(expr)
        self.equal.append(Equal(column, tuple(values), expr))


@dataclass(frozen=True, eq=False)
class Equal:
    """A filter `column` equal to one of `values`, with its expression (the one in `filters`)."""

    column: str
    values: tuple[Any, ...]
    expr: pl.Expr


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
        if op == "in":
            values = [typed(table, column, v, name) for v in value.split(",")]
            query.where_equal(column, values, listed=True)
            continue
        query.filters.append(_operator(table, column, op, value, name))
    for column, values in equal.items():
        query.where_equal(column, values)
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
        if not wanted:
            raise QueryError(name, "name at least one column")
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
        if value not in table.columns:  # the page keeps the column: it must be one
            raise QueryError(name, f"no column {value!r}")
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
            if not value.strip().lstrip("+-").isdigit() or len(value) > 21:
                raise ValueError
            whole = int(value)
            low, high = integer_range(dtype)
            if not low <= whole <= high:
                # Past what the column holds (Polars cannot even compare it): no value of it.
                raise QueryError(name, f"{value!r} is out of range for column {column!r}")
            return whole
        if dtype.is_float():
            return float(value)
        if dtype == pl.Boolean:
            flag = _boolean(value)
            if flag is None:
                raise ValueError
            return flag
        if dtype == pl.Date:
            return dt.date.fromisoformat(value)
        if dtype == pl.Datetime:
            moment = dt.datetime.fromisoformat(value)
            if moment.tzinfo is not None and getattr(dtype, "time_zone", None) is None:
                # Polars cannot compare it with the column's times, which have no zone.
                message = f"{value!r} has a time zone; column {column!r}'s times have none"
                raise QueryError(name, message + " (write 2024-05-01T10:30:00)")
            return moment
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


# --- finding the rows ----------------------------------------------------------------------------
#
# A filtered and sorted page of a large table once filtered every column of the table twice (the
# count, then the page) and sorted every matching row: 35 ms of CPU for 50 rows of a million, so
# 0.4 to 0.7 s (p99) behind eight clients on one core. Now the filters are evaluated once, on the
# columns they name, into row positions (`find`), and indexes of a frame spare even that:
# - an equality index (a column's row positions grouped by value) gives the rows of `col=v` or
#   `col__in=…` and their count without reading the column, and a facet's counts;
# - an order index (every row position, sorted by a column) makes a sorted page a slice of it, or,
#   filtered, a walk along it until enough rows pass the filters (about 1,000 rows looked at for 50
#   rows of one value in 20, instead of 50,000 sorted);
# - a grouped order index (an equality index with each value's rows sorted by another column)
#   makes `city=city7&_sort=score` a slice of it.
# Indexes belong to one frame object. A Table is a snapshot and a write makes a new frame
# (changes.py) rather than changing one, so an index is never stale: the next frame gets its own.
# An index is built the first time a query needs it, and the queries that need it meanwhile wait
# for it (with the core to itself, it is built sooner than they would scan). On a million rows a
# build takes 50 to 150 ms (1.2 s to sort strings, which a query sorting them all took anyway),
# paid again after a write (--write) by the first query that needs it; each index holds 4 bytes a
# row, the equality index a Python dict of the values besides, so columns of more than
# MAX_INDEXED_VALUES values (or fewer than 4 rows a value) get none, and a frame gets at most
# MAX_ORDERS order indexes (32 MB for a million rows).
# The filters are row-wise expressions (each row's result depends on that row alone), so they give
# the same answer evaluated on some rows as on the whole frame.
#
# `quick` asks for an answer only if it costs next to nothing (indexes already built, at most
# QUICK_ROWS rows read): the app then answers on the event loop, sparing the hop to a thread and
# back, which costs more than the answer itself (None: not quick, ask again in a thread).

MAX_INDEXED_VALUES = 65_536
MAX_ORDERS = 8
QUICK_ROWS = 2_000

_Key = tuple[str | bool, ...]
_T = TypeVar("_T")


@dataclass(frozen=True)
class EqualityIndex:
    """A column's row positions grouped by value (ascending in each group), and where each
    value's group is (nulls have none: a null is equal to nothing)."""

    rows: pl.Series
    spans: dict[Any, tuple[int, int]]

    def positions(self, values: Sequence[Any]) -> pl.Series:
        """The rows whose value is one of `values`, ascending."""
        spans = [self.spans[v] for v in dict.fromkeys(values) if v in self.spans]
        parts = [self.rows.slice(start, end - start) for start, end in spans]
        if len(parts) == 1:
            return parts[0]
        return pl.concat(parts).sort() if parts else _positions([])


class _FrameIndexes:
    """The indexes of one frame, built as queries need them."""

    def __init__(self, frame: pl.DataFrame) -> None:
        self.frame = weakref.ref(frame)
        self.lock = threading.Lock()
        self.building: dict[_Key, threading.Event] = {}
        self.built: dict[_Key, object] = {}


# id(frame) → its indexes; an entry goes with its frame, before that id can be another frame's.
_FRAMES: dict[int, _FrameIndexes] = {}
_FRAMES_LOCK = threading.Lock()


def _indexes(frame: pl.DataFrame) -> _FrameIndexes:
    key = id(frame)
    with _FRAMES_LOCK:
        found = _FRAMES.get(key)
        if found is None or found.frame() is not frame:
            found = _FRAMES[key] = _FrameIndexes(frame)
            weakref.finalize(frame, _FRAMES.pop, key, None)
        return found


def _index(
    frame: pl.DataFrame, key: _Key, build: Callable[[], _T | None], quick: bool
) -> _T | None:
    """The frame's index `key`, built by `build` at its first use (`quick`: not built), then kept
    with the frame (None: not built, or `build` found none fits)."""
    indexes = _indexes(frame)
    with indexes.lock:
        if key in indexes.built or quick:
            return cast("_T | None", indexes.built.get(key))
        pending = indexes.building.get(key)
        if pending is None:
            orders = sum(1 for k in (*indexes.built, *indexes.building) if k[0] != "=")
            if key[0] != "=" and orders >= MAX_ORDERS:
                return None
            indexes.building[key] = threading.Event()
    if pending is not None:
        pending.wait()
        with indexes.lock:
            return cast("_T | None", indexes.built.get(key))
    try:
        index = build()
        with indexes.lock:
            indexes.built[key] = index
    finally:
        with indexes.lock:
            indexes.building.pop(key).set()
    return index


def equality_index(frame: pl.DataFrame, column: str, quick: bool = False) -> EqualityIndex | None:
    """The frame's equality index of `column` (None: not built yet, or the column gets none)."""
    return _index(frame, ("=", column), lambda: _equality_index(frame.get_column(column)), quick)


def _equality_index(series: pl.Series) -> EqualityIndex | None:
    dtype = series.dtype
    # Types whose Python values are equal exactly when Polars says so (floats are not: NaN, -0.0).
    if not (dtype.is_integer() or dtype in (pl.String, pl.Boolean, pl.Date)):
        return None
    if series.n_unique() > min(MAX_INDEXED_VALUES, max(1, len(series) // 4)):
        return None
    at = pl.int_range(len(series), dtype=pl.get_index_type(), eager=True)
    rows = pl.DataFrame([series.alias("value"), at.alias("at")])
    if series.null_count():
        rows = rows.filter(pl.col("value").is_not_null())  # a copy: only when there are nulls
    groups = rows.group_by("value").agg("at")  # each group's rows in their order: kept
    spans: dict[Any, tuple[int, int]] = {}
    start = 0
    for value, count in zip(
        groups["value"].to_list(), groups["at"].list.len().to_list(), strict=True
    ):
        spans[value] = (start, start + count)
        start += count
    return EqualityIndex(groups["at"].explode().rechunk(), spans)


def order_index(
    frame: pl.DataFrame, column: str, descending: bool, quick: bool = False
) -> pl.Series | None:
    """Every row position of the frame in `_sort` order by `column` (stable, nulls last), or
    None when not built yet."""

    def build() -> pl.Series:
        at = pl.int_range(frame.height, dtype=pl.get_index_type(), eager=True)
        rows = pl.DataFrame([frame.get_column(column).alias("value"), at.alias("at")])
        return rows.sort(
            "value", descending=descending, nulls_last=True, maintain_order=True
        ).get_column("at")

    return _index(frame, ("order", column, descending), build, quick)


# Up to this many values, a grouped order index sorts each value's rows on its own.
FEW_GROUPS = 256


def grouped_order(
    frame: pl.DataFrame, column: str, sort: str, descending: bool, quick: bool = False
) -> pl.Series | None:
    """The equality index of `column`'s rows with each value's sorted by `sort` (stable, nulls
    last): the same spans. None when not built yet."""

    def build() -> pl.Series | None:
        index = equality_index(frame, column)
        if index is None:
            return None
        at = index.rows
        if len(index.spans) <= FEW_GROUPS:
            # A value at a time: the temporaries of one group's sort (16 bytes a row) instead of
            # the whole column's window (40 MB for a million rows, on top of the frame).
            parts = []
            for start, end in sorted(index.spans.values()):
                positions = at.slice(start, end - start)
                values = frame.get_column(sort).gather(positions)
                group = pl.DataFrame([values.alias("value"), positions.alias("at")])
                parts.append(
                    group.sort(
                        "value", descending=descending, nulls_last=True, maintain_order=True
                    ).get_column("at")
                )
            return pl.concat(parts).rechunk() if parts else at
        ends = pl.Series([end for _, end in index.spans.values()], dtype=pl.get_index_type())
        whose = ends.search_sorted(
            pl.int_range(len(at), dtype=pl.get_index_type(), eager=True), side="right"
        )
        values = frame.get_column(sort).gather(at)
        rows = pl.DataFrame([whose.alias("group"), values.alias("value"), at.alias("at")])
        # Each value's rows sorted on their own: five times faster than one sort by both.
        by_value = pl.col("at").sort_by(
            "value", descending=descending, nulls_last=True, maintain_order=True
        )
        return rows.select(by_value.over("group")).to_series()

    return _index(frame, ("grouped", column, sort, descending), build, quick)


@dataclass(frozen=True)
class Found:
    """The rows of a frame that a query's filters keep: their positions, ascending (None: all)."""

    frame: pl.DataFrame
    positions: pl.Series | None
    # The rows are a value's group in the equality index of a column: (column, start, end).
    group: tuple[str, int, int] | None = None

    @property
    def total(self) -> int:
        """How many rows."""
        return self.frame.height if self.positions is None else len(self.positions)

    def column(self, name: str) -> pl.Series:
        """A column's values in these rows, in their order."""
        series = self.frame.get_column(name)
        return series if self.positions is None else series.gather(self.positions)


def find(frame: pl.DataFrame, query: Query, quick: bool = False) -> Found | None:
    """The rows the query's filters keep: those of its most selective indexed equality, the other
    filters evaluated on them alone; without one, every filter evaluated in one pass."""
    if not query.filters:
        return Found(frame, None)
    best: tuple[pl.Series, Equal, EqualityIndex] | None = None
    for equal in query.equal:
        index = equality_index(frame, equal.column, quick)
        if index is not None:
            rows = index.positions(equal.values)
            if best is None or len(rows) < len(best[0]):
                best = (rows, equal, index)
    if best is not None:
        rows, used, index = best
        rest = [f for f in query.filters if f is not used.expr]
        kept = None if quick and rest and len(rows) > QUICK_ROWS else _keep(frame, rows, rest)
        if kept is not None:
            value = used.values[0]
            one = not rest and len(set(used.values)) == 1 and value in index.spans
            return Found(frame, kept, (used.column, *index.spans[value]) if one else None)
    if quick:
        return None
    at = pl.int_range(pl.len(), dtype=pl.get_index_type())
    return Found(frame, frame.select(at.filter(pl.all_horizontal(query.filters))).to_series())


def _keep(frame: pl.DataFrame, rows: pl.Series, filters: list[pl.Expr]) -> pl.Series | None:
    """Those of `rows` that every filter keeps, evaluated on those rows alone (None: a filter
    names no column, so there is nothing to evaluate it on)."""
    if not filters or rows.is_empty():
        return rows
    names = [f.meta.root_names() for f in filters]
    if not all(names):
        return None
    columns = dict.fromkeys(c for n in names for c in n)
    values = pl.DataFrame([frame.get_column(c).gather(rows) for c in columns])
    return rows.filter(values.select(pl.all_horizontal(filters).fill_null(False)).to_series())


def facet_counts(found: Found, column: str, quick: bool = False) -> pl.DataFrame | None:
    """`group_by(column).len()` of the rows found (in no order): from the equality index when
    the rows are all of them."""
    if found.positions is None and column != "len":
        index = equality_index(found.frame, column, quick)
        if index is not None and not (quick and len(index.spans) > QUICK_ROWS):
            series = found.frame.get_column(column)
            values: list[Any] = list(index.spans)
            counts = [end - start for start, end in index.spans.values()]
            if series.null_count():
                values.append(None)
                counts.append(series.null_count())
            return pl.DataFrame(
                [
                    pl.Series(column, values, dtype=series.dtype),
                    pl.Series("len", counts, dtype=pl.get_index_type()),
                ]
            )
    if quick and found.total > QUICK_ROWS:
        return None
    return found.column(column).to_frame().group_by(column).len()


def page_of(found: Found, query: Query, after: int, quick: bool = False) -> pl.DataFrame | None:
    """The query's page of the rows found: those after row position `after` (-1: all), sorted,
    from its offset, at most its limit, its fields."""
    frame = found.frame if query.fields is None else found.frame.select(query.fields)
    if found.positions is None and not query.sort:
        return frame.slice(after + 1 + query.offset, query.limit)
    if frame.width == 0:
        return frame  # `_fields=` with no field: no column, no row, as a select of none gives
    rows = _page_rows(found, query, after, quick)
    return None if rows is None else frame[rows]


def _page_rows(found: Found, query: Query, after: int, quick: bool) -> pl.Series | None:
    frame = found.frame
    positions = found.positions
    if positions is not None and after >= 0:
        positions = positions.filter(positions > after)
    count = frame.height - after - 1 if positions is None else len(positions)
    limit = query.limit
    if positions is not None and (not query.sort or count == 0 or limit == 0):
        return positions.slice(query.offset, limit)
    if count <= 0 or limit == 0:
        return _positions([])
    if len(query.sort) == 1:
        rows = _ordered(found, query, after, count, quick)
        if rows is not None:
            return rows.slice(query.offset, limit)
    if quick and count > QUICK_ROWS:
        return None
    if positions is None:
        positions = pl.int_range(after + 1, frame.height, dtype=pl.get_index_type(), eager=True)
    names = [f"k{i}" for i in range(len(query.sort))]
    keys = [
        frame.get_column(c).gather(positions).alias(n)
        for (c, _), n in zip(query.sort, names, strict=True)
    ]
    ordered = pl.DataFrame([*keys, positions.alias("at")])
    return (
        ordered.sort(
            names, descending=[d for _, d in query.sort], nulls_last=True, maintain_order=True
        )
        .get_column("at")
        .slice(query.offset, limit)
    )


def _ordered(found: Found, query: Query, after: int, count: int, quick: bool) -> pl.Series | None:
    """The `count` candidate rows sorted by the query's one sort column, from the first to its
    page's last at least, read from an index (None: no index fits)."""
    frame = found.frame
    column, descending = query.sort[0]
    if count <= QUICK_ROWS:
        return None  # sorted at once
    if found.group is not None:
        grouped, start, end = found.group
        order = grouped_order(frame, grouped, column, descending, quick)
        if order is None:
            return None  # until it is built, the group's rows are sorted (an order index is no use)
        rows = order.slice(start, end - start)
        return rows.filter(rows > after) if after >= 0 else rows
    if query.limit is None:
        return None
    need = query.offset + query.limit
    # Rows looked at before `need` pass the filters, were they spread evenly.
    expected = need * frame.height // count
    if expected > count:
        return None  # sorting the candidates costs less
    order = order_index(frame, column, descending, quick=True)
    if order is None and not quick and count * 8 >= frame.height:
        # Worth sorting every row for: the candidates are an eighth of them at least.
        order = order_index(frame, column, descending)
    if order is None:
        return None
    if found.positions is None and after < 0:
        return order.slice(0, need)
    budget = min(2 * count + 4096, QUICK_ROWS if quick else frame.height)
    filters = query.filters if found.positions is not None else []
    return _walk(frame, order, filters, after, need, expected, budget)


def _walk(
    frame: pl.DataFrame,
    order: pl.Series,
    filters: list[pl.Expr],
    after: int,
    need: int,
    expected: int,
    budget: int,
) -> pl.Series | None:
    """The first `need` rows of `order` after row `after` that the filters keep (fewer: all of
    them); None when that means looking at more than `budget` rows (the rows were not spread
    evenly: sorting the matching rows is then cheaper)."""
    kept: list[pl.Series] = []
    count = 0
    start = 0
    step = expected + expected // 4 + 64
    while count < need and start < len(order):
        if start >= budget:
            return None
        block = order.slice(start, min(step, budget - start))
        start += len(block)
        step *= 2
        if after >= 0:
            block = block.filter(block > after)
        rows = _keep(frame, block, filters)
        if rows is None:
            return None
        kept.append(rows)
        count += len(rows)
    return pl.concat(kept) if kept else _positions([])


def after_position(table: Table, key: Any) -> int:
    """The row position `_after=key` pages after: the key's row, else the last row before it in
    key order (-1: none, or the key column is not sorted)."""
    at = table.position(key)
    if at is None:
        column = table.frame[table.key]
        at = int(column.search_sorted(key, side="right")) - 1 if column.is_sorted() else -1
    return at


def _positions(values: Sequence[int]) -> pl.Series:
    return pl.Series("at", values, dtype=pl.get_index_type())
