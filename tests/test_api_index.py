"""`comptoir api`'s pages from indexes (query.py: `find`, `page_of`) give the answers a plain
Polars filter and sort gives: random tables and queries, with nulls, ties, `__in`, several filters,
`_offset`, `_after`, `_fields`, `_facet`; and after a write, the next answer shows it."""

from __future__ import annotations

import datetime as dt
import gc
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from comptoir.sites.api import ApiOptions
from comptoir.sites.api import app as app_module
from comptoir.sites.api import live as live_module
from comptoir.sites.api import query as query_module
from comptoir.sites.api.app import ApiSite
from comptoir.sites.api.query import Query, parse_query
from comptoir.sites.api.tables import Table, sorted_key
from comptoir.sites.contract import SiteContext
from tests.conftest import asgi_client

CITIES = ["Paris", "Lyon", "Nice", "=cmd", ""]
DAYS = [dt.date(2024, 1, d) for d in (1, 2, 3)]
Page = tuple[pl.DataFrame, int, dict[str, Any]]


def expected(table: Table, query: Query) -> Page:
    """The page as `_page` answered it before indexes: the filters over the whole frame for the
    count and facets, then filter, sort, fields, offset and limit in one lazy query."""
    frame = table.frame
    matching = frame.filter(pl.all_horizontal(query.filters)) if query.filters else frame
    facets: dict[str, Any] = {}
    for column in query.facets:
        counts = (
            matching.group_by(column)
            .len()
            .sort(["len", column], descending=[True, False], nulls_last=True)
            .head(30)
        )
        facets[column] = [
            {"value": app_module.row_object({"v": v})["v"], "count": n}
            for v, n in counts.iter_rows()
        ]
    rows = frame
    if query.after is not None:
        at = table.position(query.after)
        if at is None:
            key = frame[table.key]
            at = int(key.search_sorted(query.after, side="right")) - 1 if key.is_sorted() else -1
        rows = rows.slice(at + 1)
    lazy = rows.lazy()
    if query.filters:
        lazy = lazy.filter(pl.all_horizontal(query.filters))
    if query.sort:
        lazy = lazy.sort(
            [c for c, _ in query.sort],
            descending=[d for _, d in query.sort],
            nulls_last=True,
            maintain_order=True,
        )
    if query.fields is not None:
        lazy = lazy.select(query.fields)
    lazy = lazy.slice(query.offset)
    if query.limit is not None:
        lazy = lazy.head(query.limit)
    return lazy.collect(), matching.height, facets


def assert_same(got: Page, want: Page) -> None:
    assert_frame_equal(got[0], want[0], check_exact=True)
    assert got[1:] == want[1:]


def people(size: int, draw: Any) -> pl.DataFrame:
    def column(values: list[Any], dtype: Any) -> pl.Series:
        picked = draw(st.lists(st.sampled_from([*values, None]), min_size=size, max_size=size))
        return pl.Series(picked, dtype=dtype)

    ids = draw(st.permutations(list(range(1, size + 1)))) if draw(st.booleans()) else None
    return pl.DataFrame(
        {
            "id": pl.Series(ids or list(range(1, size + 1)), dtype=pl.Int64),
            "city": column(CITIES, pl.String),
            "n": column([1, 2, 3, -1], pl.Int64),
            "flag": column([True, False], pl.Boolean),
            "day": column(DAYS, pl.Date),
            "price": column([0.5, 1.5, float("nan"), -0.0, 0.0], pl.Float64),
        }
    )


FILTERS = st.sampled_from(
    [
        ("city", "Paris"),
        ("city", "Lyon"),
        ("city", "Nowhere"),
        ("city", "=cmd"),
        ("city__in", "Paris,Nice"),
        ("city__in", "Paris,Paris"),
        ("city__in", "Lyon"),
        ("city__ne", "Nice"),
        ("city__contains", "i"),
        ("n", "1"),
        ("n", "2"),
        ("n__in", "-1,3"),
        ("n__gt", "1"),
        ("n__isnull", "true"),
        ("flag", "true"),
        ("flag", "false"),
        ("day", "2024-01-02"),
        ("day__lte", "2024-01-02"),
        ("price", "0.0"),
        ("price__lt", "1"),
        ("q", "i"),
    ]
)
EQUALS = st.sampled_from(
    [("city", "Paris"), ("city", "Lyon"), ("n", "1"), ("n", "-1"), ("flag", "true")]
)
SORTS = st.sampled_from(
    ["", "n", "-n", "city", "-city", "price", "-price", "day,-n", "-flag,city", "id", "-id"]
)


@st.composite
def cases(draw: Any) -> tuple[pl.DataFrame, list[tuple[str, str]]]:
    size = draw(st.integers(0, 60))
    frame = people(size, draw)
    # One equality alone is the case the grouped order index answers: drawn often.
    pairs = draw(st.lists(EQUALS, min_size=1, max_size=1) | st.lists(FILTERS, max_size=3))
    sort = draw(SORTS)
    if sort:
        pairs.append(("_sort", sort))
    pairs.append(("_limit", str(draw(st.integers(0, 12)))))
    if draw(st.booleans()):
        pairs.append(("_offset", str(draw(st.integers(0, 30)))))
    if draw(st.booleans()) and sort in ("", "id", "-id"):
        pairs.append(("_after", str(draw(st.integers(0, size + 2)))))
    if draw(st.booleans()):
        fields = draw(st.lists(st.sampled_from(frame.columns), unique=True, min_size=1))
        pairs.append(("_fields", ",".join(fields)))
    for facet in draw(st.lists(st.sampled_from(["city", "n", "flag", "day"]), max_size=2)):
        pairs.append(("_facet", facet))
    return frame, pairs


def query_of(table: Table, pairs: list[tuple[str, str]]) -> Query:
    return parse_query(table, pairs, default_limit=100, max_limit=1000)


@pytest.fixture(autouse=True)
def no_left_over_indexes() -> Iterator[None]:
    yield
    gc.collect()
    assert not query_module._FRAMES  # every entry went with its frame


# QUICK_ROWS 0: the indexes are used whatever the number of rows (tables here are small).
@pytest.mark.parametrize("quick_rows", [0, 7, query_module.QUICK_ROWS])
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_pages_from_indexes_are_a_filter_and_a_sort(
    quick_rows: int, case: tuple[pl.DataFrame, list[tuple[str, str]]]
) -> None:
    frame, pairs = case
    table = Table("people", Path("people.csv"), sorted_key(frame, "id"), "id")
    want = expected(table, query_of(table, pairs))
    with mock.patch.object(query_module, "QUICK_ROWS", quick_rows):
        # The first query builds the indexes, the next ones read them, on the event loop or not.
        for _ in range(2):
            assert_same(app_module._page(table, query_of(table, pairs)), want)
            quick = app_module._quick_page(table, query_of(table, pairs))
            if quick is not None:
                assert_same(quick, want)


def test_a_sorted_filtered_page_of_many_rows_is_read_from_the_grouped_index() -> None:
    rows = 60_000  # 3,000 rows a city: more than are sorted at once
    frame = pl.DataFrame(
        {
            "id": range(1, rows + 1),
            "city": [f"city{i % 20}" for i in range(rows)],
            "score": [(i * 7919) % 1000 for i in range(rows)],  # ties: stable order by position
        }
    )
    table = Table("items", Path("items.csv"), sorted_key(frame, "id"), "id")
    pairs = [("city", "city7"), ("_sort", "-score"), ("_limit", "50"), ("_offset", "10")]
    want = expected(table, query_of(table, pairs))
    assert_same(app_module._page(table, query_of(table, pairs)), want)
    indexes = query_module._indexes(table.frame)
    assert ("=", "city") in indexes.built and ("grouped", "city", "score", True) in indexes.built
    quick = app_module._quick_page(table, query_of(table, pairs))
    assert quick is not None  # answered from the indexes, on the event loop
    assert_same(quick, want)
    # A value with no row, and a filter no index answers alongside.
    for extra in ([("city", "nowhere")], [("score__gt", "500")], [("city__in", "city1,city2")]):
        query = [*pairs, *extra]
        want = expected(table, query_of(table, query))
        assert_same(app_module._page(table, query_of(table, query)), want)


def test_an_unfiltered_sorted_page_walks_the_order_index() -> None:
    rows = 10_000
    frame = pl.DataFrame(
        {"id": range(1, rows + 1), "v": [None if i % 9 == 0 else i % 13 for i in range(rows)]}
    )
    table = Table("t", Path("t.csv"), sorted_key(frame, "id"), "id")
    for pairs in (
        [("_sort", "v"), ("_limit", "30")],
        [("_sort", "-v"), ("_limit", "30"), ("_offset", "100")],
        [("_sort", "-v"), ("_limit", "30"), ("v__ne", "3")],  # a walk, filtering as it goes
        [("_sort", "v"), ("_limit", "5"), ("_offset", f"{rows - 3}")],  # nulls last
        [("_sort", "id"), ("_limit", "10"), ("_after", "5000")],
        [("_sort", "-id"), ("_limit", "10"), ("_after", "5000"), ("v__in", "1,2")],
        # The rows that pass come last in that order: the walk gives up, the rows are sorted.
        [("_sort", "v"), ("_limit", "30"), ("v__gt", "11")],
    ):
        want = expected(table, query_of(table, pairs))
        with mock.patch.object(query_module, "QUICK_ROWS", 0):  # no candidates sorted at once
            assert_same(app_module._page(table, query_of(table, pairs)), want)
    assert ("order", "v", False) in query_module._indexes(table.frame).built


def test_a_frame_gets_its_own_indexes() -> None:
    frame = pl.DataFrame({"id": range(1, 101), "city": ["a", "b"] * 50})
    table = Table("t", Path("t.csv"), sorted_key(frame, "id"), "id")
    pairs = [("city", "a"), ("_limit", "100")]
    assert app_module._page(table, query_of(table, pairs))[1] == 50
    # A write's new frame (changes.py makes one, never changes one in place).
    changed = frame.with_columns(
        pl.when(pl.col("id") <= 10).then(pl.lit("a")).otherwise(pl.col("city")).alias("city")
    )
    after = Table("t", Path("t.csv"), sorted_key(changed, "id"), "id")
    assert app_module._page(after, query_of(after, pairs))[1] == 55
    assert app_module._page(table, query_of(table, pairs))[1] == 50  # the old snapshot as it was


def test_an_integer_past_the_column_type_is_no_value_of_it() -> None:
    frame = pl.DataFrame({"id": range(1, 41), "n": [1, 2, 3, 4] * 10})
    table = Table("t", Path("t.csv"), sorted_key(frame, "id"), "id")
    for pairs in ([("n", "99999999999999999999")], [("n__in", "1,-9999999999999999999")]):
        with pytest.raises(query_module.QueryError, match="out of range for column 'n'"):
            query_of(table, pairs)


def test_columns_of_too_many_values_get_no_equality_index() -> None:
    frame = pl.DataFrame({"id": range(1, 101), "name": [f"n{i}" for i in range(100)]})
    table = Table("t", Path("t.csv"), sorted_key(frame, "id"), "id")
    pairs = [("name", "n5"), ("_limit", "10")]
    assert app_module._page(table, query_of(table, pairs))[1] == 1
    built = query_module._indexes(table.frame).built
    assert built[("=", "name")] is None  # and found so once, not at each query


def test_queries_meanwhile_wait_for_the_build_and_share_it() -> None:
    frame = pl.DataFrame({"id": range(1, 4001), "city": ["a", "b", "c", "d"] * 1000})
    table = Table("t", Path("t.csv"), sorted_key(frame, "id"), "id")
    pairs = [("city", "b"), ("_sort", "-id"), ("_limit", "5")]
    want = expected(table, query_of(table, pairs))
    builds = []
    build = query_module._equality_index

    def slow(series: pl.Series) -> Any:
        builds.append(series.name)
        time.sleep(0.2)  # long enough for every other thread to ask meanwhile
        return build(series)

    with (
        mock.patch.object(query_module, "_equality_index", slow),
        ThreadPoolExecutor(8) as pool,
    ):
        pages = list(pool.map(lambda _: app_module._page(table, query_of(table, pairs)), range(8)))
    assert builds == ["city"]
    for got in pages:
        assert_same(got, want)


def test_a_frame_gets_a_few_order_indexes_at_most() -> None:
    frame = pl.DataFrame({"id": range(1, 4001), "a": [i % 7 for i in range(4000)]})
    frame = frame.with_columns(b=pl.col("a") * -1)
    table = Table("t", Path("t.csv"), sorted_key(frame, "id"), "id")
    with mock.patch.object(query_module, "MAX_ORDERS", 1):
        for sort in ("a", "b", "-a"):
            pairs = [("_sort", sort), ("_limit", "20"), ("_offset", "3")]
            want = expected(table, query_of(table, pairs))
            assert_same(app_module._page(table, query_of(table, pairs)), want)
    built = query_module._indexes(table.frame).built
    assert list(built) == [("order", "a", False)]


# --- after a write --------------------------------------------------------------------------------


@pytest.fixture
async def writable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(live_module, "REWRITE_AFTER", 0.05)
    lines = ["id,city,score"] + [
        f"{i},{'Paris' if i % 2 else 'Lyon'},{i % 7}" for i in range(1, 41)
    ]
    (tmp_path / "items.csv").write_text("\n".join(lines) + "\n")
    with mock.patch.object(query_module, "QUICK_ROWS", 0):
        site = ApiSite(ApiOptions(data=(tmp_path,), write=True), SiteContext())
        client = asgi_client(site)
        yield client
        await site.live.close()
        await client.aclose()


async def ids(client: httpx.AsyncClient, query: str) -> tuple[list[int], str]:
    r = await client.get(f"/api/items?{query}")
    assert r.status_code == 200
    body = r.json()
    rows = body["rows"] if isinstance(body, dict) else body
    return [row["id"] for row in rows], r.headers["x-total-count"]


async def test_the_answer_after_a_write_shows_it(writable: httpx.AsyncClient) -> None:
    client = writable
    query = "city=Paris&_sort=-score&_limit=100"
    before, total = await ids(client, query)
    assert total == "20" and before == (await ids(client, query))[0]  # from the indexes
    r = await client.post("/api/items", json={"city": "Paris", "score": 9})
    assert r.status_code == 201
    new = r.json()["id"]
    after, total = await ids(client, query)
    assert total == "21" and after == [new, *before]
    r = await client.patch(f"/api/items/{before[0]}", json={"city": "Lyon"})
    assert r.status_code == 200
    after, total = await ids(client, query)
    assert total == "20" and after == [new, *before[1:]]
    assert before[0] in (await ids(client, "city=Lyon&_limit=100"))[0]
    r = await client.delete(f"/api/items/{before[1]}")
    assert r.status_code == 204
    after, total = await ids(client, query)
    assert total == "19" and after == [new, *before[2:]]
    r = await client.get("/api/items?_facet=city&_limit=0")
    facets = {f["value"]: f["count"] for f in r.json()["facets"]["city"]}
    assert facets == {"Paris": 19, "Lyon": 21}
