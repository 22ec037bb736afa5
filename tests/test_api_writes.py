"""`comptoir api --write`: writes through in-process requests, what readers see, and the files.

Each `Worker` is one ApiSite, as a worker process builds it: two of them on the same folder are two
workers (their journals, locks and files are real; only the processes are not).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import pytest
from openapi_spec_validator import validate

from comptoir.app import build_app
from comptoir.sites.api import ApiOptions, routes
from comptoir.sites.api import app as app_module
from comptoir.sites.api import live as live_module
from comptoir.sites.api.app import ApiSite
from comptoir.sites.api.files import journal_path, rewrite_path
from comptoir.sites.contract import SiteContext
from tests.conftest import asgi_client, make_config

PEOPLE = """id,name,score,price,active,born,seen,note
1,Ada,90,10.5,true,1990-01-02,2024-05-01T10:30:00,
2,Bob,75,,false,1985-06-30,2024-05-02T08:00:00,"two
lines"
3,Chloé,,3.25,true,,,x
"""


class Worker:
    """One worker's app on a folder, with an in-process client."""

    def __init__(self, folder: Path, **options: Any) -> None:
        options.setdefault("data", (folder,))
        options.setdefault("write", True)
        self.lines: list[str] = []
        # What it says on the terminal, from its start on.
        with mock.patch.object(app_module, "write_line", self.lines.append):
            self.site = ApiSite(ApiOptions(**options), SiteContext())
        self.client = asgi_client(self.site)

    async def close(self) -> None:
        """Stop as a worker does (every write into its file, journals removed)."""
        await self.site.live.close()
        await self.client.aclose()

    async def crash(self) -> None:
        """Stop as `kill -9` would: nothing written, nothing removed (the fds let go)."""
        for live in self.site.live.live.values():
            if live.rewriting is not None:
                live.rewriting.cancel()
            live.journal.close()
            live.thread.shutdown(wait=True)
        await self.client.aclose()


Start = Callable[..., Worker]


@pytest.fixture(autouse=True)
def quick_rewrites(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live_module, "REWRITE_AFTER", 0.05)


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Start]:
    workers: list[Worker] = []

    def make(folder: Path = tmp_path, **options: Any) -> Worker:
        worker = Worker(folder, **options)
        workers.append(worker)
        return worker

    yield make
    for worker in workers:
        if not worker.client.is_closed:
            await worker.close()


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "people.csv"
    path.write_text(PEOPLE, encoding="utf-8")
    return path


async def wait_for(check: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "not within the time"
        await asyncio.sleep(0.02)


# --- the four writes ------------------------------------------------------------------------


async def test_post_gives_the_next_key_and_answers_201_with_the_row(
    csv_file: Path, start: Start
) -> None:
    c = start().client
    r = await c.post("/api/people", json={"name": "Dan", "score": 60, "born": "2001-12-31"})
    assert r.status_code == 201, r.text
    assert r.headers["location"] == "/api/people/4"
    assert r.headers["content-type"] == "application/json"
    row = r.json()
    assert row == {
        "id": 4,
        "name": "Dan",
        "score": 60,
        "price": None,
        "active": None,
        "born": "2001-12-31",
        "seen": None,
        "note": None,
    }
    got = await c.get("/api/people/4")
    assert got.json() == row and got.headers["etag"] == r.headers["etag"]
    listed = await c.get("/api/people?_sort=-id&_limit=1")
    assert listed.json() == [row] and listed.headers["x-total-count"] == "4"
    r = await c.post("/api/people", json={"id": 10, "name": "Ten"})
    assert r.status_code == 201 and r.headers["location"] == "/api/people/10"
    assert (await c.post("/api/people", json={"name": "Eleven"})).json()["id"] == 11
    r = await c.post("/api/people", json={"id": 2, "name": "again"})
    assert r.status_code == 409
    assert r.json() == {"error": "'people' has a row 2 already", "key": 2}
    assert (await c.get("/api/people/2")).json()["name"] == "Bob"


async def test_a_deleted_key_is_not_given_again(csv_file: Path, start: Start) -> None:
    c = start().client
    assert (await c.delete("/api/people/3")).status_code == 204
    assert (await c.post("/api/people", json={"name": "x"})).json()["id"] == 4


async def test_put_replaces_patch_merges_delete_removes(csv_file: Path, start: Start) -> None:
    c = start().client
    r = await c.put("/api/people/1", json={"name": "Ada L", "score": 91})
    assert r.status_code == 200
    assert r.json() == {
        "id": 1,
        "name": "Ada L",
        "score": 91,
        "price": None,
        "active": None,
        "born": None,
        "seen": None,
        "note": None,
    }
    r = await c.patch("/api/people/2", json={"score": 76, "id": 2})
    assert r.status_code == 200
    assert r.json()["score"] == 76 and r.json()["note"] == "two\nlines"
    assert (await c.get("/api/people/2")).json() == r.json()
    r = await c.patch("/api/people/2", json={"id": 5})
    assert r.status_code == 409
    assert r.json() == {"error": "the key cannot change (it is 2 here)", "key": 2}
    r = await c.patch("/api/people/2", json={"id": 2.0, "score": 77.0})  # JSON's integers too
    assert r.status_code == 200 and r.json()["score"] == 77
    r = await c.delete("/api/people/2")
    assert r.status_code == 204 and r.content == b""
    for method in ("PUT", "PATCH", "DELETE", "GET"):
        r = await c.request(method, "/api/people/2", json={"name": "x"})
        assert r.status_code == 404, method
        assert r.json()["error"]
    assert [p["id"] for p in (await c.get("/api/people")).json()] == [1, 3]


async def test_if_match_takes_the_current_etag_only(csv_file: Path, start: Start) -> None:
    c = start().client
    etag = (await c.get("/api/people/1")).headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')
    r = await c.patch("/api/people/1", json={"score": 1}, headers={"if-match": etag})
    assert r.status_code == 200
    new = r.headers["etag"]
    assert new != etag
    r = await c.patch("/api/people/1", json={"score": 2}, headers={"if-match": etag})
    assert r.status_code == 412
    assert r.headers["etag"] == new
    assert (await c.get("/api/people/1")).json()["score"] == 1
    r = await c.put("/api/people/1", json={"name": "A"}, headers={"if-match": f'"x", {new}'})
    assert r.status_code == 200
    r = await c.delete("/api/people/1", headers={"if-match": f"W/{r.headers['etag']}"})
    assert r.status_code == 412  # a weak tag never matches: If-Match compares strongly
    assert (await c.delete("/api/people/1", headers={"if-match": "*"})).status_code == 204
    # Gone: a 404 whatever the If-Match (RFC 9110 §13.2.1), as without it.
    for tag in ("*", new, ""):
        r = await c.request("PATCH", "/api/people/1", json={"score": 3}, headers={"if-match": tag})
        assert r.status_code == 404, tag
        assert (await c.delete("/api/people/1", headers={"if-match": tag})).status_code == 404


async def test_rowid_tables_number_posted_rows(tmp_path: Path, start: Start) -> None:
    (tmp_path / "notes.csv").write_text("text\na\nb\n")
    c = start().client
    r = await c.post("/api/notes", json={"text": "c"})
    assert r.status_code == 201 and r.json() == {"rowid": 3, "text": "c"}
    r = await c.post("/api/notes", json={"rowid": 9, "text": "d"})
    assert r.status_code == 422
    assert "given by the server" in r.json()["fields"]["rowid"]


async def test_text_keys_are_given_by_the_client(tmp_path: Path, start: Start) -> None:
    (tmp_path / "codes.csv").write_text("id,label\nfr,France\nde,Allemagne\n")
    c = start().client
    r = await c.post("/api/codes", json={"label": "Italie"})
    assert r.status_code == 422
    assert r.json()["fields"] == {"id": "required: keys of string type are not given by the server"}
    r = await c.post("/api/codes", json={"id": "it", "label": "Italie"})
    assert r.status_code == 201 and r.headers["location"] == "/api/codes/it"
    assert (await c.delete("/api/codes/fr")).status_code == 204
    assert (await c.get("/api/codes/it")).json()["label"] == "Italie"  # an index after a delete
    assert (await c.get("/api/codes/de")).json()["label"] == "Allemagne"


# --- what a body may be ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "fields"),
    [
        ({"score": "90"}, {"score": '"90" is not an integer (e.g. 42)'}),
        ({"score": 1.5}, {"score": "1.5 is not an integer (e.g. 42)"}),
        ({"score": True}, {"score": "true is not an integer (e.g. 42)"}),
        ({"score": 2**63}, {"score": f"{2**63} is out of this column's range"}),
        ({"price": "cheap"}, {"price": '"cheap" is not a float (e.g. 4.2)'}),
        ({"active": 1}, {"active": "1 is not a boolean (e.g. true or false)"}),
        ({"born": "2024-02-30"}, {"born": '"2024-02-30" is not a date (e.g. "2024-05-01")'}),
        ({"seen": "2024-05-01T10:00:00+02:00"}, {"seen": "time zone"}),
        ({"name": 5}, {"name": '5 is not a string (e.g. "text")'}),
        ({"name": "a\x00b"}, {"name": "NUL"}),
        ({"name": {"first": "A"}}, {"name": "a value is a string, a number, true, false or null"}),
        ({"name": ["A"]}, {"name": "a value is a string"}),
        ({"nope": 1, "score": "x"}, {"nope": "no column 'nope'", "score": "not an integer"}),
    ],
)
async def test_values_not_of_the_column_type_are_422_per_field(
    csv_file: Path, start: Start, values: dict[str, Any], fields: dict[str, str]
) -> None:
    c = start().client
    for method, path in (("POST", "/api/people"), ("PATCH", "/api/people/1")):
        r = await c.request(method, path, json=values)
        assert r.status_code == 422, r.text
        body = r.json()
        assert body["error"] == "the row does not fit table 'people'"
        assert set(body["fields"]) == set(fields)
        for name, message in fields.items():
            assert message in body["fields"][name]
    assert (await c.get("/api/people")).headers["x-total-count"] == "3"


async def test_good_values_of_every_type_and_null(csv_file: Path, start: Start) -> None:
    c = start().client
    row = {
        "name": "Zoé",
        "score": -3,
        "price": 2,
        "active": False,
        "born": "2000-02-29",
        "seen": "2024-05-01T10:30:00.250000",
        "note": None,
    }
    r = await c.post("/api/people", json=row)
    assert r.status_code == 201, r.text
    assert r.json() == {"id": 4, **row, "price": 2.0}


JSON = {"content-type": "application/json"}


@pytest.mark.parametrize(
    ("content", "headers", "status", "error"),
    [
        (b'{"name": "x"}', {"content-type": "text/plain"}, 415, "send the row as JSON"),
        (b'{"name": "x"}', {}, 415, "not no Content-Type"),
        (b"name=x", {"content-type": "application/x-www-form-urlencoded"}, 415, "not applic"),
        (b'{"name": "x"}', {"content-type": "application/json; charset=latin-1"}, 415, "JSON"),
        (b'{"name": "x"', JSON, 400, "not JSON"),
        (b'{"name": "\xe9"}', JSON, 400, "not UTF-8"),
        (b'{"score": NaN}', JSON, 400, "NaN is not a JSON value"),
        (b'{"name": "a", "name": "b"}', JSON, 400, "appears twice"),
        (b"[" * 100_000 + b"]" * 100_000, JSON, 400, "nested deeper than 32 levels"),
        (b'{"name": ' + b"[" * 5_000 + b"]" * 5_000 + b"}", JSON, 400, "nested deeper"),
        (b"[]", JSON, 422, "a JSON object"),
        (b'"row"', JSON, 422, "a JSON object"),
        (b"null", JSON, 422, "a JSON object"),
    ],
)
async def test_bodies_that_are_not_a_json_row_are_clear_4xx(
    csv_file: Path,
    start: Start,
    content: bytes,
    headers: dict[str, str],
    status: int,
    error: str,
) -> None:
    c = start().client
    r = await c.post("/api/people", content=content, headers=headers)
    assert r.status_code == status, r.text
    assert error in r.json()["error"]
    if status == 415:
        assert r.headers["accept-post"] == "application/json"
    assert (await c.get("/api/people")).headers["x-total-count"] == "3"
    assert not journal_path(csv_file).exists()  # nothing was written


async def test_a_body_in_brackets_inside_strings_is_not_nested(
    csv_file: Path, start: Start
) -> None:
    c = start().client
    text = "[{" * 1000
    r = await c.post("/api/people", json={"note": text})
    assert r.status_code == 201 and r.json()["note"] == text


async def test_huge_bodies_are_413(csv_file: Path, start: Start) -> None:
    c = start().client
    big = json.dumps({"note": "x" * (1024 * 1024)}).encode()
    r = await c.post("/api/people", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "1024 KiB" in r.json()["error"]
    assert r.headers["connection"] == "close"

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(40):  # no Content-Length: counted as it comes
            yield b" " * 64 * 1024

    r = await c.post("/api/people", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    r = await c.post(
        "/api/people",
        content=b"{}",
        headers={"content-type": "application/json", "content-length": "99999999999999999999"},
    )
    assert r.status_code == 413
    assert (await c.get("/api/people")).headers["x-total-count"] == "3"


async def test_patch_takes_merge_patch_json(csv_file: Path, start: Start) -> None:
    c = start().client
    r = await c.patch(
        "/api/people/1",
        content=b'{"score": 1}',
        headers={"content-type": "application/merge-patch+json"},
    )
    assert r.status_code == 200 and r.json()["score"] == 1
    r = await c.patch("/api/people/1", content=b"{}", headers={"content-type": "text/csv"})
    assert r.status_code == 415
    assert r.headers["accept-patch"] == "application/json, application/merge-patch+json"


# --- methods, paths, CORS ---------------------------------------------------------------------


async def test_paths_that_take_no_write_are_405_with_allow(
    csv_file: Path, tmp_path: Path, start: Start
) -> None:
    (tmp_path / "pets.csv").write_text("id,name,people_id\n1,Rex,1\n")
    route = routes.parse_route({"path": "/api/alive", "body": {"ok": True}})
    c = start(route=(route,)).client
    cases = [
        ("PUT", "/api/people", "GET, HEAD, OPTIONS, POST"),
        ("DELETE", "/api/people", "GET, HEAD, OPTIONS, POST"),
        ("POST", "/api/people/1", "GET, HEAD, OPTIONS, PUT, PATCH, DELETE"),
        ("POST", "/api/people.csv", "GET, HEAD, OPTIONS"),
        ("POST", "/api/people/1/pets", "GET, HEAD, OPTIONS"),
        ("POST", "/api/alive", "GET, HEAD, OPTIONS"),
    ]
    for method, path, allow in cases:
        r = await c.request(method, path, json={})
        assert r.status_code == 405, (method, path, r.text)
        assert r.headers["allow"] == allow, path
        options = await c.options(path)
        assert options.headers["allow"] == allow, path
    assert (await c.post("/api/nope", json={})).status_code == 404
    assert (await c.post("/", json={})).status_code == 405


async def test_without_write_every_write_is_405(csv_file: Path, start: Start) -> None:
    c = start(write=False).client
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        r = await c.request(method, "/api/people/1", json={"name": "x"})
        assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD, OPTIONS"
    r = await c.options("/api/people")
    assert r.headers["allow"] == "GET, HEAD, OPTIONS"
    assert not journal_path(csv_file).exists()


async def test_writes_from_other_origins_need_cors(csv_file: Path, start: Start) -> None:
    c = start(cors=("http://localhost:5173",)).client
    app = "http://localhost:5173"

    async def preflight(origin: str, method: str) -> httpx.Response:
        return await c.options(
            "/api/people",
            headers={
                "origin": origin,
                "access-control-request-method": method,
                "access-control-request-headers": "content-type, if-match",
            },
        )

    r = await preflight(app, "POST")
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == app
    assert "POST" in r.headers["access-control-allow-methods"]
    assert r.headers["access-control-allow-headers"] == "content-type, if-match"
    assert "origin" in r.headers["vary"].lower()
    assert "access-control-allow-credentials" not in r.headers
    r = await preflight("http://evil.example", "POST")
    assert r.headers["access-control-allow-origin"] == "*"
    assert r.headers["access-control-allow-methods"] == "GET, HEAD, OPTIONS"  # no write
    r = await preflight("http://evil.example", "GET")
    assert r.headers["access-control-allow-origin"] == "*"

    r = await c.post("/api/people", json={"name": "x"}, headers={"origin": app})
    assert r.status_code == 201
    assert r.headers["access-control-allow-origin"] == app
    assert "ETag" in r.headers["access-control-expose-headers"]
    r = await c.post("/api/people", json={"name": "y"}, headers={"origin": "http://evil.example"})
    assert r.status_code == 403 and "--cors" in r.json()["error"]
    assert "access-control-allow-origin" not in r.headers
    # The site's own pages (same origin) and clients that send no Origin (curl) may write.
    r = await c.post("/api/people", json={"name": "z"}, headers={"origin": "http://testserver"})
    assert r.status_code == 201
    r = await c.get("/api/people/1", headers={"origin": "http://evil.example"})
    assert r.headers["access-control-allow-origin"] == "*"  # reads: any origin
    assert r.headers["access-control-expose-headers"] == "ETag"


async def test_through_the_whole_stack(csv_file: Path, tmp_path: Path) -> None:
    app = build_app(make_config("api", ApiOptions(data=(tmp_path,), write=True)))
    async with asgi_client(app) as c:
        r = await c.post("/api/people", json={"name": "x"})
        assert r.status_code == 201 and r.headers["x-content-type-options"] == "nosniff"
        r = await c.options("/api/people/4")
        assert r.headers["allow"] == "GET, HEAD, OPTIONS, PUT, PATCH, DELETE"


# --- the file on disk -----------------------------------------------------------------------


async def test_writes_reach_the_file_soon_in_its_own_format(tmp_path: Path, start: Start) -> None:
    path = tmp_path / "gens.csv"
    head = "id;nom;né;actif;vu\r\n1;Zoé;1990-01-02;true;2024-05-01T10:30:00\r\n"
    path.write_bytes(head.encode("latin-1"))  # Latin-1, `;`, CRLF: as a spreadsheet saves it
    worker = start()
    c = worker.client
    r = await c.post("/api/gens", json={"nom": "Noël", "né": "2001-12-31", "vu": None})
    assert r.status_code == 201
    r = await c.post("/api/gens", json={"nom": "日本"})
    assert r.status_code == 422
    assert "latin-1" in r.json()["fields"]["nom"]
    expected = (head + "2;Noël;2001-12-31;;\r\n").encode("latin-1")
    await wait_for(lambda: path.read_bytes() == expected)
    assert not rewrite_path(path).exists()
    await worker.close()
    assert not journal_path(path).exists()  # stopped: the file has every write
    assert sorted(os.listdir(tmp_path)) == ["gens.csv"]


async def test_the_file_keeps_columns_quotes_bom_and_no_rowid(tmp_path: Path, start: Start) -> None:
    path = tmp_path / "notes.csv"
    path.write_bytes(b'\xef\xbb\xbftext,when\n"a, b",2024-01-01\n"line\nbreak",\n')
    worker = start()
    r = await worker.client.post("/api/notes", json={"text": 'say "hi"', "when": "2024-02-02"})
    assert r.json()["rowid"] == 3
    await worker.close()
    assert path.read_bytes() == (
        b'\xef\xbb\xbftext,when\n"a, b",2024-01-01\n"line\nbreak",\n"say ""hi""",2024-02-02\n'
    )


async def test_our_own_rewrite_is_not_read_again_but_an_edit_is(
    csv_file: Path, start: Start
) -> None:
    worker = start()
    c = worker.client
    live = worker.site.live.live["people"]
    await c.post("/api/people", json={"name": "Dan"})
    await wait_for(lambda: "Dan" in csv_file.read_text())
    live.checked = 0.0  # the next read looks at the file
    assert len((await c.get("/api/people")).json()) == 4
    assert live.reloads == 0
    text = csv_file.read_text().replace("Dan", "Daniel")
    csv_file.write_text(text)
    os.utime(csv_file, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    live.checked = 0.0
    assert (await c.get("/api/people/4")).json()["name"] == "Daniel"
    assert live.reloads == 1


async def test_an_edit_by_hand_keeps_the_writes_not_yet_in_the_file(
    csv_file: Path, start: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live_module, "REWRITE_AFTER", 60.0)
    worker = start()
    c = worker.client
    assert (await c.post("/api/people", json={"name": "Dan"})).status_code == 201
    csv_file.write_text(PEOPLE.replace("Ada", "Ada Lovelace"))
    os.utime(csv_file, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    worker.site.live.live["people"].checked = 0.0
    rows = (await c.get("/api/people")).json()
    assert [r["name"] for r in rows] == ["Ada Lovelace", "Bob", "Chloé", "Dan"]
    assert any("changed on disk while 1 changes" in line for line in worker.lines)


# --- workers and crashes --------------------------------------------------------------------


async def test_a_write_through_one_worker_is_read_through_another(
    csv_file: Path, start: Start
) -> None:
    one, two = start().client, start().client
    assert (await two.get("/api/people")).headers["x-total-count"] == "3"
    r = await one.post("/api/people", json={"name": "Dan"})
    assert (await two.get("/api/people/4")).json() == r.json()
    etag = (await two.get("/api/people/4")).headers["etag"]
    assert etag == r.headers["etag"]
    r = await two.patch("/api/people/4", json={"score": 5}, headers={"if-match": etag})
    assert r.status_code == 200
    assert (await one.get("/api/people/4")).json()["score"] == 5
    r = await one.patch("/api/people/4", json={"score": 6}, headers={"if-match": etag})
    assert r.status_code == 412  # the other worker's write changed it
    # Both give keys: never the same one.
    answers = await asyncio.gather(
        *(w.post("/api/people", json={"name": f"n{i}"}) for i in range(10) for w in (one, two))
    )
    keys = [a.json()["id"] for a in answers]
    assert len(set(keys)) == 20 and all(a.status_code == 201 for a in answers)
    assert (await one.get("/api/people")).headers["x-total-count"] == "24"
    assert (await two.get("/api/people")).headers["x-total-count"] == "24"


async def test_workers_follow_the_file_rewritten_by_another(
    csv_file: Path, start: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live_module, "REWRITE_AFTER", 0.3)
    one, two = start(), start()
    await one.client.post("/api/people", json={"name": "Dan"})
    assert (await two.client.get("/api/people/4")).json()["name"] == "Dan"  # before the rewrite
    await wait_for(lambda: "Dan" in csv_file.read_text())  # one rewrote it, rotated its journal
    await one.client.post("/api/people", json={"name": "Eve"})
    assert [r["name"] for r in (await two.client.get("/api/people")).json()][-2:] == ["Dan", "Eve"]
    live = two.site.live.live["people"]
    live.checked = 0.0
    await two.client.get("/api/people")
    assert live.reloads == 0  # taken as it was announced, not read again
    await two.client.delete("/api/people/1")
    assert (await one.client.get("/api/people/1")).status_code == 404
    await one.close()
    await two.close()
    assert "Ada" not in csv_file.read_text() and "Eve" in csv_file.read_text()
    assert not journal_path(csv_file).exists()


async def test_acknowledged_writes_survive_a_crash(csv_file: Path, start: Start) -> None:
    worker = start()
    c = worker.client
    for name in ("Dan", "Eve", "Fay"):
        assert (await c.post("/api/people", json={"name": name})).status_code == 201
    assert (await c.delete("/api/people/2")).status_code == 204
    assert (await c.patch("/api/people/1", json={"score": 1})).status_code == 200
    await worker.crash()
    assert journal_path(csv_file).exists()
    again = start()
    rows = (await again.client.get("/api/people")).json()
    assert [r["name"] for r in rows] == ["Ada", "Chloé", "Dan", "Eve", "Fay"]
    assert rows[0]["score"] == 1
    assert any(
        "3 changes" not in line and "changes from its journal" in line for line in again.lines
    )
    await again.site.live.start()  # the worker's startup: the journal goes into the file
    await wait_for(lambda: "Fay" in csv_file.read_text() and "Bob" not in csv_file.read_text())


async def test_a_line_cut_by_a_crash_is_dropped(csv_file: Path, start: Start) -> None:
    worker = start()
    await worker.client.post("/api/people", json={"name": "Dan"})
    await worker.crash()
    with open(journal_path(csv_file), "ab") as journal:
        journal.write(b'{"op":"put","row":{"id":5,"name":"Ha')  # never acknowledged
    again = start()
    assert (await again.client.get("/api/people")).headers["x-total-count"] == "4"
    r = await again.client.post("/api/people", json={"name": "Eve"})
    assert r.json()["id"] == 5
    await again.crash()
    third = start()
    names = [r["name"] for r in (await third.client.get("/api/people")).json()]
    assert names == ["Ada", "Bob", "Chloé", "Dan", "Eve"]
    assert any("cut off" in line for line in again.lines)


async def test_a_rotation_cut_by_a_crash_is_finished(
    csv_file: Path, start: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = start()
    await worker.client.post("/api/people", json={"name": "Dan"})
    await wait_for(lambda: "Dan" in csv_file.read_text())
    await worker.client.post("/api/people", json={"name": "Eve"})
    await worker.client.delete("/api/people/1")
    live = worker.site.live.live["people"]
    await asyncio.sleep(0.2)
    # The crash: the rewrite is in place, the next generation written, the journal not replaced.
    real_replace = os.replace
    calls: list[str] = []

    def replace(src: Any, dst: Any) -> None:
        calls.append(str(dst))
        if str(dst).endswith(".comptoir-journal"):
            raise OSError("crash")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    await worker.client.post("/api/people", json={"name": "Fay"})
    await wait_for(lambda: "Fay" in csv_file.read_text())
    monkeypatch.setattr(os, "replace", real_replace)
    if live.rewriting is not None:
        live.rewriting.cancel()
    await worker.crash()
    new = journal_path(csv_file).with_name(journal_path(csv_file).name + ".new")
    assert new.exists()
    again = start()
    assert not new.exists()
    assert [r["name"] for r in (await again.client.get("/api/people")).json()] == [
        "Bob",
        "Chloé",
        "Dan",
        "Eve",
        "Fay",
    ]
    assert any("interrupted by a crash, completed" in line for line in again.lines)


async def test_rowids_are_kept_across_a_crash_after_deletes(tmp_path: Path, start: Start) -> None:
    path = tmp_path / "notes.csv"
    path.write_text("text\na\nb\nc\nd\n")
    worker = start()
    c = worker.client
    await c.delete("/api/notes/2")
    await wait_for(lambda: "b" not in path.read_text().split())  # rewritten: rows a c d
    await c.patch("/api/notes/4", json={"text": "D"})
    await worker.crash()
    again = start()
    rows = (await again.client.get("/api/notes")).json()
    assert rows == [
        {"rowid": 1, "text": "a"},
        {"rowid": 3, "text": "c"},
        {"rowid": 4, "text": "D"},
    ]
    await again.close()  # stopped cleanly: the file has every row, numbered again next time
    assert path.read_text() == "text\na\nc\nD\n"


async def test_parquet_and_json_lines_tables_take_writes(tmp_path: Path, start: Start) -> None:
    import polars as pl

    pl.DataFrame({"id": [1, 2], "v": [1.5, 2.5]}).write_parquet(tmp_path / "p.parquet")
    (tmp_path / "j.jsonl").write_text('{"id": 1, "v": "a"}\n')
    worker = start()
    assert (await worker.client.post("/api/p", json={"v": 3})).json() == {"id": 3, "v": 3.0}
    assert (await worker.client.post("/api/j", json={"v": "b"})).json() == {"id": 2, "v": "b"}
    await worker.close()
    assert pl.read_parquet(tmp_path / "p.parquet")["v"].to_list() == [1.5, 2.5, 3.0]
    lines = (tmp_path / "j.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}]


# --- the OpenAPI document ---------------------------------------------------------------------


async def test_openapi_has_the_writes_with_write(csv_file: Path, start: Start) -> None:
    doc = (await start().client.get("/openapi.json")).json()
    validate(doc)
    table, row = doc["paths"]["/api/people"], doc["paths"]["/api/people/{key}"]
    assert set(table) == {"get", "post"} and set(row) == {"get", "put", "patch", "delete"}
    post = table["post"]
    assert set(post["responses"]) >= {"201", "400", "403", "409", "413", "415", "422"}
    assert "Location" in post["responses"]["201"]["headers"]
    assert set(row["patch"]["responses"]) >= {"200", "404", "412", "415", "422"}
    assert row["delete"]["responses"]["204"]
    assert any(p["name"] == "If-Match" for p in row["put"]["parameters"])
    ref = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["born"] == {"type": ["string", "null"], "format": "date"}
    read_only = (await start(write=False).client.get("/openapi.json")).json()
    assert set(read_only["paths"]["/api/people"]) == {"get"}


async def test_a_file_broken_by_hand_holds_writes_back_with_503(
    csv_file: Path, start: Start
) -> None:
    worker = start()
    c = worker.client
    assert (await c.post("/api/people", json={"name": "Dan"})).status_code == 201
    await wait_for(lambda: "Dan" in csv_file.read_text())
    csv_file.write_text("")  # an editor truncated it
    os.utime(csv_file, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    r = await c.post("/api/people", json={"name": "Eve"})
    assert r.status_code == 503 and r.headers["retry-after"] == "5"
    assert "cannot be read" in r.json()["error"]
    worker.site.live.live["people"].checked = 0.0
    assert len((await c.get("/api/people")).json()) == 4  # the rows as they were
    csv_file.write_text(PEOPLE)
    os.utime(csv_file, ns=(time.time_ns() + 2 * 10**9, time.time_ns() + 2 * 10**9))
    r = await c.post("/api/people", json={"name": "Eve"})
    assert r.status_code == 201 and r.json()["id"] == 4  # the file as it is now: Dan is gone


def test_write_and_cors_are_checked_at_start(tmp_path: Path) -> None:
    from comptoir.config import ServerOptions
    from comptoir.sites.api import validate

    (tmp_path / "t.csv").write_text("id\n1\n")
    options = ApiOptions(
        data=(tmp_path,), write=True, cors=("localhost:3000", "https://ok.example")
    )
    problems = [str(p) for p in validate(options, ServerOptions())]
    assert problems == ["'localhost:3000': write an origin, scheme and host (https://example.org)"]
    tmp_path.chmod(0o500)
    try:
        if os.access(tmp_path, os.W_OK):
            pytest.skip("running as a user who writes anywhere")
        problems = [
            str(p) for p in validate(ApiOptions(data=(tmp_path,), write=True), ServerOptions())
        ]
        assert problems == [f"{tmp_path}: not writable (--write saves next to the files)"]
    finally:
        tmp_path.chmod(0o700)


async def test_a_write_waits_for_another_writer_without_blocking_reads(
    csv_file: Path, start: Start
) -> None:
    import fcntl

    c = start().client
    assert (await c.post("/api/people", json={"name": "Dan"})).status_code == 201
    other = os.open(journal_path(csv_file), os.O_RDONLY)  # another worker, writing
    try:
        fcntl.flock(other, fcntl.LOCK_EX)
        post = asyncio.create_task(c.post("/api/people", json={"name": "Eve"}))
        await asyncio.sleep(0.3)
        assert not post.done()  # it waits for the lock, in the table's thread...
        assert (await c.get("/api/people/4")).json()["name"] == "Dan"  # ...reads go on
    finally:
        os.close(other)  # the lock goes with it
    r = await post
    assert r.status_code == 201 and r.json()["id"] == 5


def test_changes_keep_the_frame_in_few_chunks_and_the_keys_sorted(tmp_path: Path) -> None:
    from comptoir.sites.api import changes
    from comptoir.sites.api.tables import load_table

    path = tmp_path / "t.csv"
    path.write_text("id,v\n" + "".join(f"{i},{i}\n" for i in range(1, 1001)))
    table = load_table("t", path)
    before = max(table.frame.n_chunks("all"))
    for i in range(200):
        table = changes.put(table, {"id": changes.next_key(table), "v": i})
    keys = table.frame["id"]
    assert keys.flags["SORTED_ASC"] and keys.to_list() == list(range(1, 1201))
    assert max(table.frame.n_chunks("all")) <= before + changes.GATHER_EVERY + 1
    for key in range(2, 400, 4):  # changes in the middle split it
        table = changes.put(table, {"id": key, "v": -key})
        table = changes.delete(table, key + 1)
    assert max(table.frame.n_chunks("all")) > changes.MAX_CHUNKS
    gathered = changes.rechunked(table)
    assert max(gathered.frame.n_chunks("all")) == 1
    assert gathered.frame.equals(table.frame) and gathered.frame["id"].flags["SORTED_ASC"]
    assert gathered.position(398) is not None and gathered.position(399) is None
    batch = [{"op": "put", "row": {"id": 2000 + i, "v": i}} for i in range(50)]
    batch.append({"op": "put", "row": {"id": 2010, "v": -1}})  # a key of the batch again
    applied, problems = changes.apply_entries(gathered, batch)
    assert problems == [] and applied.frame.height == gathered.frame.height + 50
    assert applied.frame.row(applied.position(2010), named=True) == {"id": 2010, "v": -1}
    assert changes.next_key(applied) == 2050


async def test_a_posted_row_after_the_largest_key_gets_the_smallest_free_one(
    csv_file: Path, start: Start
) -> None:
    c = start().client
    top = 2**63 - 1
    r = await c.post("/api/people", json={"id": top, "name": "Last"})
    assert r.status_code == 201
    r = await c.post("/api/people", json={"name": "Next"})  # no key after the largest: a gap's
    assert r.status_code == 201
    key = r.json()["id"]
    assert 1 <= key < top
    assert (await c.get(f"/api/people/{key}")).json()["name"] == "Next"
