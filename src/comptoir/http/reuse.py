"""A site's offer to have its answer reused by the outer fast path (fastpath.py).

A site that answers with something depending only on the request's host, path and query (a small
file from memory, whole) puts a `Reusable` in its `http.response.start` message under `REUSE`.
The worker's outer app takes it out before the message reaches the server, and keeps the answer
as it went out until `until`. Carried by the message, not the scope: the host router gives a
mounted site a copy of the scope, but every layer passes the start message's keys on.
"""

from __future__ import annotations

from dataclasses import dataclass

from comptoir.http.plan import Representation

REUSE = "comptoir.reuse"


@dataclass(frozen=True, slots=True)
class Reusable:
    """The answer depends only on host, path and query until `until` (monotonic time)."""

    rep: Representation
    until: float
