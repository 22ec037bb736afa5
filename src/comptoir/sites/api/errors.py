"""The api site's answers other than 2xx: a status, a JSON body, headers."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An answer other than 2xx (a read's 404, a write refused), with its JSON body.

    Raised where the answer is decided, or kept as a value (a write's outcome, live.py).
    """

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
        super().__init__(body.get("error", ""))
        self.status = status
        self.body = body
        self.headers = headers or {}
