"""httpbin's request and response inspection: methods, status codes, headers, redirects,
cookies, caching, compressed answers and fixed formats (JSON, HTML, XML, images...)."""

from __future__ import annotations

import base64
import binascii
import gzip
import re
import uuid
import zlib
from email.utils import formatdate
from typing import Any
from urllib.parse import quote

import brotli  # type: ignore[import-untyped]
from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from comptoir.errors import HTTPError
from comptoir.http.cookies import is_own_cookie as own
from comptoir.sites.echo.context import echo_context
from comptoir.sites.echo.inspection import (
    base_url,
    describe,
    header,
    parse_pairs,
    query_value,
    request_body,
)
from comptoir.sites.echo.responses import (
    HTML,
    asset,
    choose_status,
    cookie_header,
    header_text,
    json_response,
    parse_cookies,
    redirect,
    status_response,
    text_response,
)
from comptoir.web import render


class _Count(Convertor[int]):
    """`{n:count}`: a whole number of at most 18 digits.

    Starlette's `int` takes any length, and Python refuses int() of over 4,300 digits (a 500);
    longer paths match no route (404).
    """

    regex = "[0-9]{1,18}"

    def convert(self, value: str) -> int:
        """The path segment as a number."""
        return int(value)

    def to_string(self, value: int) -> str:
        """The number as a path segment."""
        return str(value)


register_url_convertor("count", _Count())


BODY_KEYS = ("url", "args", "form", "data", "origin", "headers", "files", "json")
GET_KEYS = ("url", "args", "headers", "origin")
ALL_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "TRACE"]

# Cookies a proxy in front of httpbin.org added; hidden unless the query has `show_env`.
ENV_COOKIES = frozenset(
    (
        "_gauges_unique",
        "_gauges_unique_year",
        "_gauges_unique_month",
        "_gauges_unique_day",
        "_gauges_unique_hour",
        "__utmz",
        "__utma",
        "__utmb",
    )
)

# Headers /response-headers will not set: they would break the framing of the answer.
FRAMING_HEADERS = frozenset(
    ("content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te", "trailer")
)

SLIDESHOW = {
    "slideshow": {
        "title": "Sample Slide Show",
        "date": "date of publication",
        "author": "Yours Truly",
        "slides": [
            {"type": "all", "title": "Wake up to WonderWidgets!"},
            {
                "type": "all",
                "title": "Overview",
                "items": [
                    "Why <em>WonderWidgets</em> are great",
                    "Who <em>buys</em> WonderWidgets",
                ],
            },
        ],
    }
}

IMAGES = {
    "png": ("image.png", "image/png"),
    "jpeg": ("image.jpeg", "image/jpeg"),
    "webp": ("image.webp", "image/webp"),
    "svg": ("image.svg", "image/svg+xml"),
}

DENY_TEXT = """
      .-------------------.
      |  YOU SHOULDN'T    |
      |     BE HERE       |
      '-------------------'
"""


# --- HTTP methods and request inspection ---------------------------------------------------


async def get(request: Request) -> Response:
    """GET /get: the query, headers, origin and URL."""
    return json_response(await describe(request, *GET_KEYS))


async def with_body(request: Request) -> Response:
    """POST/PUT/PATCH/DELETE: everything the request carried."""
    return json_response(await describe(request, *BODY_KEYS))


async def anything(request: Request) -> Response:
    """/anything[/…] with any method: everything, method included."""
    if request.path_params.get("rest") == "":
        # As httpbin: `/anything/` names no path below /anything.
        raise HTTPError(404, "Not found")
    return json_response(await describe(request, *BODY_KEYS, "method"))


async def headers(request: Request) -> Response:
    """The request's headers."""
    return json_response(await describe(request, "headers"))


async def ip(request: Request) -> Response:
    """The client's address."""
    return json_response(await describe(request, "origin"))


async def user_agent(request: Request) -> Response:
    """The User-Agent header (null when there is none)."""
    found = (await describe(request, "headers"))["headers"]
    value = next((v for k, v in found.items() if k.lower() == "user-agent"), None)
    return json_response({"user-agent": value})


# --- Status codes and response headers -----------------------------------------------------


async def status(request: Request) -> Response:
    """/status/{codes}: that code, or a weighted random pick of several."""
    code = choose_status(request.path_params["codes"])
    return status_response(code, echo_context(request).prefix)


async def response_headers(request: Request) -> Response:
    """Answer with the query's pairs as headers, and a JSON body listing every header sent."""
    pairs = parse_pairs(request.scope.get("query_string", b""))
    content_type = "application/json"
    extra: list[tuple[str, str]] = []
    for name, value in pairs:
        if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
            raise HTTPError(400, f"invalid header name: {name!r}")
        if name.lower() in FRAMING_HEADERS:
            raise HTTPError(400, f"{name} cannot be set here")
        if name.lower() == "content-type":
            content_type = value
            continue
        # `=name=value` has no name: some browsers take `name=value` from it.
        if name.lower() == "set-cookie" and own(value.lstrip(" \t=").partition("=")[0]):
            raise HTTPError(400, "comptoir's own cookies cannot be set here")
        extra.append((name, header_text(value)))
    # The body lists the headers, Content-Length included: iterate until that length is stable.
    length = 0
    while True:
        listed = [("Content-Type", content_type), ("Content-Length", str(length)), *extra]
        doc: dict[str, Any] = {}
        for name, _ in listed:
            values = [v for k, v in listed if k.lower() == name.lower()]
            doc[name] = values[0] if len(values) == 1 else values
        response = json_response(doc)
        if len(response.body) == length:
            break
        length = len(response.body)
    response.headers["content-type"] = header_text(content_type)
    for name, value in extra:
        response.headers.append(name, value)
    return response


# --- Redirects ------------------------------------------------------------------------------


def _redirect_count(request: Request) -> int:
    n: int = request.path_params["n"]
    if n < 1:
        raise HTTPError(400, "redirect count must be > 0")
    return n


async def redirect_n(request: Request) -> Response:
    """/redirect/{n}: relative redirects down to /get (absolute ones with ?absolute=true)."""
    n = _redirect_count(request)
    absolute = (query_value(request, "absolute") or "false").lower() == "true"
    return _next_redirect(request, n, "absolute" if absolute else "relative")


async def relative_redirect(request: Request) -> Response:
    """/relative-redirect/{n}: n redirects with path-only Locations."""
    return _next_redirect(request, _redirect_count(request), "relative")


async def absolute_redirect(request: Request) -> Response:
    """/absolute-redirect/{n}: n redirects with full-URL Locations."""
    return _next_redirect(request, _redirect_count(request), "absolute")


def _next_redirect(request: Request, n: int, kind: str) -> Response:
    path = "/get" if n == 1 else f"/{kind}-redirect/{n - 1}"
    if kind == "absolute":
        return redirect(base_url(request) + path)
    return redirect(echo_context(request).prefix + path)


async def redirect_to(request: Request) -> Response:
    """/redirect-to?url=…[&status_code=3xx]: a redirect to any URL."""
    url = query_value(request, "url")
    code_text = query_value(request, "status_code")
    if url is None and request.method in ("POST", "PUT", "PATCH"):
        form = (await request_body(request)).form
        url = _first(form.get("url"))
        code_text = code_text or _first(form.get("status_code"))
    if not url:
        raise HTTPError(400, "missing required parameter: url")
    code = 302
    if code_text is not None:
        try:
            wanted = int(code_text)
        except ValueError:
            raise HTTPError(400, "invalid status_code") from None
        if 300 <= wanted < 400:
            code = wanted
    # The Location is the URL as given; only what cannot travel in a header is %-encoded.
    return redirect(quote(url, safe="!#$%&'()*+,-./:;=?@[]^_`{|}~"), code)


def _first(value: str | list[str] | None) -> str | None:
    return value[0] if isinstance(value, list) else value


# --- Cookies --------------------------------------------------------------------------------


async def cookies(request: Request) -> Response:
    """The cookies the client sent."""
    found = {k: v for k, v in parse_cookies(header(request, "cookie")).items() if not own(k)}
    if query_value(request, "show_env") is None:
        found = {k: v for k, v in found.items() if k not in ENV_COOKIES}
    return json_response({"cookies": found})


def _cookie_path(request: Request) -> str:
    # Cookies stay under the site's mount point: other sites of the host never see them.
    return echo_context(request).prefix + "/"


def _to_cookies(request: Request, pairs: list[tuple[str, str]], *, delete: bool) -> Response:
    response = redirect(echo_context(request).prefix + "/cookies")
    path = _cookie_path(request)
    for name, _ in pairs:
        if own(name):
            raise HTTPError(400, f"{name} is comptoir's own cookie: echo does not set it")
    for name, value in dict(pairs).items():
        response.headers.append(
            "set-cookie", header_text(cookie_header(name, value, path, delete=delete))
        )
    return response


async def set_cookies(request: Request) -> Response:
    """/cookies/set?name=value…: set cookies, then redirect to /cookies."""
    return _to_cookies(request, parse_pairs(request.scope.get("query_string", b"")), delete=False)


async def set_cookie(request: Request) -> Response:
    """/cookies/set/{name}/{value}: set one cookie, then redirect to /cookies."""
    params = request.path_params
    return _to_cookies(request, [(params["name"], params["value"])], delete=False)


async def delete_cookies(request: Request) -> Response:
    """/cookies/delete?name…: expire cookies, then redirect to /cookies."""
    return _to_cookies(request, parse_pairs(request.scope.get("query_string", b"")), delete=True)


# --- Caching --------------------------------------------------------------------------------


async def cache(request: Request) -> Response:
    """/cache: 304 for any conditional request, else /get with Last-Modified and ETag."""
    if header(request, "if-modified-since") or header(request, "if-none-match"):
        return Response(b"", 304)
    response = json_response(await describe(request, *GET_KEYS))
    response.headers["last-modified"] = formatdate(usegmt=True)
    response.headers["etag"] = uuid.uuid4().hex
    return response


async def cache_control(request: Request) -> Response:
    """/cache/{n}: /get with `Cache-Control: public, max-age=n`."""
    response = json_response(await describe(request, *GET_KEYS))
    response.headers["cache-control"] = f"public, max-age={request.path_params['n']}"
    return response


def _etag_list(value: str | None) -> list[str]:
    """The entity tags of an If-Match/If-None-Match header, quotes and W/ dropped (as httpbin)."""
    out: list[str] = []
    if not value:
        return out
    for part in value.split(","):
        m = re.search(r'\s*(W/)?"?([^"]*)"?\s*', part)
        if m is not None:
            out.append(m.group(2))
    return out


async def etag(request: Request) -> Response:
    """/etag/{etag}: honour If-None-Match (304) and If-Match (412) against that ETag."""
    tag = header_text(request.path_params["etag"])
    if_none_match = _etag_list(header(request, "if-none-match"))
    if_match = _etag_list(header(request, "if-match"))
    if if_none_match:
        if tag in if_none_match or "*" in if_none_match:
            return Response(b"", 304, {"etag": tag})
    elif if_match and tag not in if_match and "*" not in if_match:
        return Response(b"", 412)
    response = json_response(await describe(request, *GET_KEYS))
    response.headers["etag"] = tag
    return response


# --- Compressed answers ---------------------------------------------------------------------


async def _compressed(request: Request, flag: str, encoding: str) -> Response:
    doc = await describe(request, "origin", "headers", method=request.method, **{flag: True})
    body = json_response(doc).body
    if encoding == "gzip":
        data = gzip.compress(body, compresslevel=4)
    elif encoding == "deflate":
        data = zlib.compress(body)
    else:
        data = brotli.compress(body)
    return Response(data, media_type="application/json", headers={"content-encoding": encoding})


async def gzipped(request: Request) -> Response:
    """/gzip: the request as JSON, gzip-encoded whatever the client accepts."""
    return await _compressed(request, "gzipped", "gzip")


async def deflated(request: Request) -> Response:
    """/deflate: the request as JSON, deflate-encoded (zlib format)."""
    return await _compressed(request, "deflated", "deflate")


async def brotli_encoded(request: Request) -> Response:
    """/brotli: the request as JSON, brotli-encoded."""
    return await _compressed(request, "brotli", "br")


# --- Fixed formats --------------------------------------------------------------------------


async def json_sample(request: Request) -> Response:
    """/json: a sample JSON document."""
    return json_response(SLIDESHOW)


async def html_sample(request: Request) -> Response:
    """/html: a sample HTML page."""
    return Response(asset("moby.html"), media_type=HTML)


async def xml_sample(request: Request) -> Response:
    """/xml: a sample XML document."""
    return Response(asset("sample.xml"), media_type="application/xml")


async def utf8_sample(request: Request) -> Response:
    """/encoding/utf8: a page of text in many scripts."""
    return Response(asset("utf8.html"), media_type=HTML)


async def robots(request: Request) -> Response:
    """/robots.txt: keeps robots away from /deny."""
    return text_response(f"User-agent: *\nDisallow: {echo_context(request).prefix}/deny\n")


async def deny(request: Request) -> Response:
    """/deny: the page robots.txt forbids."""
    return text_response(DENY_TEXT)


async def forms_post(request: Request) -> Response:
    """/forms/post: an HTML form that submits to /post."""
    return Response(
        render("echo_forms_post.html", prefix=echo_context(request).prefix), 200, media_type=HTML
    )


async def base64_decode(request: Request) -> Response:
    """/base64/{value}: the URL-safe base64 value decoded, as UTF-8 text."""
    value = request.path_params["value"]
    try:
        padded = value + "=" * (-len(value) % 4)
        text = base64.b64decode(padded, altchars=b"-_", validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise HTTPError(400, "Incorrect Base64 data try: SFRUUEJJTiBpcyBhd2Vzb21l") from None
    return text_response(text)


async def links_redirect(request: Request) -> Response:
    """/links/{n}: redirect to the first page of n links."""
    n = request.path_params["n"]
    return redirect(f"{echo_context(request).prefix}/links/{n}/0")


async def links(request: Request) -> Response:
    """/links/{n}/{offset}: a page of n links to its siblings (at most 200)."""
    n = min(max(1, request.path_params["n"]), 200)
    page = render(
        "echo_links.html",
        n=n,
        offset=request.path_params["offset"],
        prefix=echo_context(request).prefix,
    )
    return Response(page, media_type=HTML)


def _image(kind: str) -> Response:
    name, media_type = IMAGES[kind]
    return Response(asset(name), media_type=media_type)


async def image(request: Request) -> Response:
    """/image: the image type the Accept header prefers (PNG by default), else 406."""
    accept = (header(request, "accept") or "").lower()
    if not accept:
        return _image("png")
    for media_type, kind in (
        ("image/webp", "webp"),
        ("image/svg+xml", "svg"),
        ("image/jpeg", "jpeg"),
        ("image/png", "png"),
        ("image/*", "png"),
    ):
        if media_type in accept:
            return _image(kind)
    return status_response(406, echo_context(request).prefix)


async def image_kind(request: Request) -> Response:
    """/image/{png|jpeg|webp|svg}: that image."""
    kind = request.path_params["kind"]
    if kind not in IMAGES:
        raise HTTPError(404, "Not found")
    return _image(kind)


ROUTES: list[BaseRoute] = [
    Route("/get", get, methods=["GET"]),
    Route("/post", with_body, methods=["POST"]),
    Route("/put", with_body, methods=["PUT"]),
    Route("/patch", with_body, methods=["PATCH"]),
    Route("/delete", with_body, methods=["DELETE"]),
    Route("/anything", anything, methods=ALL_METHODS),
    Route("/anything/{rest:path}", anything, methods=ALL_METHODS),
    Route("/headers", headers, methods=["GET"]),
    Route("/ip", ip, methods=["GET"]),
    Route("/user-agent", user_agent, methods=["GET"]),
    Route("/status/{codes}", status, methods=ALL_METHODS),
    Route("/response-headers", response_headers, methods=["GET", "POST"]),
    Route("/redirect/{n:count}", redirect_n, methods=["GET"]),
    Route("/relative-redirect/{n:count}", relative_redirect, methods=["GET"]),
    Route("/absolute-redirect/{n:count}", absolute_redirect, methods=["GET"]),
    Route("/redirect-to", redirect_to, methods=ALL_METHODS),
    Route("/cookies", cookies, methods=["GET"]),
    Route("/cookies/set", set_cookies, methods=["GET"]),
    Route("/cookies/set/{name}/{value}", set_cookie, methods=["GET"]),
    Route("/cookies/delete", delete_cookies, methods=["GET"]),
    Route("/cache", cache, methods=["GET"]),
    Route("/cache/{n:count}", cache_control, methods=["GET"]),
    Route("/etag/{etag}", etag, methods=["GET"]),
    Route("/gzip", gzipped, methods=["GET"]),
    Route("/deflate", deflated, methods=["GET"]),
    Route("/brotli", brotli_encoded, methods=["GET"]),
    Route("/json", json_sample, methods=["GET"]),
    Route("/html", html_sample, methods=["GET"]),
    Route("/xml", xml_sample, methods=["GET"]),
    Route("/encoding/utf8", utf8_sample, methods=["GET"]),
    Route("/robots.txt", robots, methods=["GET"]),
    Route("/deny", deny, methods=["GET"]),
    Route("/forms/post", forms_post, methods=["GET"]),
    Route("/base64/{value}", base64_decode, methods=["GET"]),
    Route("/links/{n:count}", links_redirect, methods=["GET"]),
    Route("/links/{n:count}/{offset:count}", links, methods=["GET"]),
    Route("/image", image, methods=["GET"]),
    Route("/image/{kind}", image_kind, methods=["GET"]),
]
