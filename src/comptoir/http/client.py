"""The client of a request as people see it: in the access log, a share's progress lines, the
terminal line of a file received."""

from __future__ import annotations

from comptoir.types import Scope


def client_label(scope: Scope) -> str:
    """The client's address as logs show it (IPv6 in brackets), or "-"."""
    client = scope.get("client")
    if not client:
        return "-"
    host = str(client[0])
    return f"[{host}]" if ":" in host else host
