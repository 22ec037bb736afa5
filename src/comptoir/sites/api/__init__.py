"""`api`: CSV files as a JSON REST API (Datasette and json-server, grown up).

Each data file is a table (tables.py), queried through the query string (query.py), written as
JSON, CSV or JSON lines (output.py), with relations between tables (relations.py), custom routes
declared in sites.toml (routes.py), and an OpenAPI document (openapi.py). The app is app.py.
With `--write`, writes (writes.py) change the rows (changes.py), each saved in the table's journal
(journal.py) before its answer and in its file soon after (live.py).
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from comptoir.config import ServerOptions
from comptoir.settings import setting
from comptoir.sites.api.routes import Route, parse_route
from comptoir.sites.contract import DemoContext, DemoSite, Problem, SiteContext, SiteKind

if TYPE_CHECKING:
    from comptoir.sites.api.files import Schema
    from comptoir.sites.api.starting import ApiApp
    from comptoir.sites.api.tables import Table


@dataclass(frozen=True)
class ApiOptions:
    """Options of an api site."""

    data: tuple[Path, ...] = setting(
        (), "CSV/TSV files (also Parquet, JSON lines) or folders of them.", argument="data"
    )
    table: tuple[str, ...] = setting(
        (), "Name a file's table: NAME=PATH (default: the file's name, slugged). Repeatable."
    )
    id: tuple[str, ...] = setting(
        (),
        "Key column, for every table that has it or as TABLE.COLUMN (default: a unique `id`, "
        "else the row number `rowid`). Repeatable.",
    )
    type: tuple[str, ...] = setting(
        (),
        "A column's type instead of the inferred one: [TABLE.]COLUMN=integer|float|boolean|date|"
        "datetime|string. Repeatable.",
    )
    relation: tuple[str, ...] = setting(
        (),
        "A relation the names do not tell: CHILD.COLUMN=PARENT.KEY. Repeatable.",
    )
    strict: bool = setting(
        False, "Refuse a file with malformed rows (else they are left out).", flag_only=True
    )
    write: bool = setting(
        False,
        "Take writes: POST, PUT, PATCH and DELETE under /api/ (each saved to disk before its "
        "answer, and in the file within about a second).",
        flag_only=True,
    )
    cors: tuple[str, ...] = setting(
        (),
        "An origin whose pages may write (e.g. http://localhost:5173); reads answer any origin. "
        "Repeatable.",
    )
    default_limit: int = setting(100, "Rows per page when _limit is not given.", minimum=1)
    max_limit: int = setting(1000, "Largest _limit (exports take _limit=all).", minimum=1)
    route: tuple[Route, ...] = setting(
        (), "Custom routes ([[site.route]] tables in sites.toml).", cli=False, table=parse_route
    )

    def table_sources(self) -> list[tuple[str, Path]]:
        """(table name, data file) for every data file, names as given or made from the files'
        names (two files may give one name: `validate` refuses that)."""
        from comptoir.sites.api.files import data_files, table_name

        renamed: dict[Path, str] = {}
        for text in self.table:
            name, _, where = text.partition("=")
            renamed[Path(where).expanduser().resolve()] = name
        return [
            (renamed.get(path.resolve()) or table_name(path), path)
            for path in data_files(self.data)
        ]

    def table_files(self) -> dict[str, Path]:
        """Table name → data file."""
        return dict(self.table_sources())

    def keys(self) -> dict[str, str]:
        """Table name → key column given with --id."""
        out: dict[str, str] = {}
        names = list(self.table_files())
        for text in self.id:
            table, dot, column = text.rpartition(".")
            for name in [table] if dot else names:
                out[name] = column
        return out

    def column_types(self) -> dict[str, dict[str, str]]:
        """Table name → {column: type} given with --type."""
        out: dict[str, dict[str, str]] = {}
        names = list(self.table_files())
        for text in self.type:
            target, _, kind = text.partition("=")
            table, dot, column = target.rpartition(".")
            for name in [table] if dot else names:
                out.setdefault(name, {})[column] = kind
        return out


def build(options: ApiOptions, context: SiteContext) -> ApiApp:
    """Build the ASGI app of an api site: the tables are read now, or, when the cache has them
    all, while it already answers rows by key (starting.py)."""
    from comptoir.sites.api.starting import ApiApp

    return_memory_soon()
    return ApiApp(options, context)


# Polars' allocator (jemalloc) keeps freed pages for 10 s by default: the temporaries of a
# query's indexes stayed in the worker's memory on top of the next ones, to 3.05x the CSV at
# the first filtered query. Returned after 100 ms, the peak is 2.88x; returned at once, 2.66x,
# but an export, which frees and takes again the same memory for each chunk, lost a quarter of
# its speed (docs/decisions.md).
ALLOCATOR = ("_RJEM_MALLOC_CONF", "dirty_decay_ms:100,muzzy_decay_ms:0")


def return_memory_soon() -> None:
    """Polars' allocator told to give freed memory back soon (unless the user set it): read
    when Polars first allocates, so called before Polars is imported — in the main process
    (validate) and in workers (build) — and it does nothing once it was."""
    os.environ.setdefault(*ALLOCATOR)


def validate(options: ApiOptions, server: ServerOptions) -> list[Problem]:
    """What stops the site before any file is read: missing data, bad names, routes to nowhere."""
    return_memory_soon()
    from comptoir.sites.api.files import SUFFIXES, TYPE_NAMES
    from comptoir.sites.api.relations import parse_relation

    problems: list[Problem] = []
    if not options.data:
        return [Problem("data", "give at least one CSV file or folder")]
    for path in options.data:
        if not path.exists():
            problems.append(Problem("data", f"not found: {path}"))
        elif path.is_file() and path.suffix.lower() not in SUFFIXES:
            problems.append(Problem("data", f"not a CSV, TSV, Parquet or JSON lines file: {path}"))
    for text in options.table:
        name, eq, where = text.partition("=")
        if not eq or not name or not Path(where).expanduser().is_file():
            problems.append(Problem("table", f"{text!r}: write NAME=PATH of a data file"))
    for text in options.type:
        _, eq, kind = text.partition("=")
        if not eq or kind not in TYPE_NAMES:
            problems.append(
                Problem("type", f"{text!r}: write COLUMN=TYPE, TYPE one of {', '.join(TYPE_NAMES)}")
            )
    for text in options.relation:
        try:
            parse_relation(text)
        except ValueError as exc:
            problems.append(Problem("relation", str(exc)))
    for origin in options.cors:
        if not re.fullmatch(r"(https?://[^/\s]+|null)/?", origin, re.I):
            problems.append(
                Problem(
                    "cors", f"{origin!r}: write an origin, scheme and host (https://example.org)"
                )
            )
    if problems:
        return problems
    names = options.table_files()
    if not names:
        problems.append(Problem("data", "no CSV, TSV, Parquet or JSON lines file found"))
    if options.write:
        for folder in sorted({path.resolve().parent for path in names.values()}):
            if not os.access(folder, os.W_OK):
                problems.append(
                    Problem("write", f"{folder}: not writable (--write saves next to the files)")
                )
    seen: dict[str, Path] = {}
    for name, path in options.table_sources():
        if name in seen:
            problems.append(
                Problem(
                    "data",
                    f"{seen[name]} and {path} both make table {name!r}: name one with "
                    f"--table NAME={path}",
                )
            )
        seen[name] = path
    if problems:
        return problems
    # The files are read by Polars, whose threads a forked process cannot use: never in this
    # process (the workers are its forks). What the cache kept of them when they were last read
    # is enough (their columns); a file not read as it is now is read in a fresh process, which
    # only reports (and leaves the rows it read in the cache, for the workers).
    tables = _cached_tables(options)
    if tables is not None:
        problems.extend(route_problems(options, tables))
        return problems
    from comptoir.sites.api.probe import probe

    problems.extend(probe(options))
    return problems


def _cached_tables(options: ApiOptions) -> Mapping[str, Table | Schema] | None:
    """Every table's columns, from the cache; None unless all are there. Without Polars (a
    worker forked from this process starts sooner without it: starting.py), unless a route
    filters on a value whose type must be checked: then tables of no rows."""
    from comptoir.sites.api import cache
    from comptoir.sites.api.files import TYPE_NAMES, Schema
    from comptoir.sites.api.routes import has_parameters

    entries: dict[str, tuple[Path, cache.Entry]] = {}
    keys = options.keys()
    types = options.column_types()
    for name, path in options.table_sources():
        entry = cache.lookup(path, key=keys.get(name), types=types.get(name), strict=options.strict)
        if entry is None or not set(entry.columns.values()) <= set(TYPE_NAMES):
            return None
        entries[name] = (path, entry)
    if all(has_parameters(value) for route in options.route for _, value in route.where):
        return {
            name: Schema(name, list(entry.columns), entry.meta["key"])
            for name, (_, entry) in entries.items()
        }
    from comptoir.sites.api.tables import schema_exact, schema_table

    tables: dict[str, Table | Schema] = {}
    for name, (path, entry) in entries.items():
        if not schema_exact(entry):
            return None  # types the check could not make as they are: the file is read
        tables[name] = schema_table(name, path, entry)
    return tables


def read_problems(options: ApiOptions) -> list[Problem]:
    """What reading every table finds (a file that cannot be a table), and what the routes ask
    of the tables that they do not have. Run in a process of its own (`validate`)."""
    from comptoir.errors import ConfigError
    from comptoir.sites.api.tables import load_table

    problems: list[Problem] = []
    tables: dict[str, Table] = {}
    keys = options.keys()
    types = options.column_types()
    for name, path in options.table_sources():
        try:
            tables[name] = load_table(
                name, path, key=keys.get(name), types=types.get(name), strict=options.strict
            )
        except ConfigError as exc:
            problems.append(Problem("data", str(exc)))
    return problems + route_problems(options, tables)


def route_problems(options: ApiOptions, tables: Mapping[str, Table | Schema]) -> list[Problem]:
    """What the routes and declared relations ask of the tables that they do not have."""
    from comptoir.sites.api.relations import parse_relation

    problems: list[Problem] = []
    names = options.table_files()
    for text in options.relation:
        child, column, parent, key = parse_relation(text)
        unknown = [name for name in (child, parent) if name not in names]
        if unknown:
            problems.append(Problem("relation", f"{text}: no table {unknown[0]!r}"))
        elif child not in tables or parent not in tables:
            continue  # a file that could not be read: said already
        elif column not in tables[child].columns:
            problems.append(Problem("relation", f"{text}: no column {column!r} in {child!r}"))
        elif key != tables[parent].key:
            message = f"{text}: {parent!r}'s key is {tables[parent].key!r}"
            problems.append(Problem("relation", message))
    declared: list[str] = []
    for i, route in enumerate(options.route):
        found = _route_problems(route, tables, names)
        if route.path in declared:
            found.append(Problem("route", f"{route.path}: declared twice"))
        declared.append(route.path)
        problems.extend(dataclasses.replace(p, item=i) for p in found)
    return problems


def _route_problems(
    route: Route, tables: Mapping[str, Table | Schema], names: Mapping[str, Path]
) -> list[Problem]:
    """What a route asks of its tables that they do not have."""
    from comptoir.sites.api.files import Schema
    from comptoir.sites.api.routes import has_parameters

    out: list[Problem] = []
    for name in [route.table, route.require[0] if route.require else None]:
        if name is not None and name not in names:
            known = ", ".join(sorted(names)) or "none"
            out.append(Problem("route", f"{route.path}: no table {name!r} (tables: {known})"))
    table = tables.get(route.table or "")
    if table is None:
        return out
    columns = [c for c, _ in route.where] + list(route.fields)
    columns += [route.pluck] if route.pluck else []
    for column in columns:
        if column not in table.columns:
            out.append(Problem("route", f"{route.path}: no column {column!r} in {table.name!r}"))
    for column, value in route.where:
        if column in table.columns and not has_parameters(value):
            from comptoir.sites.api.query import QueryError, typed

            # A value to check makes tables of their type (`_cached_tables`), not names.
            assert not isinstance(table, Schema)
            try:
                typed(table, column, value, column)
            except QueryError as exc:
                out.append(Problem("route", f"{route.path}: where {exc.message}"))
    return out


async def startup(app: ApiApp) -> None:
    """Changes a crash left in a journal go into their files."""
    await app.start()


async def shutdown(app: ApiApp) -> None:
    """Every write in its file before the worker ends (the journals removed)."""
    await app.close()


def url_suffix(options: ApiOptions) -> str:
    """The front page is the site's root."""
    return ""


def banner(options: ApiOptions) -> list[str]:
    """The tables, by name, under the site's URL."""
    names = sorted(options.table_files())
    return [f"tables: {', '.join(names)} (JSON at /api/<table>, OpenAPI at /openapi.json)"]


def _sample() -> Path:
    return Path(str(resources.files("comptoir.sites.api") / "sample"))


def _demo_options(demo: DemoContext) -> ApiOptions:
    from comptoir.sites.api.routes import parse_route

    return ApiOptions(data=(_sample(),), route=tuple(parse_route(r) for r in COURSE_ROUTES))


# The course's documented API (examples/assocapi/sites.toml declares the same routes).
COURSE_ROUTES: tuple[Mapping[str, object], ...] = (
    {"path": "/api/alive", "body": {"message": "Alive"}},
    {"path": "/api/associations", "table": "associations_etudiantes", "pluck": "id"},
    {
        "path": "/api/association/{id:int}",
        "table": "associations_etudiantes",
        "key": "{id}",
        "not-found": {"error": "Association not found"},
    },
    {"path": "/api/evenements", "table": "evenements_associations", "pluck": "id"},
    {
        "path": "/api/evenement/{id:int}",
        "table": "evenements_associations",
        "key": "{id}",
        "not-found": {"error": "Event not found"},
    },
    {
        "path": "/api/association/{id:int}/evenements",
        "table": "evenements_associations",
        "where": {"association_id": "{id}"},
        "require": {"table": "associations_etudiantes", "key": "{id}"},
        "not-found": {"error": "Association not found"},
    },
    {
        "path": "/api/associations/type/{type}",
        "table": "associations_etudiantes",
        "where": {"type": "{type}"},
    },
)

DEMO = (
    DemoSite(
        "api",
        "sample CSV files (student associations and their events) as a JSON API with filters, "
        "relations and the course's own routes (`/api/association/1`), as `comptoir api` does.",
        _demo_options,
    ),
)

KIND = SiteKind(
    name="api",
    options=ApiOptions,
    build=build,
    command="api",
    help="Serve CSV files (or folders of them) as a JSON REST API with filters and OpenAPI.",
    demo=DEMO,
    validate=validate,
    startup=startup,
    shutdown=shutdown,
    url_suffix=url_suffix,
    banner=banner,
    fds_per_connection=2,  # the socket; the folder a write syncs (rows: files opened once)
)
