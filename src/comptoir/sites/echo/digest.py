"""HTTP Digest authentication (RFC 7616, with RFC 2617's qop-less form): challenges, parsing
of the client's credentials, and verification of its response hash.

Nonces are not remembered (as in httpbin, the server is stateless across worker processes); what is
checked is that the client proved it knows the password for this method, URI and nonce.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re

ALGORITHMS = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256, "SHA-512": hashlib.sha512}
QOPS = ("auth", "auth-int")
REALM = "comptoir"

# One auth-param: name=token or name="quoted string" (with backslash escapes).
_PARAM = re.compile(
    r'\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)\s*(?:,|$)'
)


def digest_hash(data: bytes, algorithm: str) -> str:
    """The hex digest of `data` with a Digest algorithm name (MD5 when unknown, as httpbin)."""
    return ALGORITHMS.get(algorithm.upper(), hashlib.md5)(data).hexdigest()


def challenge(qop: str | None, algorithm: str, *, stale: bool = False) -> str:
    """A `WWW-Authenticate: Digest …` value with a fresh nonce and opaque."""
    nonce = digest_hash(os.urandom(16), algorithm)
    opaque = digest_hash(os.urandom(16), algorithm)
    qops = ", ".join(QOPS) if qop is None else qop
    return (
        f'Digest realm="{REALM}", nonce="{nonce}", qop="{qops}", opaque="{opaque}", '
        f"algorithm={algorithm}, stale={'TRUE' if stale else 'FALSE'}"
    )


def parse_credentials(authorization: str | None) -> dict[str, str] | None:
    """The parameters of an `Authorization: Digest …` header, or None if it is not one."""
    if not authorization:
        return None
    scheme, _, rest = authorization.strip().partition(" ")
    if scheme.lower() != "digest":
        return None
    params: dict[str, str] = {}
    pos = 0
    rest = rest.strip()
    while pos < len(rest):
        m = _PARAM.match(rest, pos)
        if m is None:
            return None
        name, value = m.group(1).lower(), m.group(2)
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params[name] = value
        pos = m.end()
    required = ["username", "realm", "nonce", "uri", "response"]
    if "qop" in params:
        required += ["nc", "cnonce"]
    if any(k not in params for k in required):
        return None
    return params


def expected_response(
    credentials: dict[str, str], password: str, method: str, uri: str, body: bytes
) -> str | None:
    """The response hash a client knowing `password` sends, or None for an unknown qop."""
    algorithm = credentials.get("algorithm", "MD5")
    ha1 = digest_hash(
        f"{credentials['username']}:{credentials['realm']}:{password}".encode(), algorithm
    )
    qop = credentials.get("qop")
    if qop in (None, "auth"):
        ha2 = digest_hash(f"{method}:{uri}".encode(), algorithm)
    elif qop == "auth-int":
        ha2 = digest_hash(f"{method}:{uri}:{digest_hash(body, algorithm)}".encode(), algorithm)
    else:
        return None
    if qop is None:
        return digest_hash(f"{ha1}:{credentials['nonce']}:{ha2}".encode(), algorithm)
    parts = (ha1, credentials["nonce"], credentials["nc"], credentials["cnonce"], qop, ha2)
    return digest_hash(":".join(parts).encode(), algorithm)


def verify(
    credentials: dict[str, str],
    user: str,
    password: str,
    method: str,
    uri: str,
    body: bytes,
    algorithm: str,
) -> bool:
    """True when the credentials prove `user` knows `password` for this request."""
    if credentials.get("algorithm", "MD5").upper() != algorithm.upper():
        return False
    if not hmac.compare_digest(credentials["username"].encode(), user.encode()):
        return False
    expected = expected_response(credentials, password, method, uri, body)
    return expected is not None and hmac.compare_digest(
        credentials["response"].lower().encode(), expected.encode()
    )
