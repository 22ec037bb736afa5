"""Directory listings: the entries of a folder, as HTML (template) or JSON."""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from datetime import UTC, datetime

from comptoir.http.paths import (
    display_name,
    linkable_name,
    quote_name,
    reachable,
    url_for_parts,
)
from comptoir.web import render


@dataclass(frozen=True)
class Entry:
    """One item of a folder, as shown in a listing."""

    name: str  # surrogate-escaped, as on disk
    is_dir: bool
    size: int
    mtime: float
    url: str

    @property
    def display(self) -> str:
        """The name as a person sees it."""
        return display_name(self.name)

    @property
    def human_size(self) -> str:
        """Size in binary multiples, e.g. `1.5 MiB`."""
        return human_size(self.size)

    @property
    def iso_mtime(self) -> str:
        """Modification time in ISO 8601 (UTC)."""
        return datetime.fromtimestamp(self.mtime, UTC).isoformat(timespec="seconds")

    @property
    def display_mtime(self) -> str:
        """Modification time for people: `2026-11-23 19:45` (UTC)."""
        return datetime.fromtimestamp(self.mtime, UTC).strftime("%Y-%m-%d %H:%M")


def human_size(size: int) -> str:
    """A byte count in binary multiples, e.g. `1.5 MiB`."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def scan(folder: str, root: str, *, hidden: bool, base_url: str) -> list[Entry]:
    """The entries of `folder` that may be reached, folders first, then by name.

    Only what a request could reach is listed (the rules of http/paths.py): symlinks leading
    outside `root` or to a dotfile, and names no URL can address, are left out.
    """
    entries: list[Entry] = []
    with os.scandir(folder) as it:
        for de in it:
            if not linkable_name(de.name, hidden=hidden):
                continue
            try:
                if de.is_symlink() and reachable(root, de.path, hidden=hidden) is None:
                    continue
                st = de.stat()
            except OSError:
                continue
            is_dir = stat.S_ISDIR(st.st_mode)
            if not is_dir and not stat.S_ISREG(st.st_mode):
                continue
            url = base_url + quote_name(de.name) + ("/" if is_dir else "")
            entries.append(Entry(de.name, is_dir, 0 if is_dir else st.st_size, st.st_mtime, url))
    entries.sort(key=lambda e: (not e.is_dir, e.display.casefold(), e.name))
    return entries


def render_html(parts: tuple[str, ...], entries: list[Entry], *, prefix: str = "") -> str:
    """The HTML listing page of a folder whose URL components are `parts`."""
    crumbs = [{"name": "/", "url": prefix + "/"}]
    for i in range(len(parts)):
        crumbs.append(
            {
                "name": display_name(parts[i]),
                "url": url_for_parts(parts[: i + 1], prefix=prefix, slash=True),
            }
        )
    display_path = "/" + "".join(display_name(p) + "/" for p in parts)
    parent_url = url_for_parts(parts[:-1], prefix=prefix, slash=True) if parts else None
    return render(
        "listing.html",
        prefix=prefix,
        crumbs=crumbs,
        display_path=display_path,
        parent_url=parent_url,
        entries=entries,
        dirs=sum(1 for e in entries if e.is_dir),
        files=sum(1 for e in entries if not e.is_dir),
    )


def render_json(parts: tuple[str, ...], entries: list[Entry]) -> bytes:
    """The JSON listing of a folder."""
    doc = {
        "path": "/" + "".join(display_name(p) + "/" for p in parts),
        "entries": [
            {
                "name": e.display,
                "type": "directory" if e.is_dir else "file",
                "size": None if e.is_dir else e.size,
                "modified": e.iso_mtime,
                "url": e.url,
            }
            for e in entries
        ],
    }
    return json.dumps(doc, ensure_ascii=False).encode()
