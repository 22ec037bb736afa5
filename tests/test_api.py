"""`comptoir api`: CSV files as a JSON REST API, through in-process requests."""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
from openapi_spec_validator import validate

from comptoir.app import build_app
from comptoir.errors import ConfigError
from comptoir.sites.api import COURSE_ROUTES, ApiOptions
from comptoir.sites.api.routes import parse_route
from comptoir.sites.api.tables import load_table
from comptoir.types import Message
from tests.conftest import asgi_client, http_scope, make_config

ROOT = Path(__file__).resolve().parent.parent
ASSOC = ROOT / "examples" / "assocapi"

PEOPLE = """id,name,city,score,price,active,born,seen,note
1,Ada,Paris,90,10.5,true,1990-01-02,2024-05-01T10:30:00,
2,Bob,Lyon,75,,false,1985-06-30,2024-05-02T08:00:00,likes =SUM(A1)
3,Chloé,Paris,,3.25,true,,,"two
lines"
4,Dan,Nice,75,7,false,2001-12-31,2024-05-03T00:00:00.250000,-1+1
5,Eve,,60,1.5,,1999-09-09,,@cmd
"""


def write(folder: Path, name: str, text: str | bytes) -> Path:
    path = folder / name
    if isinstance(text, str):
        text = text.encode()
    path.write_bytes(text)
    return path


Make = Callable[..., httpx.AsyncClient]


@pytest.fixture
async def make(tmp_path: Path) -> AsyncIterator[Make]:
    clients: list[httpx.AsyncClient] = []

    def make_client(**options: Any) -> httpx.AsyncClient:
        options.setdefault("data", (tmp_path,))
        client = asgi_client(build_app(make_config("api", ApiOptions(**options))))
        clients.append(client)
        return client

    yield make_client
    for c in clients:
        await c.aclose()


@pytest.fixture
async def people(tmp_path: Path, make: Make) -> httpx.AsyncClient:
    write(tmp_path, "people.csv", PEOPLE)
    return make()


# --- reading ------------------------------------------------------------------------------


async def test_types_are_inferred_and_empty_cells_are_null(people: httpx.AsyncClient) -> None:
    r = await people.get("/api/people")
    assert r.status_code == 200
    assert r.headers["x-total-count"] == "5"
    rows = r.json()
    assert rows[0] == {
        "id": 1,
        "name": "Ada",
        "city": "Paris",
        "score": 90,
        "price": 10.5,
        "active": True,
        "born": "1990-01-02",
        "seen": "2024-05-01T10:30:00",
        "note": None,
    }
    assert rows[2]["note"] == "two\nlines"  # a quoted line break
    assert rows[2]["score"] is None and rows[2]["born"] is None  # empty, whatever the type
    assert rows[1]["price"] is None
    assert rows[3]["seen"] == "2024-05-03T00:00:00.250000"
    front = (await people.get("/", headers={"accept": "application/json"})).json()
    columns = dict(front["tables"][0]["columns"])
    assert columns == {
        "id": "integer",
        "name": "string",
        "city": "string",
        "score": "integer",
        "price": "float",
        "active": "boolean",
        "born": "date",
        "seen": "datetime",
        "note": "string",
    }


def test_encodings_delimiters_and_the_key(tmp_path: Path) -> None:
    bom = write(tmp_path, "bom.csv", b"\xef\xbb\xbfid;nom\n1;\xc3\xa9t\xc3\xa9\n")
    t = load_table("bom", bom)
    assert t.columns == ["id", "nom"] and t.key == "id"
    assert t.frame.row(0) == (1, "été")
    latin = write(tmp_path, "latin.csv", "nom|ville\nZoé|Orléans\n".encode("latin-1"))
    t = load_table("latin", latin)
    assert t.frame.row(0, named=True) == {"rowid": 1, "nom": "Zoé", "ville": "Orléans"}
    assert t.key == "rowid"
    tsv = write(tmp_path, "t.tsv", "a\tb\n1\tx,y\n")
    assert load_table("t", tsv).frame.row(0, named=True)["b"] == "x,y"
    dup = write(tmp_path, "dup.csv", "id,v\n1,a\n1,b\n")
    assert load_table("dup", dup).key == "rowid"  # `id` not unique: the row number
    assert load_table("dup", dup, key="v").key == "v"
    with pytest.raises(ConfigError, match="not unique"):
        load_table("dup", dup, key="id")


def test_malformed_rows_are_reported_and_left_out(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.csv", "a,b\n1,2\n3\n\n4,5,6\n7,8\n")
    t = load_table("bad", path)
    assert t.frame.select("a", "b").rows() == [(1, 2), (7, 8)]
    assert [str(p) for p in t.problems] == [
        f"{path}:3: 1 fields, expected 2",
        f"{path}:5: 3 fields, expected 2",
    ]
    with pytest.raises(ConfigError, match=r"bad\.csv:3: 1 fields, expected 2"):
        load_table("bad", path, strict=True)
    quoted = write(tmp_path, "q.csv", 'a,b\n1,"x\ny"\n2\n3,"z"\n')
    t = load_table("q", quoted)
    assert t.frame.select("a", "b").rows() == [(1, "x\ny"), (3, "z")]
    assert [p.line for p in t.problems] == [4]
    # A row left out does not count in the types: `id` stays an integer key.
    typed = write(tmp_path, "typed.csv", "id,d,x\n1,2024-01-02,1.5\noops,bad\n2,2024-01-03,2\n")
    t = load_table("typed", typed)
    assert [t.dtype(c) for c in t.columns] == [pl.Int64, pl.Date, pl.Float64]
    assert t.position(2) == 1 and [p.line for p in t.problems] == [3]


def test_files_that_cannot_be_tables_are_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="empty file"):
        load_table("e", write(tmp_path, "e.csv", ""))
    with pytest.raises(ConfigError, match="no column 'nope'"):
        load_table("x", write(tmp_path, "x.csv", "a\n1\n"), key="nope")


async def test_a_file_changed_on_disk_is_read_again(tmp_path: Path, make: Make) -> None:
    path = write(tmp_path, "t.csv", "id,v\n1,a\n")
    client = make()
    assert (await client.get("/api/t")).json() == [{"id": 1, "v": "a"}]
    write(tmp_path, "t.csv", "id,v\n1,a\n2,b\n")
    os.utime(path, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    deadline = time.monotonic() + 5
    while len((await client.get("/api/t")).json()) != 2:
        assert time.monotonic() < deadline, "not read again"
        time.sleep(0.2)


# --- filters, sort, pages -----------------------------------------------------------------


async def ids(client: httpx.AsyncClient, query: str) -> list[int]:
    r = await client.get("/api/people?" + query)
    assert r.status_code == 200, r.text
    return [row["id"] for row in r.json()]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("city=Paris", [1, 3]),
        ("city=Paris&city=Nice", [1, 3, 4]),
        ("score=75", [2, 4]),
        ("score__ne=75", [1, 3, 5]),
        ("score__gt=70", [1, 2, 4]),
        ("score__gte=75&score__lt=90", [2, 4]),
        ("score__lte=60", [5]),
        ("price__gt=5.5", [1, 4]),
        ("active=true", [1, 3]),
        ("active=false", [2, 4]),
        ("born__lt=1990-01-01", [2]),
        ("seen__gte=2024-05-02T00:00:00", [2, 4]),
        ("city__in=Lyon,Nice", [2, 4]),
        ("name__contains=o", [2, 3]),
        ("name__icontains=B", [2]),
        ("name__startswith=Ch", [3]),
        ("city__isnull=true", [5]),
        ("note__isnull=false", [2, 3, 4, 5]),
        ("q=PARIS", [1, 3]),
        ("q=sum", [2]),
        ("_sort=score", [5, 2, 4, 1, 3]),  # stable, nulls last
        ("_sort=-score", [1, 2, 4, 5, 3]),
        ("_sort=city,-id", [2, 4, 3, 1, 5]),
        ("_limit=2", [1, 2]),
        ("_limit=2&_offset=2", [3, 4]),
        ("_limit=2&_page=3", [5]),
        ("_after=3", [4, 5]),
        ("_after=3&_limit=1", [4]),
        ("_after=3&score=75", [4]),
    ],
)
async def test_filters_sort_and_pages(people: httpx.AsyncClient, query: str, expected: list[int]):
    assert await ids(people, query) == expected


async def test_total_count_and_link_pages(people: httpx.AsyncClient) -> None:
    r = await people.get("/api/people?city__ne=Lyon&_limit=2&_page=2")
    assert r.headers["x-total-count"] == "4"
    links = r.headers["link"]
    assert '</api/people?city__ne=Lyon&_page=1&_limit=2>; rel="first"' in links
    assert '</api/people?city__ne=Lyon&_page=1&_limit=2>; rel="prev"' in links
    assert '</api/people?city__ne=Lyon&_page=2&_limit=2>; rel="last"' in links
    assert 'rel="next"' not in links


async def test_fields_and_facets(people: httpx.AsyncClient) -> None:
    r = await people.get("/api/people?_fields=id,city&_limit=1")
    assert r.json() == [{"id": 1, "city": "Paris"}]
    r = await people.get("/api/people?_facet=city&_facet=active&_limit=0")
    body = r.json()
    assert body["rows"] == [] and body["total"] == 5
    assert body["facets"]["city"] == [
        {"value": "Paris", "count": 2},
        {"value": "Lyon", "count": 1},
        {"value": "Nice", "count": 1},
        {"value": None, "count": 1},
    ]
    assert body["facets"]["active"][0] == {"value": False, "count": 2}


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("nope=1", "nope"),
        ("score__near=1", "score__near"),
        ("score=abc", "score"),
        ("score__gt=1.5", "score__gt"),
        # Past what a 64-bit column holds: Polars cannot even compare it (it was a 500 in __in).
        ("score=1&score=99999999999999999999", "score"),
        ("score__in=1,99999999999999999999", "score__in"),
        ("score__lt=-99999999999999999999", "score__lt"),
        ("active=maybe", "active"),
        ("born=2024-13-01", "born"),
        ("price__lt=cheap", "price__lt"),
        ("city__isnull=perhaps", "city__isnull"),
        ("_sort=-nope", "_sort"),
        ("_limit=1000000", "_limit"),
        ("_limit=-1", "_limit"),
        ("_limit=all", "_limit"),  # JSON pages are bounded; exports take `all`
        ("_page=0", "_page"),
        ("_fields=id,nope", "_fields"),
        ("_facet=nope", "_facet"),
        ("_after=x", "_after"),
        ("_after=2&_sort=score", "_after"),
        ("_embed=nope", "_embed"),
        ("_expand=city", "_expand"),
        ("_expand=nope", "_expand"),
        ("_fields=", "_fields"),
        ("_fields=,", "_fields"),
    ],
)
async def test_a_parameter_the_table_cannot_take_is_a_400_naming_it(
    people: httpx.AsyncClient, query: str, parameter: str
) -> None:
    r = await people.get("/api/people?" + query)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.json()["parameter"] == parameter
    assert r.json()["error"]


async def test_ten_thousand_filters_are_a_400(people: httpx.AsyncClient) -> None:
    query = "&".join("id=1" for _ in range(10_000))
    r = await people.get("/api/people?" + query)
    assert r.status_code == 400
    assert "too many filters" in r.json()["error"]


# --- one row, formats -----------------------------------------------------------------------


async def test_one_row_by_key(people: httpx.AsyncClient) -> None:
    r = await people.get("/api/people/4")
    assert r.status_code == 200 and r.json()["name"] == "Dan"
    for missing in ("/api/people/99", "/api/people/abc", "/api/nope", "/api/nope/1"):
        r = await people.get(missing)
        assert r.status_code == 404, missing
        assert r.headers["content-type"] == "application/json"
        assert "error" in r.json()


async def test_csv_and_ndjson_with_formulas_defused(people: httpx.AsyncClient) -> None:
    r = await people.get("/api/people.csv?_sort=id")
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0] == ["id", "name", "city", "score", "price", "active", "born", "seen", "note"]
    assert rows[2][-1] == "likes =SUM(A1)"  # not at the start: harmless
    assert rows[4][-1] == "'-1+1" and rows[5][-1] == "'@cmd"
    assert rows[1][6:8] == ["1990-01-02", "2024-05-01T10:30:00"]
    r = await people.get("/api/people", headers={"accept": "application/x-ndjson"})
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert [x["id"] for x in lines] == [1, 2, 3, 4, 5]
    assert lines[0] == (await people.get("/api/people/1")).json()


async def test_exports_stream_the_whole_table(tmp_path: Path, make: Make) -> None:
    rows = 25_000  # several chunks
    body = "id,v\n" + "".join(f"{i},=x{i}\n" for i in range(1, rows + 1))
    write(tmp_path, "big.csv", body)
    client = make()
    app = build_app(make_config("api", ApiOptions(data=(tmp_path,))))
    scope = http_scope("/api/big.csv", {"host": "testserver"})
    scope["query_string"] = b"_limit=all"
    messages: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        messages.append(message)

    await app(scope, receive, send)
    chunks = [m["body"] for m in messages if m["type"] == "http.response.body" and m["body"]]
    assert len(chunks) >= 3  # streamed a chunk of rows at a time, not built whole
    text = b"".join(chunks).decode()
    assert text.count("\n") == rows + 1 and "'=x25000" in text
    r = await client.get("/api/big.ndjson?_limit=all&v__startswith=%3Dx2499")
    assert len(r.text.splitlines()) == 11
    r = await client.get("/api/big.json?_limit=all")
    assert r.status_code == 400  # a JSON array is a page: bounded


# --- relations and custom routes ------------------------------------------------------------


@pytest.fixture
async def assoc(make: Make) -> httpx.AsyncClient:
    routes = tuple(parse_route(r) for r in COURSE_ROUTES)
    return make(data=(ASSOC,), route=routes)


async def test_relations_are_found_by_name(assoc: httpx.AsyncClient) -> None:
    r = await assoc.get("/api/associations_etudiantes/3/evenements_associations")
    assert [e["id"] for e in r.json()] == [4, 5]
    assert (
        await assoc.get("/api/associations_etudiantes/99/evenements_associations")
    ).status_code == 404
    r = await assoc.get("/api/associations_etudiantes/6?_embed=evenements_associations")
    assert [e["nom"] for e in r.json()["evenements_associations"]] == [
        "Cycle Kurosawa",
        "Ciné-débat",
    ]
    r = await assoc.get("/api/evenements_associations?_expand=association_id&_limit=1")
    assert r.json()[0]["association"]["nom"] == "Club Astronomie"


async def test_the_course_routes_exactly(assoc: httpx.AsyncClient) -> None:
    async def get(path: str) -> tuple[int, Any]:
        r = await assoc.get(path)
        return r.status_code, r.json()

    assert await get("/api/alive") == (200, {"message": "Alive"})
    assert await get("/api/associations") == (200, [1, 2, 3, 4, 5, 6])
    status, body = await get("/api/association/2")
    assert status == 200 and body["nom"] == "Théâtre Sans Rideau"
    assert set(body) == {"id", "nom", "type", "description", "email", "membres"}
    assert await get("/api/association/99") == (404, {"error": "Association not found"})
    assert await get("/api/evenements") == (200, list(range(1, 10)))
    status, body = await get("/api/evenement/7")
    assert status == 200 and body["lieu"] == "Atelier B12"
    assert await get("/api/evenement/0") == (404, {"error": "Event not found"})
    status, body = await get("/api/association/6/evenements")
    assert status == 200 and [e["id"] for e in body] == [8, 9]
    assert await get("/api/association/42/evenements") == (404, {"error": "Association not found"})
    status, body = await get("/api/associations/type/culturelle")
    assert status == 200 and [a["id"] for a in body] == [2, 6]
    assert await get("/api/associations/type/inconnu") == (200, [])
    # `{id:int}`: a segment that is not a whole number matches no route.
    status, body = await get("/api/association/abc")
    assert status == 404


def test_route_declarations_are_checked() -> None:
    for table, message in [
        ({"path": "api/x", "body": {}}, "starting with /"),
        ({"path": "/x"}, "either body"),
        ({"path": "/x", "body": 1, "table": "t"}, "either body"),
        ({"path": "/x/{id}", "table": "t", "key": "{other}"}, "{other} is not a parameter"),
        ({"path": "/x/{id:float}", "table": "t", "key": "{id}"}, "parameters are"),
        ({"path": "/x", "table": "t", "wher": {}}, "unknown key 'wher'"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_route(table)


# --- the rest of HTTP ---------------------------------------------------------------------


async def test_openapi_document_is_valid(assoc: httpx.AsyncClient) -> None:
    r = await assoc.get("/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    validate(doc)
    assert "/api/associations_etudiantes/{key}/evenements_associations" in doc["paths"]
    assert "/api/association/{id}" in doc["paths"]
    schema = doc["components"]["schemas"]["associations_etudiantes"]["properties"]
    assert schema["membres"] == {
        "type": ["integer", "null"],
        "minimum": -(2**63),
        "maximum": 2**63 - 1,
    }


async def test_read_only_cors_and_preflight(people: httpx.AsyncClient) -> None:
    r = await people.get("/api/people/1", headers={"origin": "http://localhost:3000"})
    assert r.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in r.headers
    r = await people.options(
        "/api/people",
        headers={
            "origin": "http://localhost:3000",
            "access-control-request-method": "GET",
            "access-control-request-headers": "x-custom",
        },
    )
    assert r.status_code == 204
    assert r.headers["access-control-allow-headers"] == "x-custom"
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        r = await people.request(method, "/api/people/1", json={"name": "x"})
        assert r.status_code == 405
        assert r.headers["allow"] == "GET, HEAD, OPTIONS"
        assert r.json()["error"]
    assert (await people.get("/api/people/1")).json()["name"] == "Ada"


async def test_front_page_for_browsers_escapes_names(tmp_path: Path, make: Make) -> None:
    write(tmp_path, "t.csv", "id,<script>x</script>\n1,a\n")
    client = make()
    r = await client.get("/", headers={"accept": "text/html"})
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert "<script>x" not in r.text and "&lt;script&gt;x" in r.text
    assert "/api/t" in r.text


# --- pages for browsers ----------------------------------------------------------------------

HTML = {"accept": "text/html"}


async def test_browsers_get_pages_at_the_same_urls(assoc: httpx.AsyncClient) -> None:
    r = await assoc.get("/api/associations_etudiantes?_sort=-membres&_facet=type", headers=HTML)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert r.headers["vary"] == "accept"
    page = r.text
    assert page.index("Bureau des Sports") < page.index("Ciné-Club")  # sorted
    assert 'aria-sort="descending"' in page
    assert "Robotique &amp; Co" in page  # escaped
    assert "curl &#39;http://testserver/api/associations_etudiantes?_sort=-membres" in page
    facet = "/api/associations_etudiantes?_sort=-membres&amp;_facet=type&amp;type=culturelle"
    assert f'<a href="{facet}">culturelle</a> 2' in page
    # A filter form's fields become the filter parameter they stand for.
    form = "/api/associations_etudiantes?_sort=id&_column=membres&_op=gte&_value=42&q="
    r = await assoc.get(form, headers=HTML)
    assert r.status_code == 303
    assert r.headers["location"] == "/api/associations_etudiantes?_sort=id&membres__gte=42"
    r = await assoc.get("/api/evenements_associations/3", headers=HTML)
    assert '<a href="/api/associations_etudiantes/2">2</a>' in r.text  # along the relation
    r = await assoc.get("/api/associations_etudiantes/2", headers=HTML)
    assert "/api/associations_etudiantes/2/evenements_associations" in r.text
    # Scripts and other clients get JSON at the same URLs.
    assert (await assoc.get("/api/associations_etudiantes/2")).json()["id"] == 2


async def test_docs_page_and_its_vendored_assets(assoc: httpx.AsyncClient) -> None:
    r = await assoc.get("/docs")
    assert r.status_code == 200
    assert 'data-openapi="/openapi.json"' in r.text
    assert "https://" not in r.text.split("<footer>")[0]  # nothing from elsewhere
    for asset in ("vendor/swagger-ui/swagger-ui-bundle.js", "vendor/swagger-ui/swagger-ui.css"):
        r = await assoc.get("/.comptoir/" + asset)
        assert r.status_code == 200 and len(r.content) > 100_000, asset


async def test_repeated_fields_and_curl_lines_quoted_for_the_shell(
    assoc: httpx.AsyncClient,
) -> None:
    r = await assoc.get("/api/associations_etudiantes?_fields=id,id,nom&_limit=1")
    assert r.json() == [{"id": 1, "nom": "Club Astronomie"}]
    r = await assoc.get("/api/associations_etudiantes?_limit=99999999999999")
    assert r.status_code == 400 and "at most 12 digits" in r.json()["error"]
    hostile = {"accept": "text/html", "host": "a'$(id)'b"}
    for path in ("/", "/api/associations_etudiantes", "/api/associations_etudiantes/1"):
        r = await assoc.get(path, headers=hostile)
        assert r.status_code == 200, path
        assert "curl &#39;http://a&#39;&#34;&#39;&#34;&#39;$(id)" in r.text, path


def test_the_check_reads_every_file_and_every_route(tmp_path: Path) -> None:
    from comptoir.config import ServerOptions
    from comptoir.sites.api import validate

    def problems(**options: Any) -> list[str]:
        return [str(p) for p in validate(ApiOptions(**options), ServerOptions())]

    write(tmp_path, "ok.csv", "id,v\n1,a\n")
    assert problems(data=(tmp_path,)) == []
    empty = write(tmp_path, "empty.csv", "")
    assert problems(data=(tmp_path,)) == [
        f"{empty}: empty file (a CSV needs at least a header line)"
    ]
    empty.unlink()
    write(tmp_path, "rowid.csv", "rowid,v\n1,a\n1,b\n")
    assert "a 'rowid' column is taken: use --id" in problems(data=(tmp_path,))[0]
    (tmp_path / "rowid.csv").unlink()
    twin = write(tmp_path, "OK.tsv", "id\n2\n")
    [clash] = problems(data=(tmp_path,))
    assert "both make table 'ok'" in clash and "--table" in clash
    twin.unlink()
    routes = tuple(
        parse_route(r)
        for r in (
            {"path": "/p", "table": "ok", "pluck": "nocol"},
            {"path": "/w", "table": "ok", "where": {"id": "abc"}},
            {"path": "/w", "table": "ok", "fields": ["v", "nope"]},
            {"path": "/k/{id}", "table": "ok", "where": {"id": "{id}"}},  # typed per request
        )
    )
    assert problems(data=(tmp_path,), route=routes) == [
        "/p: no column 'nocol' in 'ok'",
        "/w: where 'abc' is not an integer (column 'id')",
        "/w: no column 'nope' in 'ok'",
        "/w: declared twice",
    ]


async def test_review_findings_hold(tmp_path: Path, make: Make) -> None:
    write(tmp_path, "parent.csv", "id,=cmd|calc,name\n1,-1,a\n2,@x,b\n")
    write(tmp_path, "child.csv", "id,parent_id,v\n10,1,x\n11,1,y\n12,2,z\n")
    client = make()
    # A formula-looking column name is defused in CSV as cells are.
    r = await client.get("/api/parent.csv")
    assert r.text.splitlines()[0] == "id,'=cmd|calc,name"
    # _fields with _embed / _expand: nested, and only the fields asked for besides.
    r = await client.get("/api/parent?_fields=name&_embed=child")
    assert r.status_code == 200
    assert r.json()[0] == {
        "name": "a",
        "child": [{"id": 10, "parent_id": 1, "v": "x"}, {"id": 11, "parent_id": 1, "v": "y"}],
    }
    r = await client.get("/api/child?_expand=parent_id&_fields=v")
    assert r.json()[0]["v"] == "x" and r.json()[0]["parent"]["name"] == "a"
    assert "parent_id" not in r.json()[0]
    # A huge query gets no Link header (four times its size).
    r = await client.get("/api/child?v__ne=" + "q" * 2100 + "&_limit=1")
    assert r.status_code == 200 and "link" not in r.headers
    assert "link" in (await client.get("/api/child?_limit=1")).headers


def test_check_names_the_line_of_each_bad_route(tmp_path: Path) -> None:
    from comptoir.errors import ConfigProblems
    from comptoir.sitesfile import parse_sites

    write(tmp_path, "ok.csv", "id,v\n1,a\n")
    text = (
        '[[site]]\ndefault = true\nkind = "api"\ndata = ["ok.csv"]\n'  # lines 1-4
        '[[site.route]]\npath = "/fine"\ntable = "ok"\n'  # 5
        '[[site.route]]\npath = "/p"\ntable = "ok"\npluck = "nocol"\n'  # 8
        '[[site.route]]\npath = "/p"\nbody = 1\n'  # 12
    )
    with pytest.raises(ConfigProblems) as caught:
        parse_sites(text, "sites.toml", tmp_path)
    assert [str(line) for line in caught.value.problems] == [
        "sites.toml:8: site[0].route[1]: /p: no column 'nocol' in 'ok'",
        "sites.toml:12: site[0].route[2]: /p: declared twice",
    ]
    broken = text.replace('path = "/p"\nbody = 1', 'path = "p"\nbody = 1')
    with pytest.raises(ConfigProblems) as caught:
        parse_sites(broken, "sites.toml", tmp_path)
    assert [str(line) for line in caught.value.problems] == [
        "sites.toml:12: site[0].route[2]: a route needs a path starting with /"
    ]
