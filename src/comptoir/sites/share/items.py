"""What a share holds: the paths given on the command line, and the files inside shared folders.

Top-level items are matched by exact name (never resolved on disk from a URL), so a shared file
leaves its siblings unreachable. Inside a shared folder, what may be reached — by a URL, in a
listing or in an archive — follows http/paths.py with that folder as the root: no dotfiles, no
symlink leading outside it (or to a dotfile), nothing but regular files and folders.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from comptoir.http.paths import linkable_name, reachable


@dataclass(frozen=True)
class SharedItem:
    """One path given to `comptoir share`: a file or a folder, under the name it is shared as."""

    name: str  # as shown and used in URLs (surrogate-escaped str, like names on disk)
    path: str  # absolute real path
    is_dir: bool

    @property
    def unit(self) -> str:
        """The key downloads of this file are counted under (folders are not downloads)."""
        return "f/" + self.name


@dataclass(frozen=True)
class Member:
    """A file or folder inside the share, as an archive stores it."""

    arcname: str  # posix path inside the archive; folders end with "/"
    path: str  # real path on disk
    size: int
    mtime_ns: int
    mode: int
    # The download-count key of a file (see SharedItem.unit and file_unit); "" for folders.
    unit: str

    @property
    def is_dir(self) -> bool:
        """True for a folder entry."""
        return self.arcname.endswith("/")


def item_name(path: Path) -> str:
    """The name a path is shared under: its last component as given (a symlink keeps its name)."""
    name = os.path.basename(os.path.abspath(path))
    return name or os.path.basename(os.path.realpath(path)) or "root"


def shared_items(paths: tuple[Path, ...]) -> list[SharedItem]:
    """The items of a share, in the order given (paths are checked by the kind's validate)."""
    items = []
    for p in paths:
        real = os.path.realpath(p)
        items.append(SharedItem(item_name(p), real, os.path.isdir(real)))
    return items


def file_unit(item: SharedItem, real: str) -> str:
    """The count key of a file inside a shared folder: its real path under the folder.

    Two URLs reaching one file (through a symlink inside the folder) count as one file.
    """
    return f"f/{item.name}/{os.path.relpath(real, item.path)}"


def walk(items: list[SharedItem]) -> Iterator[Member]:
    """Every member of the share, in a stable order (names sorted), folders before their files.

    The same files in the same state always give the same members: archives built from them are
    identical byte for byte, which is what lets a download resume with a Range.
    """
    for item in items:
        try:
            st = os.stat(item.path)
        except OSError:
            continue
        if item.is_dir and stat.S_ISDIR(st.st_mode):
            yield _member(item.name + "/", item.path, st, "")
            yield from _walk_folder(item, item.path, item.name + "/", {item.path})
        elif not item.is_dir and stat.S_ISREG(st.st_mode):
            yield _member(item.name, item.path, st, item.unit)


def walk_folder(item: SharedItem, folder: str, name: str) -> Iterator[Member]:
    """The members of one folder inside a shared folder, as its own archive stores them.

    `folder` is the real path of a folder reached inside `item` (http/paths.py said so), `name`
    what the archive calls it; the same rules as `walk` apply (no dotfiles, no way out of `item`).
    """
    try:
        st = os.stat(folder)
    except OSError:
        return
    if stat.S_ISDIR(st.st_mode):
        yield _member(name + "/", folder, st, "")
        yield from _walk_folder(item, folder, name + "/", {folder})


def folder_unit(item: SharedItem, real: str) -> str:
    """The count key of the archive of one folder inside a shared folder (by its real path)."""
    return f"d/{item.name}/{os.path.relpath(real, item.path)}"


def _walk_folder(item: SharedItem, folder: str, prefix: str, visited: set[str]) -> Iterator[Member]:
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError:
        return
    for de in entries:
        if not linkable_name(de.name):
            # What no URL can name (dotfiles, backslashes, control characters) is not shared:
            # in an archive, `a\..\..\x` would escape the folder of a Windows extractor.
            continue
        try:
            real = reachable(item.path, de.path) if de.is_symlink() else de.path
            if real is None:
                continue
            st = os.stat(real)
        except (OSError, ValueError):
            continue
        if stat.S_ISDIR(st.st_mode):
            # A folder reached twice (a symlink to a parent) would never end.
            if real in visited:
                continue
            visited.add(real)
            yield _member(prefix + de.name + "/", real, st, "")
            yield from _walk_folder(item, real, prefix + de.name + "/", visited)
        elif stat.S_ISREG(st.st_mode):
            # FIFOs and devices are left out: reading one could block forever.
            yield _member(prefix + de.name, real, st, file_unit(item, real))


def _member(arcname: str, path: str, st: os.stat_result, unit: str) -> Member:
    is_dir = arcname.endswith("/")
    return Member(arcname, path, 0 if is_dir else st.st_size, st.st_mtime_ns, st.st_mode, unit)


def folder_totals(item: SharedItem) -> tuple[int, int]:
    """(number of files, total bytes) in a shared folder, as an archive would hold them."""
    files = size = 0
    for m in walk([item]):
        if not m.is_dir:
            files += 1
            size += m.size
    return files, size
