"""A site's offer to have its answers given again by the outer fast path (fastpath.py).

Two kinds of offer, put in the `http.response.start` message under `REUSE`:
- `Reusable`: the answer depends only on the request's host, path and query (a small file from
  memory, whole), until `until`: the outer app keeps the answer as it went out;
- `Computed`: the answer to a GET of this host and path is a body computed from the request
  alone, under the same headers but Content-Length (echo's /get): the outer app keeps those
  headers and the function, and later calls it without the stack in between. With `under`, the
  offer covers every path beside this one (what follows the last `/`): an api site's rows by
  key (`/api/items/<key>`), each with its own ETag.

The worker's outer app takes the offer out before the message reaches the server. It is carried by
the message, not the scope: the host router gives a mounted site a copy of the scope, but every
layer passes the start message's keys on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from comptoir.http.plan import Representation
from comptoir.types import Scope

REUSE = "comptoir.reuse"


@dataclass(frozen=True, slots=True)
class Reusable:
    """The answer depends only on host, path and query until `until` (monotonic time)."""

    rep: Representation
    until: float


@dataclass(frozen=True, slots=True)
class Computed:
    """A GET of the same host and path is answered 200 with `answer(scope)` as its body.

    `answer` gets the scope as the worker received it (before any router or mount), and must
    depend on nothing else: no state, no time, no other request. It returns None for a request it
    does not answer exactly as the site would (the full stack answers that one), and never raises.
    The outer layers' headers are kept from the first answer: they must not vary with what the
    function reads (a JSON body: security headers depend on the type and the host only).

    With `under`, the offer stands for every path that differs from this one after its last `/`,
    and the function may read the site's state (an api site's rows) as long as it declines
    whenever the full stack would first bring that state up to date. It may then return
    (body, ETag value): the kept answer's ETag header is replaced with it.
    """

    answer: Callable[[Scope], bytes | tuple[bytes, bytes] | None]
    under: bool = False
