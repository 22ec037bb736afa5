"""Rows written as JSON in the cache (sites/api/rowstore.py) and a worker that serves rows by key
from them while its site is made (sites/api/starting.py): the very bytes and headers the site
answers with, or no answer at all (the site answers) — never a row the file no longer has."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from comptoir.sites.api import ApiOptions, cache
from comptoir.sites.api.app import ApiSite
from comptoir.sites.api.files import journal_path
from comptoir.sites.api.output import dumps, row_object
from comptoir.sites.api.routes import parse_route
from comptoir.sites.api.starting import ApiApp
from comptoir.sites.api.tables import load_table
from comptoir.sites.contract import SiteContext
from tests.conftest import asgi_client

# Every kind of value whose JSON spelling could differ between Polars and orjson.
ROWS = (
    "id,name,score,ratio,active,born,note\n"
    "1,Ada,90,10.5,true,1990-01-02,\n"
    '2,Bob,-75,nan,false,1985-06-30,"two\nlines, ""quoted"""\n'
    "3,Chloé ✓,,inf,true,,\\ \u2028 tab\there\x01\x1f\n"
    "4,Dan,0,-0.0,,2001-12-31,=cmd\n"
    "5,Eve,9223372036854775807,1e-05,false,0001-01-01,</script>\n"
    "6,Fay,1,1e22,true,9999-12-31,\u202etxt\n"
    "7,Gus,2,0.1,false,2024-02-29,\x7f\n"
    "8,Hal,3,123456789.123456789,true,2024-01-01,é\n"
)
TYPES = ("ratio=float",)
ROW_SCOPE: dict[str, Any] = {
    "type": "http",
    "method": "GET",
    "path": "/api/people/1",
    "raw_path": b"/api/people/1",
    "query_string": b"",
    "headers": [],
}


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("COMPTOIR_CACHE_DIR", str(folder))
    monkeypatch.setattr(cache, "RACY_SECONDS", -1.0)  # files written an instant ago are kept
    return folder / "tables"


def data(tmp_path: Path, text: str = ROWS, name: str = "people.csv") -> Path:
    folder = tmp_path / "data"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_the_rows_file_spells_every_row_as_the_api_does(tmp_path: Path, own_cache: Path) -> None:
    path = data(tmp_path)
    parsed = load_table("people", path, types={"ratio": "float"})
    assert parsed.store is None  # parsed: its rows are written one at a time
    cached = load_table("people", path, types={"ratio": "float"})
    assert cached.store is not None
    assert [p.suffix for p in sorted(own_cache.iterdir())].count(".rows") == 1
    for at in range(cached.frame.height):
        expected = dumps(row_object(parsed.frame.row(at, named=True)))
        assert cached.json_row(at) == expected == parsed.json_row(at)


def test_no_rows_file_where_polars_spells_a_type_otherwise(tmp_path: Path, own_cache: Path) -> None:
    # Polars writes a datetime with a space where the API writes `T`: no rows file.
    path = data(tmp_path, "id,seen\n1,2024-05-01T10:30:00\n2,\n")
    load_table("t", path)
    cached = load_table("t", path)
    assert cached.store is None
    assert not [p for p in own_cache.iterdir() if p.suffix == ".rows"]
    assert cached.json_row(0) == b'{"id":1,"seen":"2024-05-01T10:30:00"}\n'


def test_a_damaged_rows_file_is_not_used(tmp_path: Path, own_cache: Path) -> None:
    path = data(tmp_path)
    parsed = load_table("people", path, types={"ratio": "float"})
    (rows,) = [p for p in own_cache.iterdir() if p.suffix == ".rows"]
    size = rows.stat().st_size
    with open(rows, "r+b") as f:  # the offsets past the end: same size, other content
        f.seek(size - 16)
        f.write((10**9).to_bytes(8, sys.byteorder))
    cached = load_table("people", path, types={"ratio": "float"})
    assert cached.store is None
    assert cached.json_row(1) == parsed.json_row(1)
    os.truncate(rows, size - 1)
    assert load_table("people", path, types={"ratio": "float"}).store is None


def test_a_new_version_of_the_file_replaces_its_rows_file(tmp_path: Path, own_cache: Path) -> None:
    path = data(tmp_path)
    load_table("people", path, types={"ratio": "float"})
    first = {p.name for p in own_cache.iterdir() if p.suffix == ".rows"}
    path.write_text(ROWS + "9,Ivy,4,1.5,true,2024-03-03,\n", encoding="utf-8")
    load_table("people", path, types={"ratio": "float"})
    second = {p.name for p in own_cache.iterdir() if p.suffix == ".rows"}
    assert len(second) == 1 and not first & second


# --- a worker starting ---------------------------------------------------------------------


class HeldBack(ApiApp):
    """An ApiApp whose site is made only when the test says so."""

    release: threading.Event

    def _make_later(self, options: ApiOptions, context: SiteContext) -> None:
        self.release.wait(30)
        super()._make_later(options, context)


def starting(options: ApiOptions) -> HeldBack:
    HeldBack.release = threading.Event()
    return HeldBack(options, SiteContext())


async def answer(client: httpx.AsyncClient, path: str, **headers: str) -> tuple[Any, ...]:
    method = headers.pop("method", "GET")
    r = await client.request(method, path, headers=headers)
    return r.status_code, sorted(r.headers.items()), r.content


PATHS = [
    "/api/people/1",
    "/api/people/8",
    "/api/people/3",
    "/api/people/0",
    "/api/people/9",
    "/api/people/-1",
    "/api/people/01",
    "/api/people/+1",
    "/api/people/1.0",
    "/api/people/99999999999999999999999",
    "/api/people/1?_fields=name",
    "/api/people/%31",
    "/api/nobody/1",
    "/api/people",
]


async def test_a_starting_worker_answers_as_the_site(tmp_path: Path) -> None:
    path = data(tmp_path)
    options = ApiOptions(data=(path.parent,), type=TYPES)
    site = ApiSite(options, SiteContext())  # parses; the cache keeps the rows
    app = starting(options)
    assert app.site is None and set(app.early) == {"people"}
    async with asgi_client(site) as direct, asgi_client(app) as early:
        for row in ("/api/people/1", "/api/people/8", "/api/people/3"):
            for method in ("GET", "HEAD"):
                assert await answer(early, row, method=method) == await answer(
                    direct, row, method=method
                )
        assert app.site is None  # all of them answered before the site was made
        waiting = [asyncio.ensure_future(answer(early, p)) for p in [*PATHS, "/api/people/1?x=1"]]
        waiting.append(asyncio.ensure_future(answer(early, "/api/people/2", accept="text/html")))
        await asyncio.sleep(0.05)
        assert not any(task.done() for task in waiting[4:])  # the site's to answer: they wait
        app.release.set()
        got = await asyncio.gather(*waiting)
        want = [await answer(direct, p) for p in [*PATHS, "/api/people/1?x=1"]]
        want.append(await answer(direct, "/api/people/2", accept="text/html"))
        assert got == want
        assert app.site is not None


async def test_rows_wait_for_the_site_once_the_file_changed_or_was_written(
    tmp_path: Path,
) -> None:
    path = data(tmp_path)
    options = ApiOptions(data=(path.parent,), type=TYPES)
    ApiSite(options, SiteContext())
    app = starting(options)
    scope_row = ROW_SCOPE
    assert app._early_row(scope_row) is not None
    journal_path(path).write_text("")  # another worker took a write
    assert app._early_row(scope_row) is None
    journal_path(path).unlink()
    path.write_text(ROWS.replace("Ada", "Ava"), encoding="utf-8")  # edited on disk
    assert app._early_row(scope_row) is None
    app.release.set()


async def test_custom_routes_are_never_answered_early(tmp_path: Path) -> None:
    path = data(tmp_path)
    route = parse_route({"path": "/api/people/{id:int}", "body": {"mine": True}})
    options = ApiOptions(data=(path.parent,), type=TYPES, route=(route,))
    ApiSite(options, SiteContext())
    app = starting(options)
    async with asgi_client(app) as client:
        pending = asyncio.ensure_future(client.get("/api/people/1"))
        await asyncio.sleep(0.05)
        assert not pending.done()
        app.release.set()
        assert (await pending).json() == {"mine": True}


def test_a_worker_starting_from_the_cache_imports_no_polars_before_serving(
    tmp_path: Path, own_cache: Path
) -> None:
    path = data(tmp_path)
    load_table("people", path, types={"ratio": "float"})
    script = f"""
import sys, threading
from pathlib import Path
from comptoir.config import ServerOptions
from comptoir.sites.api import ApiOptions, validate
from comptoir.sites.api.starting import ApiApp
from comptoir.sites.contract import SiteContext
ApiApp._make_later = lambda self, options, context: None
options = ApiOptions(data=(Path({str(path)!r}),), type=("people.ratio=float",))
assert validate(options, ServerOptions()) == []
app = ApiApp(options, SiteContext())
scope = {{"type": "http", "method": "GET", "path": "/api/people/2", "raw_path": b"/api/people/2",
         "query_string": b"", "headers": []}}
print(app._early_row(scope).decode(), end="")
print("polars" in sys.modules)
"""
    env = {**os.environ, "COMPTOIR_CACHE_DIR": str(own_cache.parent)}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    row, imported = done.stdout.splitlines()[0], done.stdout.splitlines()[-1]
    assert json.loads(row)["name"] == "Bob"
    assert imported == "False"


def test_a_rows_file_cut_short_while_served_gives_way_to_the_frame(
    tmp_path: Path, own_cache: Path
) -> None:
    path = data(tmp_path)
    parsed = load_table("people", path, types={"ratio": "float"})
    cached = load_table("people", path, types={"ratio": "float"})
    assert cached.store is not None
    (rows,) = [p for p in own_cache.iterdir() if p.suffix == ".rows"]
    os.truncate(rows, 10)  # someone else's hand in the cache, after the start
    assert cached.store.row(3) is None
    assert cached.json_row(3) == parsed.json_row(3)


def test_polars_allocator_gives_memory_back_unless_told_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from comptoir.config import ServerOptions
    from comptoir.sites.api import ALLOCATOR, validate

    path = data(tmp_path)
    name, value = ALLOCATOR
    monkeypatch.delenv(name, raising=False)
    validate(ApiOptions(data=(path,)), ServerOptions())
    assert os.environ[name] == value
    monkeypatch.setenv(name, "narenas:1")  # the user's own setting stays
    validate(ApiOptions(data=(path,)), ServerOptions())
    assert os.environ[name] == "narenas:1"


def test_no_rows_file_for_integers_past_64_bits(tmp_path: Path, own_cache: Path) -> None:
    import polars as pl

    # Past 64 bits the API's JSON is the json module's, which escapes text Polars writes as is.
    path = tmp_path / "wide.parquet"
    frame = pl.DataFrame({"id": [1, 2], "n": [2**64 + 5, 1], "city": ["Montréal", "Nice"]})
    frame.with_columns(pl.col("n").cast(pl.Int128)).write_parquet(path)
    load_table("wide", path)
    cached = load_table("wide", path)
    assert cached.store is None
    assert cached.json_row(0) == dumps(row_object(cached.frame.row(0, named=True)))


async def test_a_very_long_key_is_the_sites_to_answer(tmp_path: Path) -> None:
    path = data(tmp_path)
    options = ApiOptions(data=(path.parent,), type=TYPES)
    site = ApiSite(options, SiteContext())
    app = starting(options)
    key = "1" * 5000  # past Python's digits for int(): no early answer, no 500
    assert app._early_row({**ROW_SCOPE, "path": f"/api/people/{key}"}) is None
    app.release.set()
    async with asgi_client(site) as direct, asgi_client(app) as early:
        assert await answer(early, f"/api/people/{key}") == await answer(
            direct, f"/api/people/{key}"
        )
    assert app.early == {}  # the site's own rows file serves now


async def test_a_site_that_cannot_be_made_stops_the_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = data(tmp_path)
    options = ApiOptions(data=(path.parent,), type=TYPES)
    ApiSite(options, SiteContext())
    monkeypatch.setattr(ApiApp, "_make", lambda self, options, context: 1 / 0)
    monkeypatch.setattr("comptoir.sites.api.starting.write_line", lambda line: None)
    stopped = threading.Event()
    app = ApiApp(options, SiteContext(request_shutdown=stopped.set))
    async with asgi_client(app) as client:
        r = await client.get("/api/people")
    assert r.status_code == 503 and r.json() == {"error": "the tables could not be read"}
    assert stopped.wait(5)


def test_the_check_finds_a_declared_relation_to_nowhere_from_the_cache(tmp_path: Path) -> None:
    from comptoir.config import ServerOptions
    from comptoir.sites.api import validate

    path = data(tmp_path)
    load_table("people", path)  # in the cache: the check reads no file
    problems = validate(
        ApiOptions(data=(path,), relation=("people.nope=people.id",)), ServerOptions()
    )
    assert [str(p) for p in problems] == ["people.nope=people.id: no column 'nope' in 'people'"]
