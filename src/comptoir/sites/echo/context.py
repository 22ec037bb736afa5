"""What every echo endpoint may need beyond its request: the site's options and mount prefix."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import HTTPConnection

from comptoir.errors import HTTPError
from comptoir.sites.echo import EchoOptions

# The scope key under which the site leaves its EchoContext for the endpoints.
SCOPE_KEY = "comptoir.echo"


@dataclass(frozen=True)
class EchoContext:
    """The options of the site answering a request, and where it is mounted."""

    options: EchoOptions
    # Path prefix the site is mounted under ("" at the root); every link and Location has it.
    prefix: str = ""

    def check_duration(self, seconds: float, what: str) -> float:
        """`seconds` if within the site's max duration, else HTTPError 400 (as go-httpbin)."""
        limit = self.options.max_duration
        if not 0 <= seconds <= limit:
            raise HTTPError(400, f"invalid {what}: must be between 0 and {limit:g} seconds")
        return seconds


def echo_context(conn: HTTPConnection) -> EchoContext:
    """The EchoContext the site put in the request's scope."""
    ctx: EchoContext = conn.scope[SCOPE_KEY]
    return ctx
