"""Site kinds: the registry. What a kind is, is declared in contract.py.

Adding a kind is a folder under sites/ whose `__init__.py` defines `KIND` (a `SiteKind`), plus one
line in `_registry` below; the CLI command, sites.toml's `[[site]]` tables, `comptoir check`, the
banner, `comptoir demo` (its sites and its home page) and the conformance suite
(tests/test_conformance.py) all pick it up from here. The order here is the demo's order.
"""

from __future__ import annotations

from comptoir.sites.contract import (
    AnyKind,
    DemoContext,
    DemoSite,
    Problem,
    ServiceContext,
    SiteContext,
    SiteKind,
)

__all__ = [
    "KINDS",
    "AnyKind",
    "DemoContext",
    "DemoSite",
    "Problem",
    "ServiceContext",
    "SiteContext",
    "SiteKind",
    "get_kind",
]


def _registry() -> dict[str, AnyKind]:
    from comptoir.sites import api, chat, echo, receive, share, static

    kinds: list[AnyKind] = [
        static.KIND,
        share.KIND,
        receive.KIND,
        echo.KIND,
        api.KIND,
        chat.KIND,
    ]
    return {k.name: k for k in kinds}


KINDS: dict[str, AnyKind] = _registry()


def get_kind(name: str) -> AnyKind:
    """The registered kind called `name` (KeyError if there is none)."""
    return KINDS[name]
