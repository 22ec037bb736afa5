"""An api site's rows by key from the outer fast path (fastpath.py, `ApiSite._outer_row`): the same
answer as the whole stack gives, or no answer at all (the stack answers) — never a stale row."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from comptoir.app import build_app
from comptoir.config import Config, ServerOptions, SiteConfig
from comptoir.sites.api import ApiOptions
from comptoir.sites.api import live as live_module
from comptoir.sites.api.app import ApiSite
from comptoir.sites.api.output import dumps, row_object
from comptoir.sites.api.routes import parse_route
from comptoir.sites.contract import SiteContext
from comptoir.types import ASGIApp, Message
from tests.conftest import asgi_client

ROWS = '''id,name,score,ratio,active,born,seen,note
1,Ada,90,10.5,true,1990-01-02,2024-05-01T10:30:00,
2,Bob,-75,nan,false,1985-06-30,2024-05-02T08:00:00.250000,"two
lines, ""quoted"""
3,Chloé ✓,,inf,true,,,\\ \u2028 tab\there
4,Dan,0,-0.0,,2001-12-31,,=cmd
5,Eve,12345678901,1e-05,false,1999-09-09,2024-05-03T00:00:00,
'''


# Polars reads `nan` and `inf` as text: the column is made a float one.
TYPES = ("people.ratio=float",)


def scope(raw_path: bytes, *, query: bytes = b"", accept: bytes = b"*/*") -> dict[str, Any]:
    from urllib.parse import unquote_to_bytes

    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": unquote_to_bytes(raw_path).decode("utf-8", "surrogateescape"),
        "raw_path": raw_path,
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"data.test"), (b"accept", accept)],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "extensions": {},
    }


async def ask(app: ASGIApp, request: dict[str, Any]) -> tuple[int, list[Any], bytes]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(dict(request, headers=list(request["headers"])), receive, send)
    data = b"".join(m.get("body", b"") for m in sent[1:])
    return sent[0]["status"], [tuple(h) for h in sent[0]["headers"]], data


class Apps:
    """The same site twice: with the fast path, and without (the reference)."""

    def __init__(self, folder: Path, path: str = "/", **options: Any) -> None:
        options.setdefault("type", TYPES)
        site = SiteConfig(
            kind="api", options=ApiOptions(data=(folder,), **options), name="data", path=path
        )
        config = Config(server=ServerOptions(quiet=True), sites=(site,))
        self.fast = build_app(config, log_write=lambda line: None)
        self.full = build_app(config, fast_path=False, log_write=lambda line: None)

    @property
    def kept(self) -> set[tuple[bytes, bytes]]:
        return set(self.fast.fast_path.computed_under)  # type: ignore[attr-defined]

    async def same(self, request: dict[str, Any]) -> tuple[int, list[Any], bytes]:
        fast = await ask(self.fast, request)
        assert fast == await ask(self.full, request)
        return fast


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "people.csv").write_text(ROWS, encoding="utf-8")
    return tmp_path


async def test_rows_come_from_the_fast_path_exactly_as_the_stack_writes_them(folder: Path) -> None:
    apps = Apps(folder)
    await ask(apps.fast, scope(b"/api/people/1"))  # the stack answers, and offers the others
    assert apps.kept == {(b"data.test", b"/api/people/")}
    references = [await ask(apps.full, scope(f"/api/people/{k}".encode())) for k in range(1, 6)]
    stack = apps.fast.app  # type: ignore[attr-defined]
    apps.fast.app = None  # type: ignore[attr-defined]  # nothing below the outer app answers now
    for key, reference in zip(range(1, 6), references, strict=True):
        assert await ask(apps.fast, scope(f"/api/people/{key}".encode())) == reference
    apps.fast.app = stack  # type: ignore[attr-defined]
    status, headers, body = references[1]
    assert status == 200 and body.endswith(b"\n")
    assert dict(headers)[b"etag"] != dict(references[0][1])[b"etag"]
    # The spelling of every value (orjson): dates as isoformat, NaN and infinities null.
    assert body == dumps(
        {
            "id": 2,
            "name": "Bob",
            "score": -75,
            "ratio": None,
            "active": False,
            "born": "1985-06-30",
            "seen": "2024-05-02T08:00:00.250000",
            "note": 'two\nlines, "quoted"',
        }
    )
    third = references[2][2].decode()
    assert '"name":"Chloé ✓"' in third and '"ratio":null' in third and "\\t" in third
    assert '"ratio":-0.0' in references[3][2].decode()
    assert math.isclose(httpx.Response(200, content=references[4][2]).json()["ratio"], 1e-05)


async def test_what_the_fast_path_leaves_to_the_stack(folder: Path) -> None:
    (folder / "visits.csv").write_text("id,people_id,at\n10,1,2024-01-01\n11,1,2024-01-02\n")
    route = parse_route({"path": "/api/people/{id:int}", "table": "people", "key": "{id}"})
    custom = Apps(folder, route=(route,))
    apps = Apps(folder)
    for each in (apps, custom):
        await ask(each.fast, scope(b"/api/people/1"))
    requests = [
        scope(b"/api/people/99"),  # no such row: a 404 with its JSON
        scope(b"/api/people/x"),  # not a key of the column's type
        scope(b"/api/people/1", query=b"_embed=visits"),
        scope(b"/api/people/1", accept=b"text/html,*/*"),  # a page for a browser
        scope(b"/api/people/%31"),  # escaped: the stack decodes it
        scope(b"/api/people/1/visits"),
        scope(b"/api/nope/1"),
        scope(b"/api/visits/10"),
    ]
    for request in requests:
        await apps.same(request)
    # A custom route on the same paths answers instead of the table route, on both paths.
    status, _, body = await custom.same(scope(b"/api/people/2"))
    assert status == 200 and b'"Bob"' in body


async def test_a_site_under_a_path_is_answered_there_only(folder: Path) -> None:
    apps = Apps(folder, path="/data")
    await ask(apps.fast, scope(b"/data/api/people/1"))
    assert apps.kept == {(b"data.test", b"/data/api/people/")}
    status, _, body = await apps.same(scope(b"/data/api/people/3"))
    assert status == 200 and "Chloé".encode() in body
    assert (await apps.same(scope(b"/api/people/3")))[0] == 421  # no site here


@pytest.fixture
async def workers(folder: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    writer = ApiSite(ApiOptions(data=(folder,), write=True, type=TYPES), SiteContext())
    reader = Apps(folder, write=True)
    async with asgi_client(writer, "http://data.test") as client:
        yield client, reader
    await writer.live.close()


async def test_another_workers_write_is_in_the_next_row_read(
    workers: tuple[httpx.AsyncClient, Any],
) -> None:
    writer, reader = workers
    await ask(reader.fast, scope(b"/api/people/1"))
    assert reader.kept
    # Through the other worker: the journal says so before the answer, and the fast path,
    # seeing the journal grow (one `stat`), leaves the read to the stack, which applies it.
    assert (await writer.patch("/api/people/1", json={"name": "Ada L."})).status_code == 200
    status, headers, body = await ask(reader.fast, scope(b"/api/people/1"))
    assert status == 200 and b'"Ada L."' in body
    etag = dict(headers)[b"etag"].decode()
    assert (await writer.get("/api/people/1")).headers["etag"] == etag
    # The next reads come from the fast path again, with the new row.
    assert await ask(reader.fast, scope(b"/api/people/1")) == await ask(
        reader.full, scope(b"/api/people/1")
    )
    posted = await writer.post("/api/people", json={"name": "Zoé"})
    assert posted.status_code == 201
    key = posted.json()["id"]
    status, _, body = await ask(reader.fast, scope(f"/api/people/{key}".encode()))
    assert status == 200 and "Zoé".encode() in body


async def test_a_file_edited_by_hand_is_seen_within_the_check_interval(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    apps = Apps(folder)
    await ask(apps.fast, scope(b"/api/people/1"))
    path = folder / "people.csv"
    path.write_text(ROWS.replace("1,Ada,", "1,Adèle,"), encoding="utf-8")
    # Within the second after the last check the fast path still serves what was read (as
    # the stack does); once it is due, it leaves the read to the stack, which reads the file.
    monkeypatch.setattr(live_module, "RELOAD_EVERY", 0.0)
    status, _, body = await ask(apps.fast, scope(b"/api/people/1"))
    assert status == 200 and "Adèle".encode() in body


def test_rows_written_as_json_are_the_general_paths_bytes(folder: Path) -> None:
    site = ApiSite(ApiOptions(data=(folder,), type=TYPES), SiteContext())
    table = site.tables["people"]
    for at in range(table.frame.height):
        assert table.json_row(at) == dumps(row_object(table.frame.row(at, named=True)))


async def test_a_site_mounted_under_the_rows_keeps_its_paths(folder: Path) -> None:
    from comptoir.sites.echo import EchoOptions

    sites = (
        SiteConfig(kind="api", options=ApiOptions(data=(folder,), type=TYPES), name="data"),
        SiteConfig(kind="echo", options=EchoOptions(), name="tools", path="/api/people/2"),
    )
    config = Config(server=ServerOptions(quiet=True), sites=sites)
    fast = build_app(config, log_write=lambda line: None)
    full = build_app(config, fast_path=False, log_write=lambda line: None)
    await ask(fast, scope(b"/api/people/1"))
    for path in (b"/api/people/2", b"/api/people/3"):
        assert await ask(fast, scope(path)) == await ask(full, scope(path))
    assert (await ask(fast, scope(b"/api/people/2")))[0] != 200


def test_what_orjson_refuses_is_still_written() -> None:
    """An integer past 64 bits, a lone surrogate, a type orjson does not know: written by the json
    module instead (never a 500), dates and non-finite floats spelled as everywhere else."""
    import datetime as dt
    import decimal
    import json

    body = dumps(
        {
            "big": 2**70,
            "deep": [math.nan, dt.date(2020, 1, 2), {"when": dt.datetime(2020, 1, 2, 3, 4)}],
            "name": "x\ud800",
            "amount": decimal.Decimal("1.5"),
        }
    )
    assert json.loads(body) == {
        "big": 2**70,
        "deep": [None, "2020-01-02", {"when": "2020-01-02T03:04:00"}],
        "name": "x\ud800",
        "amount": "1.5",
    }
