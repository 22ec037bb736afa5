"""`comptoir echo` against the real httpbin package: the same requests, the same answers.

httpbin's Flask app runs in-process through its WSGI interface, comptoir's echo site through
ASGI; both get the very same requests from httpx (same base URL, same headers, same client
address), so most JSON answers compare exactly. What legitimately differs is normalised: random
values (uuid, ETag), httpbin's digest realm. Cookies are never carried between requests.
"""

from __future__ import annotations

import json
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import httpx
import pytest

from comptoir.app import build_app
from comptoir.sites.echo import EchoOptions
from comptoir.types import ASGIApp
from tests.conftest import asgi_client, make_config

with warnings.catch_warnings():
    # httpbin 0.10 is old code: invalid escapes in strings, deprecated Flask settings.
    warnings.simplefilter("ignore")
    from httpbin.core import app as httpbin_app

BASE = "http://testserver"
Environ = dict[str, Any]


def httpbin_wsgi(environ: Environ, start_response: Callable[..., Any]) -> Iterable[bytes]:
    """httpbin's app with its deprecation warnings muted and PATH_INFO as a WSGI server sets it."""
    # httpx's WSGI transport puts the decoded path in PATH_INFO; WSGI wants its bytes as latin-1.
    environ["PATH_INFO"] = environ["PATH_INFO"].encode("utf-8").decode("latin-1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return list(httpbin_app(environ, start_response))


@pytest.fixture(scope="module")
def echo_app() -> ASGIApp:
    """comptoir's echo site, as `comptoir echo` builds it."""
    return build_app(make_config("echo", EchoOptions()))


@pytest.fixture
def httpbin() -> Iterator[httpx.Client]:
    """A client of the httpbin package."""
    with httpx.Client(transport=httpx.WSGITransport(app=httpbin_wsgi), base_url=BASE) as c:
        yield c


@pytest.fixture
async def echo(echo_app: ASGIApp) -> Any:
    """A client of comptoir's echo site."""
    async with asgi_client(echo_app, BASE) as c:
        yield c


async def both(
    httpbin: httpx.Client, echo: httpx.AsyncClient, method: str, url: str, **kwargs: Any
) -> tuple[httpx.Response, httpx.Response]:
    """The answers of httpbin and of comptoir to the same request (no cookies carried over)."""
    httpbin.cookies.clear()
    echo.cookies.clear()
    expected = httpbin.request(method, url, **kwargs)
    got = await echo.request(method, url, **kwargs)
    return expected, got


def normalised(doc: Any) -> Any:
    """A JSON document with its random values replaced by placeholders."""
    if isinstance(doc, dict):
        out = {k: normalised(v) for k, v in doc.items()}
        if "uuid" in out and isinstance(out["uuid"], str):
            uuid.UUID(out["uuid"])
            out["uuid"] = "<uuid>"
        return out
    if isinstance(doc, list):
        return [normalised(v) for v in doc]
    return doc


# --- Request shapes sent to every endpoint that describes a request -------------------------

# Both requests must carry the same bytes: a fixed boundary instead of a random one.
BOUNDARY = "comptoir-differential-test"
MULTIPART_FILES = [
    ("upload", ("a.txt", b"hello\n", "text/plain")),
    ("upload", ("b.txt", b"second file of the same field", "text/plain")),
    ("binary", ("x.bin", bytes(range(256)), "application/x-thing")),
    ("nameless", ("c.dat", b"\xff\xfe\x00", None)),
    ("unicode", ("é.txt", "ça marche ✓".encode(), "text/plain; charset=utf-8")),
]

BODY_SHAPES: dict[str, dict[str, Any]] = {
    "empty": {},
    "form": {"data": {"a": "1", "b": ["x", "y"], "space": "a b+c", "é": "ü€"}},
    "multipart": {
        "data": {"field": "v", "repeat": ["1", "2"]},
        "files": MULTIPART_FILES,
        "headers": {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
    },
    "multipart-files-only": {
        "files": [("f", ("f.txt", b"only a file", "text/plain"))],
        "headers": {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
    },
    "json": {"json": {"a": [1, 2.5, None, True], "nested": {"é": "€"}, "n": -3e-7}},
    "json-scalar": {"json": "just a string"},
    "json-invalid": {"content": b"{not json", "headers": {"Content-Type": "application/json"}},
    "text": {"content": "plain text ✓\nline 2", "headers": {"Content-Type": "text/plain"}},
    "binary": {
        "content": b"\x00\x01\xfe\xff",
        "headers": {"Content-Type": "application/octet-stream"},
    },
    "binary-no-type": {"content": b"\x89PNG\r\n\x1a\n"},
    "utf8-no-type": {"content": "données".encode()},
    "custom-headers": {
        "content": b"x",
        "headers": {"X-Custom": "1", "X-Under_Score": "u", "Accept-Language": "fr"},
    },
}

QUERIES = [
    "",
    "?a=1",
    "?a=1&a=2&a=3&b=",
    "?flag&empty=&=novalue",
    "?q=%E2%82%AC&w=a/b?c@d[e]&plus=a+b&pct=%2B%25",
    "?bad=%ff%fe&trunc=%e2%82&weird=%zz",
    "?é=ü&semi=a;b",
    "?A=%41&tilde=~&quote='\"",
]


@pytest.mark.parametrize("shape", sorted(BODY_SHAPES))
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
async def test_method_endpoints_describe_bodies_as_httpbin(
    httpbin: httpx.Client, echo: httpx.AsyncClient, method: str, shape: str
) -> None:
    url = f"/{method.lower()}?x=1&x=2"
    expected, got = await both(httpbin, echo, method, url, **BODY_SHAPES[shape])
    assert got.status_code == expected.status_code == 200
    assert got.headers["content-type"] == expected.headers["content-type"]
    assert got.json() == expected.json()


@pytest.mark.parametrize("shape", sorted(BODY_SHAPES))
@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "PATCH"])
async def test_anything_describes_every_shape_as_httpbin(
    httpbin: httpx.Client, echo: httpx.AsyncClient, method: str, shape: str
) -> None:
    expected, got = await both(httpbin, echo, method, "/anything/p?k=v", **BODY_SHAPES[shape])
    assert got.status_code == expected.status_code == 200
    assert got.json() == expected.json()


@pytest.mark.parametrize("query", QUERIES)
async def test_get_args_and_url_as_httpbin(
    httpbin: httpx.Client, echo: httpx.AsyncClient, query: str
) -> None:
    expected, got = await both(httpbin, echo, "GET", "/get" + query)
    assert got.status_code == expected.status_code == 200
    assert got.text == expected.text  # byte for byte: same formatting, same key order


@pytest.mark.parametrize(
    "path",
    [
        "/anything",
        "/anything/",
        "/anything/a/b/c",
        "/anything/caf%C3%A9/ü",
        "/anything/a%20b/%2Fslash/x:y@z",
        "/anything/semi;colon/q%3Fmark/hash%23/pct%25",
        "/anything/bad%ffbyte",
    ],
)
async def test_anything_paths_as_httpbin(
    httpbin: httpx.Client, echo: httpx.AsyncClient, path: str
) -> None:
    expected, got = await both(httpbin, echo, "GET", path + "?x=%C3%A9")
    assert got.status_code == expected.status_code
    if expected.status_code == 200:  # `/anything/` is a 404 for both
        assert got.json() == expected.json()


@pytest.mark.parametrize(
    ("url", "headers"),
    [
        ("/headers", {}),
        ("/headers", {"X-Forwarded-For": "10.1.2.3", "Via": "1.1 proxy", "X-Trace": "t"}),
        ("/headers?show_env=1", {"X-Forwarded-For": "10.1.2.3", "X-Request-Id": "r"}),
        ("/headers", {"User-Agent": "curl/8.0", "DNT": "1", "X-B3-TraceId": "abc"}),
        ("/ip", {}),
        ("/ip", {"X-Forwarded-For": "203.0.113.9, 10.0.0.1"}),
        ("/user-agent", {}),
        ("/user-agent", {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64)"}),
        ("/cookies", {"Cookie": 'a=1; b=two; __utma=hidden; q="quoted value"'}),
        ("/cookies?show_env=1", {"Cookie": "a=1; __utma=shown"}),
        ("/cookies", {}),
        ("/json", {}),
        ("/cache/60", {}),
        ("/etag/abc", {}),
        ("/etag/abc", {"If-Match": '"abc"'}),
        ("/etag/abc", {"If-None-Match": "other"}),
        ("/uuid", {}),
        ("/delay/0", {}),
        ("/delay/0.1?slow=1", {}),
    ],
)
async def test_inspection_endpoints_as_httpbin(
    httpbin: httpx.Client, echo: httpx.AsyncClient, url: str, headers: dict[str, str]
) -> None:
    expected, got = await both(httpbin, echo, "GET", url, headers=headers)
    assert got.status_code == expected.status_code
    assert got.headers["content-type"] == expected.headers["content-type"]
    assert normalised(got.json()) == normalised(expected.json())


@pytest.mark.parametrize("shape", ["form", "multipart", "json", "binary"])
async def test_delay_describes_the_body_as_httpbin(
    httpbin: httpx.Client, echo: httpx.AsyncClient, shape: str
) -> None:
    expected, got = await both(httpbin, echo, "POST", "/delay/0?d=1", **BODY_SHAPES[shape])
    assert got.json() == expected.json()


@pytest.mark.parametrize("path", ["/gzip", "/deflate", "/brotli"])
async def test_compressed_answers_decode_to_httpbins_json(
    httpbin: httpx.Client, echo: httpx.AsyncClient, path: str
) -> None:
    expected, got = await both(httpbin, echo, "GET", path, headers={"X-Test": "1"})
    assert got.headers["content-encoding"] == expected.headers["content-encoding"]
    assert got.json() == expected.json()


async def test_stream_lines_as_httpbin(httpbin: httpx.Client, echo: httpx.AsyncClient) -> None:
    expected, got = await both(httpbin, echo, "GET", "/stream/4?a=1")
    assert [json.loads(x) for x in got.text.splitlines()] == [
        json.loads(x) for x in expected.text.splitlines()
    ]
    assert len(got.text.splitlines()) == 4


@pytest.mark.parametrize(
    "query",
    ["?freeform=x", "?a=1&a=2&X-Thing=two%20words", "?Content-Type=text/plain", ""],
)
async def test_response_headers_as_httpbin(
    httpbin: httpx.Client, echo: httpx.AsyncClient, query: str
) -> None:
    expected, got = await both(httpbin, echo, "GET", "/response-headers" + query)
    doc, want = got.json(), expected.json()
    if "Content-Type=" in query:
        # httpbin sends both types (two Content-Type headers); comptoir sends the one asked for.
        assert doc["Content-Type"] == "text/plain"
        assert got.headers["content-type"] == "text/plain"
        return
    assert doc == want
    for name, value in want.items():
        values = value if isinstance(value, list) else [value]
        assert got.headers.get_list(name) == values


@pytest.mark.parametrize(
    ("url", "kwargs"),
    [
        ("/basic-auth/user/passwd", {"auth": ("user", "passwd")}),
        ("/basic-auth/user/passwd", {"auth": ("user", "wrong")}),
        ("/basic-auth/user/passwd", {}),
        ("/hidden-basic-auth/user/passwd", {"auth": ("user", "passwd")}),
        ("/hidden-basic-auth/user/passwd", {"auth": ("nobody", "passwd")}),
        ("/bearer", {"headers": {"Authorization": "Bearer abc.def"}}),
        ("/bearer", {"headers": {"Authorization": "Basic abc"}}),
        ("/bearer", {}),
        ("/digest-auth/auth/user/passwd", {"auth": httpx.DigestAuth("user", "passwd")}),
        ("/digest-auth/auth/user/passwd", {"auth": httpx.DigestAuth("user", "nope")}),
        ("/digest-auth/auth/u/p/SHA-256", {"auth": httpx.DigestAuth("u", "p")}),
        ("/digest-auth/any/u/p/MD5", {"auth": httpx.DigestAuth("u", "p")}),
        ("/digest-auth/auth/u/p/SHA-512", {"auth": httpx.DigestAuth("u", "p")}),
        ("/digest-auth/auth/user/passwd", {}),
    ],
)
async def test_auth_as_httpbin(
    httpbin: httpx.Client, echo: httpx.AsyncClient, url: str, kwargs: dict[str, Any]
) -> None:
    expected, got = await both(httpbin, echo, "GET", url, **kwargs)
    assert got.status_code == expected.status_code
    if expected.status_code == 200:
        assert got.json() == expected.json()
    for name in ("www-authenticate",):
        assert (name in got.headers) == (name in expected.headers)
        if name in got.headers:
            # Same scheme and parameters; the realm and random nonces differ.
            assert got.headers[name].split(" ")[0] == expected.headers[name].split(" ")[0]


@pytest.mark.parametrize(
    "url",
    [
        "/status/200",
        "/status/201",
        "/status/204",
        "/status/302",
        "/status/304",
        "/status/401",
        "/status/404",
        "/status/407",
        "/status/418",
        "/status/500",
        "/status/200:0,503:1",
        "/status/nope",
        "/redirect/1",
        "/redirect/3",
        "/redirect/2?absolute=true",
        "/relative-redirect/2",
        "/relative-redirect/1",
        "/absolute-redirect/3",
        "/absolute-redirect/1",
        "/redirect-to?url=/get&status_code=307",
        "/redirect-to?url=http://example.com/x?y=1",
        "/redirect-to?url=/x&status_code=200",
        "/links/3",
        "/cookies/set?a=1&b=x%20y",
        "/cookies/set/name/value",
        "/cookies/delete?a",
        "/cache",
    ],
)
async def test_status_and_location_as_httpbin(
    httpbin: httpx.Client, echo: httpx.AsyncClient, url: str
) -> None:
    expected, got = await both(httpbin, echo, "GET", url)
    assert got.status_code == expected.status_code
    assert got.headers.get("location") == expected.headers.get("location")
    for name in ("www-authenticate", "proxy-authenticate", "x-more-info"):
        assert got.headers.get(name) == expected.headers.get(name)
    got_cookies = [c.split(";")[0] for c in got.headers.get_list("set-cookie")]
    want_cookies = [c.split(";")[0] for c in expected.headers.get_list("set-cookie")]
    assert got_cookies == want_cookies


async def test_conditional_cache_as_httpbin(httpbin: httpx.Client, echo: httpx.AsyncClient) -> None:
    for headers in ({"If-None-Match": "x"}, {"If-Modified-Since": "Tue, 01 Jan 2030 00:00:00 GMT"}):
        expected, got = await both(httpbin, echo, "GET", "/cache", headers=headers)
        assert got.status_code == expected.status_code == 304
    expected, got = await both(
        httpbin, echo, "GET", "/etag/abc", headers={"If-None-Match": '"abc"'}
    )
    assert got.status_code == expected.status_code == 304
    assert got.headers["etag"] == expected.headers["etag"]
    expected, got = await both(httpbin, echo, "GET", "/etag/abc", headers={"If-Match": "zzz"})
    assert got.status_code == expected.status_code == 412


@pytest.mark.parametrize(
    "url",
    [
        "/bytes/64?seed=7",
        "/bytes/1?seed=0",
        "/stream-bytes/100?seed=3&chunk_size=10",
        "/range/30",
        "/links/5/2",
        "/links/1/0",
        "/robots.txt",
        "/xml",
        "/base64/SFRUUEJJTiBpcyBhd2Vzb21l",
        "/base64/w6nDqA==",
    ],
)
async def test_generated_bodies_are_byte_identical(
    httpbin: httpx.Client, echo: httpx.AsyncClient, url: str
) -> None:
    expected, got = await both(httpbin, echo, "GET", url)
    assert got.status_code == expected.status_code == 200
    assert got.content == expected.content


@pytest.mark.parametrize(
    "spec", ["bytes=5-9", "bytes=25-", "bytes=-4", "bytes=0-29", "bytes=40-50"]
)
async def test_range_as_httpbin(httpbin: httpx.Client, echo: httpx.AsyncClient, spec: str) -> None:
    expected, got = await both(httpbin, echo, "GET", "/range/30", headers={"Range": spec})
    assert got.status_code == expected.status_code
    assert got.content == expected.content
    for name in ("content-range", "etag", "accept-ranges"):
        assert got.headers.get(name) == expected.headers.get(name)


@pytest.mark.parametrize(
    ("accept", "media_type"),
    [
        (None, "image/png"),
        ("image/webp,*/*", "image/webp"),
        ("image/svg+xml", "image/svg+xml"),
        ("image/jpeg", "image/jpeg"),
        ("image/*", "image/png"),
        ("text/plain", None),
    ],
)
async def test_image_negotiation_as_httpbin(
    httpbin: httpx.Client, echo: httpx.AsyncClient, accept: str | None, media_type: str | None
) -> None:
    headers = {"Accept": accept} if accept else {}
    if accept is None:
        httpbin.headers.pop("Accept", None)
        echo.headers.pop("Accept", None)
    expected, got = await both(httpbin, echo, "GET", "/image", headers=headers)
    assert got.status_code == expected.status_code
    if media_type is None:
        assert got.json() == json.loads(expected.text)
    else:
        assert got.headers["content-type"] == expected.headers["content-type"] == media_type


@pytest.mark.parametrize("kind", ["png", "jpeg", "webp", "svg"])
async def test_image_types_as_httpbin(
    httpbin: httpx.Client, echo: httpx.AsyncClient, kind: str
) -> None:
    expected, got = await both(httpbin, echo, "GET", f"/image/{kind}")
    assert got.status_code == expected.status_code == 200
    assert got.headers["content-type"] == expected.headers["content-type"]


async def test_options_preflight_as_httpbin(httpbin: httpx.Client, echo: httpx.AsyncClient) -> None:
    headers = {"Origin": "http://a.example", "Access-Control-Request-Headers": "X-Custom"}
    expected, got = await both(httpbin, echo, "OPTIONS", "/get", headers=headers)
    assert got.status_code == expected.status_code == 200
    assert set(got.headers["allow"].split(", ")) == set(expected.headers["allow"].split(", "))
    for name in (
        "access-control-allow-methods",
        "access-control-max-age",
        "access-control-allow-headers",
    ):
        assert got.headers[name] == expected.headers[name]


@pytest.mark.parametrize(
    ("method", "url"),
    [("POST", "/get"), ("GET", "/post"), ("GET", "/nowhere"), ("GET", "/get/"), ("PUT", "/ip")],
)
async def test_wrong_method_or_path_as_httpbin(
    httpbin: httpx.Client, echo: httpx.AsyncClient, method: str, url: str
) -> None:
    expected, got = await both(httpbin, echo, method, url)
    assert got.status_code == expected.status_code
