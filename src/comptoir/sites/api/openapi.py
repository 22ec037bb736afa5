"""The OpenAPI 3.1 document of an api site, made from its tables as they are: one schema per table
(column types, every column nullable: an empty cell is null), the list, row and relation paths
with every query parameter, the custom routes, and the error shapes."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from comptoir import __version__
from comptoir.sites.api.query import OPERATORS, type_name
from comptoir.sites.api.relations import Relations
from comptoir.sites.api.tables import Table, integer_range

# A time as the API writes it and reads it: no time zone, so not JSON Schema's `date-time`
# (RFC 3339 asks for one). Days past a month's end left out, as are 29 Februarys (a pattern
# cannot tell leap years); seconds and fractions optional.
_DAY = (
    "([1-9][0-9]{3}-((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])"
    "|(0[469]|11)-(0[1-9]|[12][0-9]|30)|02-(0[1-9]|1[0-9]|2[0-8])))"
)
NAIVE_TIME = f"^{_DAY}T([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\\.[0-9]{{6}})?)?$"
_SCHEMA_TYPES: dict[str, dict[str, Any]] = {
    "integer": {"type": "integer"},
    "float": {"type": "number"},
    "boolean": {"type": "boolean"},
    "date": {"type": "string", "format": "date"},
    "datetime": {"type": "string", "pattern": NAIVE_TIME, "examples": ["2024-05-01T10:30:00"]},
    "string": {"type": "string"},
}
_ERROR = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "parameter": {"type": "string"}},
    "required": ["error"],
}


def _value_schema(table: Table, column: str) -> dict[str, Any]:
    """A value of the column: its type, and an integer column's range (a larger one is a 400 in
    a query, a 422 in a body)."""
    dtype = table.dtype(column)
    schema: dict[str, Any] = dict(_SCHEMA_TYPES[type_name(dtype)])
    if dtype.is_integer():
        schema["minimum"], schema["maximum"] = integer_range(dtype)
    return schema


def _column_schema(table: Table, column: str) -> dict[str, Any]:
    base = _value_schema(table, column)
    base["type"] = [base["type"], "null"]
    return base


def _names(names: list[str]) -> str:
    """A pattern matching one of `names` exactly."""
    return "(" + "|".join(re.escape(n) for n in names) + ")"


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _param(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


_ETAG = {"description": "the row's entity tag, for If-Match", "schema": {"type": "string"}}


def _values_schema(table: Table) -> dict[str, Any]:
    """What a write's body may hold: columns of the table, each of its type or null."""
    return {
        "type": "object",
        "properties": {
            c: _column_schema(table, c)
            for c in table.columns
            if not (table.source.rowid and c == table.key)
        },
        "additionalProperties": False,
    }


def _body(
    table: Table, description: str, media: tuple[str, ...], *, posted: bool = False
) -> dict[str, Any]:
    schema: dict[str, Any] = {"$ref": f"#/components/schemas/{table.name}_values"}
    if posted and not table.dtype(table.key).is_integer() and not table.source.rowid:
        # Only integer keys are given by the server: a posted row of another key brings it.
        key = {"properties": {table.key: _value_schema(table, table.key)}, "required": [table.key]}
        schema = {"allOf": [schema, key]}
    return {
        "required": True,
        "description": description,
        "content": {m: {"schema": schema} for m in media},
    }


def _written(ref: dict[str, Any], description: str, **headers: Any) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {"ETag": _ETAG, **headers},
        "content": {"application/json": {"schema": ref}},
    }


_REFUSED = {
    "400": _error("a body that is not JSON, or nested too deeply"),
    "403": _error("a browser's write from an origin not given with --cors"),
    "413": _error("a body over 1 MiB"),
    "415": _error("a body that is not application/json"),
    "422": {
        "description": "values not of their column's type, or columns the table does not have",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "error": {"type": "string"},
                        "fields": {"type": "object", "additionalProperties": {"type": "string"}},
                    },
                    "required": ["error"],
                }
            }
        },
    },
}


def _post(table: Table, ref: dict[str, Any]) -> dict[str, Any]:
    given = "one more than the largest" if table.dtype(table.key).is_integer() else "required"
    return {
        "summary": f"Add a row to {table.name} ({table.key}: {given} when absent)",
        "operationId": f"create_{table.name}",
        "requestBody": _body(
            table, "the row's values (absent columns: null)", ("application/json",), posted=True
        ),
        "responses": {
            "201": _written(
                ref,
                "the row as stored, its key given",
                Location={"description": "the row's URL", "schema": {"type": "string"}},
            ),
            **_REFUSED,
            "404": _error("no such table"),
            "409": _error("a row with that key exists"),
        },
    }


def _row_writes(table: Table, ref: dict[str, Any], key_schema: dict[str, Any]) -> dict[str, Any]:
    params = [
        {"name": "key", "in": "path", "required": True, "schema": key_schema},
        {
            "name": "If-Match",
            "in": "header",
            "required": False,
            "description": "the row's ETag as read: the write is refused (412) if it changed",
            "schema": {"type": "string"},
        },
    ]
    missing = {"404": _error("no such row"), "412": _error("the row changed (If-Match)")}
    return {
        "put": {
            "summary": f"Replace a row of {table.name} (absent columns: null)",
            "operationId": f"replace_{table.name}",
            "parameters": params,
            "requestBody": _body(table, "the row's values", ("application/json",)),
            "responses": {
                "200": _written(ref, "the row as stored"),
                **_REFUSED,
                **missing,
                "409": _error("a key in the body that is not the row's"),
            },
        },
        "patch": {
            "summary": f"Change some columns of a row of {table.name}",
            "operationId": f"update_{table.name}",
            "parameters": params,
            "requestBody": _body(
                table,
                "the columns to change",
                ("application/json", "application/merge-patch+json"),
            ),
            "responses": {
                "200": _written(ref, "the row as stored"),
                **_REFUSED,
                **missing,
                "409": _error("a key in the body that is not the row's"),
            },
        },
        "delete": {
            "summary": f"Delete a row of {table.name}",
            "operationId": f"delete_{table.name}",
            "parameters": params,
            "responses": {
                "204": {"description": "deleted"},
                "403": _REFUSED["403"],
                **missing,
            },
        },
    }


def _list_parameters(table: Table, relations: Relations, max_limit: int) -> list[dict[str, Any]]:
    column = _names(table.columns)
    whole = {"type": "integer", "minimum": 0, "maximum": 10**12 - 1}  # at most 12 digits
    params = [
        _param("q", "any text column contains this (case-insensitive)", {"type": "string"}),
        _param(
            "_sort",
            "columns to sort by, comma-separated; `-` first for descending",
            {"type": "string", "pattern": f"^-?{column}(,-?{column})*$"},
        ),
        _param("_limit", "rows per page", {"type": "integer", "minimum": 0, "maximum": max_limit}),
        _param("_offset", "rows to skip", whole),
        _param("_page", "page number, from 1", {**whole, "minimum": 1}),
        _param("_after", "keyset paging: the rows after this key", _value_schema(table, table.key)),
        _param(
            "_fields",
            "only these columns, comma-separated",
            {"type": "string", "pattern": f"^{column}(,{column})*$"},
        ),
        _param("_facet", "count the rows per value of this column", {"enum": list(table.columns)}),
    ]
    children = [r.child for r in relations.children(table.name)]
    if children:
        what = "nest the rows of a table pointing to each row"
        params.append(_param("_embed", what, {"enum": children}))
    parents = [r.column for r in relations.all if r.child == table.name]
    if parents:
        params.append(_param("_expand", "nest the row a column points to", {"enum": parents}))
    for name in table.columns:
        value = _value_schema(table, name)
        params.append(_param(name, f"{name} equals (repeat: any of the values)", value))
        for op in OPERATORS:
            schema = value
            if op in ("contains", "icontains", "startswith"):
                schema = {"type": "string"}
            elif op == "isnull":
                schema = {"type": "boolean"}
            param = _param(f"{name}__{op}", f"{name} {op}", schema)
            if op == "in":
                # `col__in=a,b,c`: a list written as one value, comma-separated.
                param.update(style="form", explode=False)
                param["schema"] = {"type": "array", "items": value, "minItems": 1}
            params.append(param)
    return params


def openapi_document(
    tables: Mapping[str, Table], relations: Relations, options: Any, prefix: str
) -> dict[str, Any]:
    """The whole document (a JSON object)."""
    schemas: dict[str, Any] = {"Error": _ERROR}
    paths: dict[str, Any] = {}
    for table in tables.values():
        ref = {"$ref": f"#/components/schemas/{table.name}"}
        schemas[table.name] = {
            "type": "object",
            "properties": {c: _column_schema(table, c) for c in table.columns},
        }
        key_schema = _value_schema(table, table.key)
        rows = {"type": "array", "items": ref}
        paths[f"/api/{table.name}"] = {
            "get": {
                "summary": f"Rows of {table.name}",
                "operationId": f"list_{table.name}",
                "parameters": _list_parameters(table, relations, options.max_limit),
                "responses": {
                    "200": {
                        "description": "the rows (an object with `rows` and `facets` when "
                        "`_facet` is given)",
                        "headers": {
                            "X-Total-Count": {"schema": {"type": "integer"}},
                            "Link": {"schema": {"type": "string"}},
                        },
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        rows,
                                        {
                                            "type": "object",
                                            "properties": {
                                                "rows": rows,
                                                "facets": {
                                                    "type": "object",
                                                    "additionalProperties": {"type": "array"},
                                                },
                                                "total": {"type": "integer"},
                                            },
                                            "required": ["rows", "facets"],
                                        },
                                    ]
                                }
                            },
                            "text/csv": {"schema": {"type": "string"}},
                            "application/x-ndjson": {"schema": {"type": "string"}},
                        },
                    },
                    "400": _error("a parameter the table cannot take (named in `parameter`)"),
                    "404": _error("no such table"),
                },
            }
        }
        paths[f"/api/{table.name}/{{key}}"] = {
            "get": {
                "summary": f"One row of {table.name}, by {table.key}",
                "operationId": f"get_{table.name}",
                "parameters": [
                    {"name": "key", "in": "path", "required": True, "schema": key_schema}
                ],
                "responses": {
                    "200": {
                        "description": "the row",
                        "headers": {"ETag": _ETAG},
                        "content": {"application/json": {"schema": ref}},
                    },
                    "404": _error("no such row"),
                },
            }
        }
        if options.write:
            schemas[f"{table.name}_values"] = _values_schema(table)
            paths[f"/api/{table.name}"]["post"] = _post(table, ref)
            paths[f"/api/{table.name}/{{key}}"].update(_row_writes(table, ref, key_schema))
        for relation in relations.children(table.name):
            child_ref = {"$ref": f"#/components/schemas/{relation.child}"}
            paths[f"/api/{table.name}/{{key}}/{relation.child}"] = {
                "get": {
                    "summary": f"Rows of {relation.child} whose {relation.column} is this row",
                    "operationId": f"list_{relation.child}_of_{table.name}",
                    "parameters": [
                        {"name": "key", "in": "path", "required": True, "schema": key_schema},
                    ],
                    "responses": {
                        "200": {
                            "description": "the rows",
                            "content": {
                                "application/json": {
                                    "schema": {"type": "array", "items": child_ref}
                                }
                            },
                        },
                        "404": _error("no such row"),
                    },
                }
            }
    for route in options.route:
        params = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": {"type": "integer"} if kind == "int" else {"type": "string"},
            }
            for name, kind in route.params
        ]
        responses: dict[str, Any] = {
            "200": {"description": "the answer", "content": {"application/json": {"schema": {}}}}
        }
        if route.table is not None:
            responses["404"] = {
                "description": "not found",
                "content": {"application/json": {"schema": {}}},
            }
        paths[re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)] = {
            "get": {
                "summary": f"Custom route {route.path}",
                "parameters": params,
                "responses": responses,
            }
        }
    return {
        "openapi": "3.1.0",
        "info": {"title": "comptoir api", "version": __version__},
        "servers": [{"url": prefix or "/"}],
        "paths": paths,
        "components": {"schemas": schemas},
    }
