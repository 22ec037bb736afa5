"""The course's API the way the exercise is usually solved: FastAPI routes over pandas DataFrames
read from the CSV files at import. A peer of `comptoir api` in bench/run.py, not part of comptoir.

    COURSE_DATA=examples/assocapi BENCH_TABLE=bench/.api-data/.../items.csv \\
        bench/.venv-peers/bin/uvicorn --app-dir bench fastapi_course:app --port 8001

COURSE_DATA: a folder with associations_etudiantes.csv and evenements_associations.csv (the
course's routes, README's table); BENCH_TABLE (optional): the benchmark's large table, served
with the few generic routes the benchmark loads, written the same way:

    GET /api/items/{id}                  one row (a boolean mask on the id column)
    GET /api/items?city=&active=&category_id=&_sort=[-]col&_limit=&_after=&_facet=
    GET /api/items.csv                   the whole table as CSV (DataFrame.to_csv)

Routes are plain `def` functions (FastAPI runs them in its thread pool), rows go out through
`to_dict(orient="records")` with NaN turned into None (JSON has no NaN): what course solutions
and most tutorials do. Nothing here is tuned; it is the usual code, for the usual figures.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
from fastapi import FastAPI, Query
from fastapi.responses import JSONResponse, Response

COURSE = Path(os.environ.get("COURSE_DATA", "examples/assocapi"))
associations = pd.read_csv(COURSE / "associations_etudiantes.csv")
evenements = pd.read_csv(COURSE / "evenements_associations.csv")
items = pd.read_csv(os.environ["BENCH_TABLE"]) if os.environ.get("BENCH_TABLE") else None

app = FastAPI(title="Associations")


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts (NaN, which JSON cannot carry, as None)."""
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")


def not_found(message: str) -> JSONResponse:
    """The course's 404 body."""
    return JSONResponse({"error": message}, status_code=404)


# --- the course's routes -----------------------------------------------------------------------


@app.get("/api/alive")
def alive() -> dict[str, str]:
    """Whether the API answers."""
    return {"message": "Alive"}


@app.get("/api/associations")
def association_ids() -> list[int]:
    """The associations' ids."""
    return associations["id"].tolist()


@app.get("/api/association/{id}", response_model=None)
def association(id: int) -> dict[str, Any] | JSONResponse:
    """One association, or 404."""
    found = associations[associations["id"] == id]
    if found.empty:
        return not_found("Association not found")
    return records(found)[0]


@app.get("/api/evenements")
def evenement_ids() -> list[int]:
    """The events' ids."""
    return evenements["id"].tolist()


@app.get("/api/evenement/{id}", response_model=None)
def evenement(id: int) -> dict[str, Any] | JSONResponse:
    """One event, or 404."""
    found = evenements[evenements["id"] == id]
    if found.empty:
        return not_found("Event not found")
    return records(found)[0]


@app.get("/api/association/{id}/evenements", response_model=None)
def association_evenements(id: int) -> list[dict[str, Any]] | JSONResponse:
    """An association's events (404 if the association does not exist)."""
    if associations[associations["id"] == id].empty:
        return not_found("Association not found")
    return records(evenements[evenements["association_id"] == id])


@app.get("/api/associations/type/{type}")
def associations_of_type(type: str) -> list[dict[str, Any]]:
    """The associations of one type."""
    return records(associations[associations["type"] == type])


# --- the benchmark's table, the same way -------------------------------------------------------


def _items() -> pd.DataFrame:
    if items is None:
        raise RuntimeError("BENCH_TABLE is not set")
    return items


@app.get("/api/items.csv")
def items_csv() -> Response:
    """The whole table as CSV."""
    return Response(_items().to_csv(index=False), media_type="text/csv")


@app.get("/api/items/{id}", response_model=None)
def item(id: int) -> dict[str, Any] | JSONResponse:
    """One row, or 404."""
    frame = _items()
    found = frame[frame["id"] == id]
    if found.empty:
        return not_found("Item not found")
    return records(found)[0]


@app.get("/api/items", response_model=None)
def item_list(
    city: str | None = None,
    active: bool | None = None,
    category_id: int | None = None,
    sort: str | None = Query(None, alias="_sort"),
    limit: int = Query(100, alias="_limit", ge=0, le=1000),
    after: int | None = Query(None, alias="_after"),
    facet: str | None = Query(None, alias="_facet"),
) -> list[dict[str, Any]] | dict[str, Any] | JSONResponse:
    """Rows filtered by equality, sorted, a page of them; `_after`: the rows after that id;
    `_facet`: the most frequent values of a column with their counts."""
    frame = _items()
    if city is not None:
        frame = frame[frame["city"] == city]
    if active is not None:
        frame = frame[frame["active"] == active]
    if category_id is not None:
        frame = frame[frame["category_id"] == category_id]
    if after is not None:
        frame = frame[frame["id"] > after]
    if sort:
        column = sort.removeprefix("-")
        if column not in frame.columns:
            return JSONResponse({"error": f"no column {column}"}, status_code=400)
        frame = frame.sort_values(column, ascending=not sort.startswith("-"), kind="stable")
    rows = records(frame.head(limit))
    if facet is None:
        return rows
    if facet not in frame.columns:
        return JSONResponse({"error": f"no column {facet}"}, status_code=400)
    counts = frame[facet].value_counts().head(30)
    values = [{"value": v, "count": int(n)} for v, n in counts.items()]
    return {"rows": rows, "facets": {facet: values}, "total": len(frame)}
