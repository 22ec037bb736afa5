"""Which asyncio event loop the workers run, and how the CLI names it.

granian builds each worker's loop itself; its `auto` prefers rloop over uvloop, and rloop says of
itself that it is not for production (no Unix sockets, which the `chat` kind's fan-out needs). So
comptoir resolves `auto` itself: uvloop where it is installed (a dependency everywhere but
Windows), else the standard loop. docs/decisions.md has the measurements behind the choice.
"""

from __future__ import annotations

import importlib.util
from importlib.metadata import PackageNotFoundError, version

from comptoir.errors import ConfigError

# What each choice needs installed (the standard loop needs nothing).
_PACKAGES = {"uvloop": "uvloop", "rloop": "rloop"}


def installed(name: str) -> bool:
    """True if the loop `name` can run here."""
    package = _PACKAGES.get(name)
    return package is None or importlib.util.find_spec(package) is not None


def resolve_loop(choice: str) -> str:
    """The loop the workers will run for a `--loop` choice; ConfigError if it is not installed."""
    if choice == "auto":
        return "uvloop" if installed("uvloop") else "asyncio"
    if not installed(choice):
        raise ConfigError(f"--loop {choice}: {choice} is not installed (pip install {choice})")
    return choice


def describe(name: str) -> str:
    """`uvloop 0.23.0`, or `asyncio` for the standard loop."""
    package = _PACKAGES.get(name)
    if package is None:
        return name
    try:
        return f"{name} {version(package)}"
    except PackageNotFoundError:
        return name
