"""The api site's pages for browsers (Datasette's table view is the anchor): a table's rows with
sortable column headers, a filter form, facets, pages, links along relations and the curl line for
what is shown; a row with the rows pointing to it; `/docs`, Swagger UI on the site's OpenAPI
document (vendored in web/static/vendor: it works offline).

A browser asking for `/api/<table>` or `/api/<table>/<key>` (`Accept: text/html`) gets the page;
any other client the JSON, at the same URL. Every value is escaped by the templates.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, urlencode

from comptoir.sites.api.output import jsonable
from comptoir.sites.api.query import OPERATORS, Query, type_name
from comptoir.sites.api.relations import Relations
from comptoir.sites.api.tables import Table
from comptoir.web import render

# The filter form's fields, turned into a real filter parameter (app.py redirects).
FORM_FIELDS = ("_column", "_op", "_value")


def form_target(pairs: Sequence[tuple[str, str]]) -> list[tuple[str, str]] | None:
    """The query a submitted filter form stands for (its three fields made one `col__op=value`),
    or None when the request is no form submission."""
    given = dict(p for p in pairs if p[0] in FORM_FIELDS)
    if "_column" not in given:
        return None
    kept = [(k, v) for k, v in pairs if k not in FORM_FIELDS and k not in ("_page", "_offset")]
    kept = [(k, v) for k, v in kept if not (k == "q" and not v)]
    column, op, value = given.get("_column", ""), given.get("_op", ""), given.get("_value", "")
    if column and (value or op == "isnull"):
        kept.append((f"{column}__{op}" if op else column, value or "true"))
    return kept


def _text(value: Any) -> tuple[str, bool]:
    shown = jsonable(value)
    if shown is None:
        return "null", True
    if isinstance(shown, bool):
        return ("true" if shown else "false"), False
    return str(shown), False


def _url(path: str, pairs: Sequence[tuple[str, str]]) -> str:
    return path + ("?" + urlencode(list(pairs)) if pairs else "")


def table_page(
    *,
    prefix: str,
    path: str,
    table: Table,
    relations: Relations,
    pairs: Sequence[tuple[str, str]],
    query: Query,
    rows: list[dict[str, Any]],
    total: int,
    facets: dict[str, Any],
    title: str,
    parent: dict[str, str] | None = None,
    host: str = "localhost",
    scheme: str = "http",
) -> bytes:
    """The page of a table's rows (or of a row's children)."""
    base = prefix + path
    kept = [(k, v) for k, v in pairs if k not in ("_page", "_offset")]
    columns = query.fields or table.columns
    sorted_by = dict(query.sort)
    column_info = []
    for name in columns:
        desc = sorted_by.get(name)
        flipped = f"-{name}" if desc is False else name
        sort_pairs = [(k, v) for k, v in kept if k != "_sort"] + [("_sort", flipped)]
        column_info.append(
            {
                "name": name,
                "type": type_name(table.dtype(name)),
                "sort_url": _url(base, sort_pairs),
                "sorted": None if desc is None else ("descending" if desc else "ascending"),
            }
        )
    links = {r.column: r for r in relations.all if r.child == table.name}
    body_rows = []
    for row in rows:
        cells = []
        for name in columns:
            text, null = _text(row.get(name))
            url = None
            if name == table.key:
                url = f"{prefix}/api/{quote(table.name)}/{quote(text)}"
            elif name in links and not null:
                url = f"{prefix}/api/{quote(links[name].parent)}/{quote(text)}"
            cells.append({"text": text, "null": null, "url": url})
        body_rows.append(cells)
    filters = []
    for i, (k, v) in enumerate(pairs):
        if k.startswith("_") or k in ("_page", "_offset"):
            continue
        rest = [p for j, p in enumerate(pairs) if j != i and p[0] not in ("_page", "_offset")]
        filters.append((f"{k} = {v}", _url(base, rest)))
    facet_info = {}
    for column, values in facets.items():
        facet_info[column] = [
            {
                "label": _text(f["value"])[0],
                "count": f["count"],
                "url": _url(
                    base,
                    [*kept, (column + "__isnull", "true")]
                    if f["value"] is None
                    else [*kept, (column, _text(f["value"])[0])],
                ),
            }
            for f in values
        ]
    limit = query.limit or len(rows)
    page = query.offset // limit if limit else 0
    prev_url = _url(base, [*kept, ("_page", str(page))]) if page > 0 else None
    more = query.offset + len(rows) < total
    next_url = _url(base, [*kept, ("_page", str(page + 2))]) if more else None
    curl_pairs = [(k, v) for k, v in pairs if k not in FORM_FIELDS]
    return render(
        "api_table.html",
        prefix=prefix,
        table=table.name,
        title=title,
        parent=parent,
        total=total,
        first=query.offset + 1,
        last=query.offset + len(rows),
        columns=column_info,
        rows=body_rows,
        facets=facet_info,
        filters=filters,
        kept=[
            (k, v) for k, v in kept if k in ("_sort", "_limit", "_fields") or k.startswith("_facet")
        ],
        operators=("", *OPERATORS),
        column=None,
        operator="",
        q=next((v for k, v in pairs if k == "q"), ""),
        prev_url=prev_url,
        next_url=next_url,
        csv_url=_url(base + ".csv", curl_pairs),
        json_url=_url(base + ".json", curl_pairs),
        curl="curl " + shlex.quote(_url(f"{scheme}://{host}{base}", curl_pairs)),
    ).encode()


def row_page(
    *,
    prefix: str,
    table: Table,
    relations: Relations,
    row: dict[str, Any],
    host: str,
    scheme: str = "http",
) -> bytes:
    """The page of one row, and the tables pointing to it."""
    key_text = _text(row[table.key])[0]
    links = {r.column: r for r in relations.all if r.child == table.name}
    cells = []
    for name in table.columns:
        text, null = _text(row.get(name))
        url = None
        if name in links and not null:
            url = f"{prefix}/api/{quote(links[name].parent)}/{quote(text)}"
        cells.append({"name": name, "text": text, "null": null, "url": url})
    here = f"{prefix}/api/{quote(table.name)}/{quote(key_text)}"
    children = [
        (f"{r.child} (by {r.column})", f"{here}/{quote(r.child)}")
        for r in relations.children(table.name)
    ]
    return render(
        "api_row.html",
        prefix=prefix,
        table=table.name,
        table_url=f"{prefix}/api/{quote(table.name)}",
        key=key_text,
        cells=cells,
        children=children,
        curl="curl " + shlex.quote(f"{scheme}://{host}{here}"),
    ).encode()


def curl_line(scheme: str, host: str, path: str) -> str:
    """A shell line fetching `path` (quoted for the shell, whatever the Host header held)."""
    return "curl " + shlex.quote(f"{scheme}://{host}{path}")


def docs_page(prefix: str) -> bytes:
    """`/docs`: Swagger UI on the site's OpenAPI document."""
    return render("api_docs.html", prefix=prefix).encode()
