"""Errors a user can cause, turned into one clear message at one place each.

`ConfigError` becomes one line on stderr and exit code 2 (cli.py); `HTTPError` becomes a status
with a short text or JSON body (http/errors.py).
"""


class ComptoirError(Exception):
    """Base class of the errors comptoir raises on purpose."""


class ConfigError(ComptoirError):
    """A bad option, file or environment: reported as one line, exit code 2."""


class HTTPError(ComptoirError):
    """A request comptoir refuses: status plus a short human message."""

    def __init__(self, status: int, message: str = "", headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


class ConfigProblems(ConfigError):
    """Several problems found at once (a sites.toml file): reported one line each, exit code 2."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class ClientGone(ComptoirError):
    """The client closed the connection before the answer was complete.

    Raised by any site that notices it (a disconnect from `receive()` while sending or reading);
    the worker's outer app (app.WorkerApp) ends the request quietly, for every kind alike.
    """


class BodyTimeout(HTTPError):
    """408: nothing of the request body arrived for `--body-timeout` seconds.

    Raised by the request's `receive()` (clientlimits.py) to whatever reads the body; a site that
    wrote part of it to disk removes it, as for a client gone. The connection is closed with the
    answer: the rest of the body may still come.
    """

    def __init__(self, seconds: float) -> None:
        message = f"Request body timed out: nothing arrived for {seconds:g} s"
        super().__init__(408, message, {"Connection": "close"})
