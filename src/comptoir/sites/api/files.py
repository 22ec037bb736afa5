"""Which files make which tables, and the names of column types: what the start's check and a
worker starting from the cache need, without importing Polars (tables.py reads the files)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".parquet": "parquet", ".jsonl": "jsonl"}
SUFFIXES[".ndjson"] = "jsonl"
# The types a column can be given (`--type col=TYPE`); tables.TYPES maps them to Polars types.
TYPE_NAMES = ("integer", "float", "boolean", "date", "datetime", "string")


def table_name(path: Path) -> str:
    """A table's name from its file: the stem, lower case, ASCII, `_` between words."""
    text = unicodedata.normalize("NFKD", path.stem).encode("ascii", "ignore").decode()
    name = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    return name or "table"


def data_files(paths: Sequence[Path]) -> list[Path]:
    """The data files among `paths` (folders: the files directly inside them), sorted by name."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(
                p for p in path.iterdir() if p.suffix.lower() in SUFFIXES and p.is_file()
            )
            out.extend(p for p in found if not p.name.startswith("."))
        else:
            out.append(path)
    return out


def journal_path(data: Path) -> Path:
    """Where the journal of the data file `data` is."""
    return data.with_name(f".{data.name}.comptoir-journal")


def rewrite_path(data: Path) -> Path:
    """Where the data file is written again before it takes the file's place."""
    return data.with_name(f".{data.name}.comptoir-new")


@dataclass(frozen=True)
class Schema:
    """A table's name and columns, as the cache recorded them: what checking custom routes
    needs, but a value's type (then the check makes a Table of no rows: tables.schema_table)."""

    name: str
    columns: list[str]
    key: str
