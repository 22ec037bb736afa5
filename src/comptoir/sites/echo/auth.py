"""httpbin's authentication endpoints: Basic (plain and hidden), Bearer and Digest.

The expected user and password come from the URL; nothing here protects anything, these
endpoints let clients test that they authenticate correctly.
"""

from __future__ import annotations

import base64
import binascii
import hmac

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from comptoir.http.numbers import parse_decimal
from comptoir.sites.echo import digest
from comptoir.sites.echo.context import echo_context
from comptoir.sites.echo.inspection import header, query_value, read_body, request_target
from comptoir.sites.echo.responses import (
    cookie_header,
    header_text,
    json_response,
    parse_cookies,
    status_response,
)


def basic_credentials(request: Request) -> tuple[str, str] | None:
    """The user and password of an `Authorization: Basic …` header, or None."""
    value = header(request, "authorization") or ""
    scheme, _, encoded = value.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, colon, password = decoded.partition(b":")
    if not colon:
        return None
    return user.decode("utf-8", "replace"), password.decode("utf-8", "replace")


def _basic_ok(request: Request) -> bool:
    given = basic_credentials(request)
    if given is None:
        return False
    user, password = request.path_params["user"], request.path_params["passwd"]
    # Both comparisons run, so timing says nothing about which part was wrong.
    same_user = hmac.compare_digest(given[0].encode(), user.encode())
    same_password = hmac.compare_digest(given[1].encode(), password.encode())
    return same_user and same_password


async def basic_auth(request: Request) -> Response:
    """/basic-auth/{user}/{passwd}: 200 with the right Basic credentials, else 401."""
    if not _basic_ok(request):
        return status_response(401, echo_context(request).prefix)
    return json_response({"authenticated": True, "user": request.path_params["user"]})


async def hidden_basic_auth(request: Request) -> Response:
    """/hidden-basic-auth/{user}/{passwd}: as /basic-auth, but 404 instead of 401."""
    if not _basic_ok(request):
        return Response(b"", 404)
    return json_response({"authenticated": True, "user": request.path_params["user"]})


async def bearer(request: Request) -> Response:
    """/bearer: 200 with any `Authorization: Bearer <token>`, else 401."""
    value = header(request, "authorization") or ""
    if not value.startswith("Bearer "):
        return Response(b"", 401, {"www-authenticate": "Bearer"})
    return json_response({"authenticated": True, "token": value[len("Bearer ") :]})


async def digest_auth(request: Request) -> Response:
    """/digest-auth/{qop}/{user}/{passwd}[/{algorithm}[/{stale_after}]]: Digest, verified.

    As httpbin: a qop other than auth/auth-int offers both; an unknown algorithm means MD5;
    `stale_after=N` answers the N-th next request with a stale challenge; `?require-cookie=1`
    insists on the cookie set with the challenge.
    """
    params = request.path_params
    qop = params["qop"] if params["qop"] in digest.QOPS else None
    algorithm = params.get("algorithm", "MD5")
    if algorithm not in digest.ALGORITHMS:
        algorithm = "MD5"
    stale_after = params.get("stale_after", "never")
    require_cookie = (query_value(request, "require-cookie") or "").lower() in ("1", "t", "true")
    cookie_text = header(request, "cookie")
    jar = parse_cookies(cookie_text)
    path = echo_context(request).prefix + "/"

    def challenge(*, stale: bool, last_nonce: str | None = None) -> Response:
        offer = digest.challenge(qop, algorithm, stale=stale)
        response = Response(b"", 401, {"www-authenticate": offer})
        cookies = [("stale_after", stale_after), ("fake", "fake_value")]
        if last_nonce is not None:
            cookies.insert(1, ("last_nonce", last_nonce))
        for name, value in cookies:
            response.headers.append("set-cookie", header_text(cookie_header(name, value, path)))
        return response

    credentials = digest.parse_credentials(header(request, "authorization"))
    if credentials is None or (require_cookie and cookie_text is None):
        return challenge(stale=False)
    if require_cookie and jar.get("fake") != "fake_value":
        response = json_response({"errors": ["missing cookie set on challenge"]}, 403)
        response.headers.append(
            "set-cookie", header_text(cookie_header("fake", "fake_value", path))
        )
        return response
    nonce = credentials["nonce"]
    stale_after_value = jar.get("stale_after")
    if jar.get("last_nonce") == nonce or stale_after_value == "0":
        return challenge(stale=True, last_nonce=nonce)
    body = await read_body(request, echo_context(request).options.max_body)
    ok = digest.verify(
        credentials,
        params["user"],
        params["passwd"],
        request.method,
        request_target(request),
        body,
        algorithm,
    )
    if not ok:
        return challenge(stale=False, last_nonce=nonce)
    response = json_response({"authenticated": True, "user": params["user"]})
    response.headers.append("set-cookie", header_text(cookie_header("fake", "fake_value", path)))
    if stale_after_value:
        stale_after = parse_decimal(stale_after_value)
        left = str(stale_after - 1) if stale_after is not None else "never"
        response.headers.append("set-cookie", header_text(cookie_header("stale_after", left, path)))
    return response


ROUTES: list[BaseRoute] = [
    Route("/basic-auth/{user}/{passwd}", basic_auth, methods=["GET"]),
    Route("/hidden-basic-auth/{user}/{passwd}", hidden_basic_auth, methods=["GET"]),
    Route("/bearer", bearer, methods=["GET"]),
    Route("/digest-auth/{qop}/{user}/{passwd}", digest_auth, methods=["GET"]),
    Route("/digest-auth/{qop}/{user}/{passwd}/{algorithm}", digest_auth, methods=["GET"]),
    Route(
        "/digest-auth/{qop}/{user}/{passwd}/{algorithm}/{stale_after}",
        digest_auth,
        methods=["GET"],
    ),
]
