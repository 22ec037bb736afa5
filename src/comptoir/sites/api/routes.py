"""Custom routes: a documented API of your own over the tables, declared in sites.toml
(json-server's `routes.json`, grown up). Each `[[site.route]]` is one of:

    path = "/api/alive"                          # a fixed JSON body
    body = { message = "Alive" }

    path = "/api/associations"                   # a list: rows, or one column's values
    table = "associations"
    where = { type = "{type}" }                  # filters, as the query string's (`col__op`)
    pluck = "id"                                 # [1, 2, 3] instead of objects
    fields = ["id", "nom"]                       # only these columns

    path = "/api/association/{id:int}"           # one row by its key (an object)
    table = "associations"
    key = "{id}"
    not-found = { error = "Association not found" }   # the 404's JSON body

    path = "/api/association/{id:int}/evenements"
    table = "evenements"
    where = { association_id = "{id}" }
    require = { table = "associations", key = "{id}" }  # 404 (not-found) if that row is missing

Path parameters are `{name}` (one path segment) or `{name:int}` (digits: a path whose segment is
not a whole number matches no route, and gets 404 as any unknown path). A route answers GET (and
HEAD); custom routes are matched before the table routes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::(int|str))?\}")
_KEYS = frozenset(("path", "body", "table", "where", "pluck", "fields", "key", "not-found"))
_KEYS |= {"require", "not_found"}


@dataclass(frozen=True)
class Route:
    """One custom route (see the module docstring)."""

    path: str
    pattern: re.Pattern[str] = field(compare=False, repr=False)
    params: tuple[tuple[str, str], ...] = ()  # (name, int|str)
    body: Any = None
    table: str | None = None
    where: tuple[tuple[str, str], ...] = ()
    pluck: str | None = None
    fields: tuple[str, ...] = ()
    key: str | None = None
    not_found: Any = None
    require: tuple[str, str] | None = None  # (table, key template)

    def match(self, path: str) -> dict[str, Any] | None:
        """The path parameters if `path` is this route's, else None."""
        m = self.pattern.fullmatch(path)
        if m is None:
            return None
        out: dict[str, Any] = {}
        for name, kind in self.params:
            text = m.group(name)
            out[name] = int(text) if kind == "int" else text
        return out


def has_parameters(template: str) -> bool:
    """True when a template holds `{name}` parameters."""
    return _PARAM.search(template) is not None


def fill(template: str, params: Mapping[str, Any]) -> str:
    """A `{name}` template with the path's parameters in it."""
    return _PARAM.sub(lambda m: str(params[m.group(1)]), template)


def parse_route(table: Any) -> Route:
    """A Route from its TOML table (ValueError saying what is wrong)."""
    if not isinstance(table, Mapping):
        raise ValueError("each route is a table: [[site.route]] with path = ...")
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r} in a route")
    path = table.get("path")
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError("a route needs a path starting with /")
    pattern, params = _compile(path)
    names = {n for n, _ in params}
    body = table.get("body")
    target = table.get("table")
    if (body is None) == (target is None):
        raise ValueError(f"route {path}: give either body (a fixed answer) or table")
    if body is not None:
        json.dumps(body)  # TOML values are all JSON values
        return Route(path, pattern, params, body=body)
    if not isinstance(target, str):
        raise ValueError(f"route {path}: table must be a table's name")
    where = table.get("where", {})
    if not isinstance(where, Mapping) or not all(isinstance(v, str | int) for v in where.values()):
        raise ValueError(f"route {path}: where is a table of column = value")
    key = table.get("key")
    pluck = table.get("pluck")
    fields = table.get("fields", [])
    not_found = table.get("not-found", table.get("not_found"))
    require = table.get("require")
    required: tuple[str, str] | None = None
    if require is not None:
        if not isinstance(require, Mapping) or not {"table", "key"} <= set(require):
            raise ValueError(f"route {path}: require = {{ table = ..., key = ... }}")
        required = (str(require["table"]), str(require["key"]))
    templates = (
        [str(v) for v in where.values()] + [str(key or "")] + [required[1] if required else ""]
    )
    for text in templates:
        for m in _PARAM.finditer(text):
            if m.group(1) not in names:
                raise ValueError(f"route {path}: {{{m.group(1)}}} is not a parameter of its path")
    if key is not None and (pluck is not None or where):
        raise ValueError(f"route {path}: key (one row) goes with neither where nor pluck")
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise ValueError(f"route {path}: fields is a list of column names")
    return Route(
        path,
        pattern,
        params,
        table=target,
        where=tuple((str(k), str(v)) for k, v in where.items()),
        pluck=str(pluck) if pluck is not None else None,
        fields=tuple(fields),
        key=str(key) if key is not None else None,
        not_found=not_found,
        require=required,
    )


def _compile(path: str) -> tuple[re.Pattern[str], tuple[tuple[str, str], ...]]:
    params: list[tuple[str, str]] = []
    out = ""
    last = 0
    literal = _PARAM.sub("", path)
    if "{" in literal or "}" in literal:
        raise ValueError(f"route {path}: parameters are {{name}} or {{name:int}}")
    for m in _PARAM.finditer(path):
        out += re.escape(path[last : m.start()])
        name, kind = m.group(1), m.group(2) or "str"
        if name in {n for n, _ in params}:
            raise ValueError(f"route {path}: parameter {name} appears twice")
        out += f"(?P<{name}>[0-9]{{1,18}})" if kind == "int" else f"(?P<{name}>[^/]+)"
        params.append((name, kind))
        last = m.end()
    out += re.escape(path[last:])
    return re.compile(out), tuple(params)
