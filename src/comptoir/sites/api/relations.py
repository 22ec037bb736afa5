"""Relations between tables: a column of one table holding keys of another.

Found by name — a column `<singular>_id` or `<singular>Id` where a table's name is `<singular>`,
its plural, or starts with either (`association_id` → `associations_etudiantes`) — and kept only if
every value of the column is a key of that table. Declared with `--relation child.col=parent.key`
where names do not follow the convention (`key` must be the parent's key column).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from comptoir.errors import ConfigError

if TYPE_CHECKING:
    from comptoir.sites.api.tables import Table

_FOREIGN = re.compile(r"^(?P<stem>[A-Za-z][A-Za-z0-9]*?)(?:_id|Id)$")


@dataclass(frozen=True)
class Relation:
    """`child.column` holds keys of `parent`."""

    child: str
    column: str
    parent: str

    @property
    def expand_name(self) -> str:
        """Where `_expand=column` puts the parent row: the column's name without `_id`/`Id`."""
        m = _FOREIGN.match(self.column)
        return m.group("stem") if m else self.parent


@dataclass(frozen=True)
class Relations:
    """Every relation of a site's tables."""

    all: tuple[Relation, ...] = ()

    def link(self, parent: str, child: str) -> Relation | None:
        """The relation by which `child` points to `parent` (the first, if several)."""
        return next((r for r in self.all if r.parent == parent and r.child == child), None)

    def parent_of(self, child: str, column: str) -> Relation | None:
        """The relation of `child.column`, if it points to a table."""
        return next((r for r in self.all if r.child == child and r.column == column), None)

    def children(self, parent: str) -> list[Relation]:
        """The relations pointing to `parent`."""
        return [r for r in self.all if r.parent == parent]


def parse_relation(text: str) -> tuple[str, str, str, str]:
    """`child.col=parent.key` → its four names (ValueError when malformed)."""
    left, eq, right = text.partition("=")
    child, dot1, column = left.strip().partition(".")
    parent, dot2, key = right.strip().partition(".")
    if not (eq and dot1 and dot2 and child and column and parent and key):
        raise ValueError(f"not a relation: {text!r} (write child.column=parent.key)")
    return child, column, parent, key


def find_relations(tables: Mapping[str, Table], declared: Sequence[str] = ()) -> Relations:
    """The relations among `tables`: declared ones (checked), then those found by name."""
    found: list[Relation] = []
    for text in declared:
        child_name, column, parent_name, key = parse_relation(text)
        for name in (child_name, parent_name):
            if name not in tables:
                raise ConfigError(f"--relation {text}: no table {name!r}")
        if column not in tables[child_name].columns:
            raise ConfigError(f"--relation {text}: no column {column!r} in {child_name!r}")
        parent_key = tables[parent_name].key
        if key != parent_key:
            raise ConfigError(f"--relation {text}: {parent_name!r}'s key is {parent_key!r}")
        found.append(Relation(child_name, column, parent_name))
    taken = {(r.child, r.column) for r in found}
    for child in tables.values():
        for column in child.columns:
            m = _FOREIGN.match(column)
            if m is None or (child.name, column) in taken or column == child.key:
                continue
            stem = m.group("stem").lower()
            for parent in tables.values():
                if parent.name == child.name or not _names(parent.name, stem):
                    continue
                if _all_keys(child, column, parent):
                    found.append(Relation(child.name, column, parent.name))
                    break
    return Relations(tuple(found))


def _names(table: str, stem: str) -> bool:
    name = table.lower()
    return name in (stem, stem + "s", stem + "es") or name.startswith((stem + "_", stem + "s_"))


def _all_keys(child: Table, column: str, parent: Table) -> bool:
    values = child.frame[column].drop_nulls()
    keys = parent.frame[parent.key]
    if values.dtype != keys.dtype:
        return False
    return bool(values.is_in(keys.implode()).all()) if len(values) else False


__all__ = ["Relation", "Relations", "find_relations", "parse_relation"]
