"""`comptoir api`'s exports (output.py: `csv_chunks`, `ndjson_chunks`, `json_chunks`) write the same
bytes as before they skipped the work a chunk does not need: dates, datetimes with and without
microseconds, NaN, nulls, formula-looking cells and column names, quotes and newlines, chunk by
chunk; and the app streams them one chunk ahead."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from comptoir.app import build_app
from comptoir.errors import ClientGone
from comptoir.sites.api import ApiOptions, output
from comptoir.types import Message
from tests.conftest import http_scope, make_config

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


# --- the exports as they were written before (the reference) ---------------------------------


def texts(frame: pl.DataFrame, *, csv: bool) -> pl.DataFrame:
    exprs = []
    for name, dtype in frame.schema.items():
        col = pl.col(name)
        if dtype == pl.Datetime:
            whole = col.dt.strftime("%Y-%m-%dT%H:%M:%S")
            exprs.append(
                pl.when(col.dt.microsecond() == 0)
                .then(whole)
                .otherwise(col.dt.strftime("%Y-%m-%dT%H:%M:%S%.6f"))
                .alias(name)
            )
        elif dtype == pl.Date:
            exprs.append(col.dt.strftime("%Y-%m-%d").alias(name))
        elif dtype.is_float():
            exprs.append(col.fill_nan(None))
        elif csv and dtype == pl.String:
            risky = col.str.contains(r"^[=+\-@\t\r]")
            exprs.append(pl.when(risky).then(pl.lit("'") + col).otherwise(col).alias(name))
    return frame.with_columns(exprs) if exprs else frame


def defused_names(frame: pl.DataFrame) -> pl.DataFrame:
    risky = {c: "'" + c for c in frame.columns if c.startswith(FORMULA_START)}
    return frame.rename(risky) if risky else frame


def csv_before(frame: pl.DataFrame, rows: int) -> Iterator[bytes]:
    if frame.height == 0:
        yield defused_names(texts(frame, csv=True)).write_csv(include_header=True).encode()
        return
    for start in range(0, frame.height, rows):
        chunk = texts(frame.slice(start, rows), csv=True)
        if start == 0:
            chunk = defused_names(chunk)
        yield chunk.write_csv(include_header=start == 0).encode()


def ndjson_before(frame: pl.DataFrame, rows: int) -> Iterator[bytes]:
    for start in range(0, frame.height, rows):
        yield texts(frame.slice(start, rows), csv=False).write_ndjson().encode()


def json_before(frame: pl.DataFrame, rows: int) -> Iterator[bytes]:
    if frame.height == 0:
        yield b"[]\n"
        return
    yield b"["
    for start in range(0, frame.height, rows):
        text = texts(frame.slice(start, rows), csv=False).write_json()
        yield (b"," if start else b"") + text.strip()[1:-1].encode()
    yield b"]\n"


def assert_same_exports(frame: pl.DataFrame, rows: int) -> None:
    with mock.patch.object(output, "CHUNK_ROWS", rows):
        assert list(output.csv_chunks(frame)) == list(csv_before(frame, rows))
        assert list(output.ndjson_chunks(frame)) == list(ndjson_before(frame, rows))
        assert list(output.json_chunks(frame)) == list(json_before(frame, rows))


# --- cases ---------------------------------------------------------------------------------------

NAN = float("nan")
MIXED = pl.DataFrame(
    {
        "id": [1, 2, 3, 4, 5, 6, 7, 8, 9],
        "=name": ["Ada", "=HYPERLINK(x)", None, "+1", "-2", "@cmd", "\tTab", "\rCR", "Zoé"],
        "+note": ['say "hi"', "two\nlines", "a,b", "", "1st", " space", "!bang", '"q"', "ok"],
        "-price": [1.5, NAN, None, -0.0, math.inf, -math.inf, 0.1, 1e20, 2.0],
        "@born": [
            dt.date(2024, 5, 1),
            None,
            dt.date(1, 1, 1),
            dt.date(9999, 12, 31),
            dt.date(999, 1, 2),
            dt.date(2000, 2, 29),
            dt.date(1970, 1, 1),
            dt.date(2024, 5, 2),
            dt.date(2024, 5, 3),
        ],
        "\tseen": [
            dt.datetime(2024, 5, 1, 10, 30),
            dt.datetime(2024, 5, 1, 10, 30, 0, 250000),
            None,
            dt.datetime(2024, 5, 1, 0, 0, 0, 1),
            dt.datetime(1, 1, 1),
            dt.datetime(2024, 5, 1, 23, 59, 59, 999999),
            dt.datetime(2024, 5, 1),
            dt.datetime(2024, 5, 2, 12),
            dt.datetime(2024, 5, 3, 12, 0, 0, 500),
        ],
        "active": [True, False, None, True, False, True, None, False, True],
        "plain": ["a", "b", "c", "d", "e", "f", "g", "h", "i"],  # nothing to defuse anywhere
        "empty": pl.Series([None] * 9, dtype=pl.String),
        "floats": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],  # no NaN anywhere
    }
)


@pytest.mark.parametrize("rows", [1, 2, 3, 4, 9, 10_000])
def test_exports_are_the_bytes_they_were(rows: int) -> None:
    # Small chunks: some have a formula, a NaN or microseconds, some have none.
    assert_same_exports(MIXED, rows)
    assert_same_exports(MIXED.head(0), rows)
    assert_same_exports(MIXED.select("plain", "floats"), rows)


def test_csv_export_spells_values_as_before() -> None:
    text = b"".join(output.csv_chunks(MIXED)).decode()
    header, first, second = text.splitlines()[:3]
    assert header == "id,'=name,'+note,'-price,'@born,'\tseen,active,plain,empty,floats"
    assert first.startswith('1,Ada,"say ""hi""",1.5,2024-05-01,2024-05-01T10:30:00,true')
    assert second.startswith("2,'=HYPERLINK(x),\"two")


CELLS = st.text(alphabet=st.sampled_from(list("=+-@\t\r\n\",; aAzZ09!'é€")), max_size=6) | st.none()
FLOATS = st.floats(allow_nan=True, allow_infinity=True) | st.none()
DATETIMES = (
    st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31)) | st.none()
)


@settings(max_examples=200, deadline=None)
@given(
    cells=st.lists(st.tuples(CELLS, FLOATS, DATETIMES, st.dates() | st.none()), max_size=20),
    name=st.text(alphabet=st.sampled_from(list("=+-@\tab")), min_size=1, max_size=3),
    rows=st.integers(1, 7),
)
def test_random_exports_are_the_bytes_they_were(
    cells: list[tuple[Any, ...]], name: str, rows: int
) -> None:
    frame = pl.DataFrame(
        {
            name: pl.Series([c[0] for c in cells], dtype=pl.String),
            f"{name}_x": pl.Series([c[1] for c in cells], dtype=pl.Float64),
            "seen": pl.Series([c[2] for c in cells], dtype=pl.Datetime("us")),
            "born": pl.Series([c[3] for c in cells], dtype=pl.Date),
        }
    )
    assert_same_exports(frame, rows)


# --- streamed by the app -------------------------------------------------------------------------


async def export(tmp_path: Path, send: Any) -> None:
    app = build_app(make_config("api", ApiOptions(data=(tmp_path,))))
    scope = http_scope("/api/big.csv", {"host": "testserver"})
    scope["query_string"] = b"_limit=all"

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    await app(scope, receive, send)


async def test_the_app_streams_the_export_one_chunk_ahead(tmp_path: Path) -> None:
    rows = 25_000
    body = "id,v,when\n" + "".join(f"{i},=x{i},2024-05-{i % 28 + 1:02d}\n" for i in range(rows))
    (tmp_path / "big.csv").write_text(body)
    chunks: list[bytes] = []

    async def send(message: Message) -> None:
        if message["type"] == "http.response.body" and message["body"]:
            chunks.append(message["body"])

    with mock.patch.object(output, "CHUNK_ROWS", 1000):
        await export(tmp_path, send)
        frame = pl.read_csv(tmp_path / "big.csv", try_parse_dates=True)
        assert chunks == list(csv_before(frame, 1000))


async def test_a_client_gone_mid_export_ends_it(tmp_path: Path) -> None:
    (tmp_path / "big.csv").write_text("id,v\n" + "".join(f"{i},x\n" for i in range(5000)))
    sent = 0

    async def send(message: Message) -> None:
        nonlocal sent
        if message["type"] == "http.response.body":
            sent += 1
            if sent == 2:
                raise ClientGone

    with mock.patch.object(output, "CHUNK_ROWS", 100):
        await export(tmp_path, send)  # ended quietly, the chunk made ahead dropped
    assert sent == 2  # nothing sent after
