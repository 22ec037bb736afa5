"""Site kinds: the registry. What a kind is, is declared in contract.py.

Adding a kind is a folder under sites/ whose `__init__.py` defines `KIND` (a `SiteKind`), plus one
line in `_registry` below; the CLI command, sites.toml's `[[site]]` tables, the banner, the demo's
checks and the conformance suite (tests/test_conformance.py) all pick it up from here.
"""

from __future__ import annotations

from comptoir.sites.contract import (
    AnyKind,
    Problem,
    ServiceContext,
    SiteContext,
    SiteKind,
)

__all__ = ["KINDS", "AnyKind", "Problem", "ServiceContext", "SiteContext", "SiteKind", "get_kind"]


def _registry() -> dict[str, AnyKind]:
    from comptoir.sites import echo, receive, share, static

    kinds: list[AnyKind] = [static.KIND, receive.KIND, echo.KIND, share.KIND]
    return {k.name: k for k in kinds}


KINDS: dict[str, AnyKind] = _registry()


def get_kind(name: str) -> AnyKind:
    """The registered kind called `name` (KeyError if there is none)."""
    return KINDS[name]
