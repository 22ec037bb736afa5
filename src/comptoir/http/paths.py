"""The one place that decides which file a URL path may reach.

A URL path is percent-decoded to bytes, split into components, and every component is checked
before anything touches the disk: no `.`/`..`, no backslash, no NUL, no encoded slash, no dotfile
unless allowed. The joined path is then resolved (symlinks followed) and must still lie inside the
root — a symlink inside the root may point anywhere inside it, never outside.

Names are bytes on disk; they are carried as `str` with surrogate escapes (os.fsdecode), so files
whose names are not UTF-8 are served and listed like any other.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from comptoir.errors import HTTPError


@dataclass(frozen=True)
class Resolved:
    """A URL path resolved to a real path inside the root."""

    path: str  # absolute, real (symlinks resolved)
    # The URL components as decoded names (surrogate-escaped str), for breadcrumbs and listings.
    parts: tuple[str, ...]
    # The URL path ended with "/".
    trailing_slash: bool


class PathRefused(HTTPError):
    """A path that is malformed or leads outside what is served."""


def unquote_bytes(raw: bytes) -> bytes:
    """Percent-decode a raw URL path to bytes; malformed escapes are refused."""
    if b"%" not in raw:
        return raw
    out = bytearray()
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c == 0x25:  # '%'
            hexpair = raw[i + 1 : i + 3]
            try:
                if len(hexpair) != 2:
                    raise ValueError
                out.append(int(hexpair, 16))
            except ValueError:
                raise PathRefused(400, "Malformed percent-encoding in path") from None
            i += 3
        else:
            out.append(c)
            i += 1
    return bytes(out)


def split_url_path(raw_path: bytes, *, hidden: bool = False) -> tuple[tuple[str, ...], bool]:
    """Split a raw (still percent-encoded) URL path into safe, decoded components.

    Raises PathRefused: 400 for malformed input, 404 for anything that tries to leave the root
    or names a hidden file (so hidden files are indistinguishable from missing ones).
    """
    if not raw_path.startswith(b"/"):
        raise PathRefused(400, "Path must start with /")
    # An encoded slash or backslash would let one URL component become two path components.
    lowered = raw_path.lower()
    if b"%2f" in lowered or b"%5c" in lowered or b"\\" in raw_path:
        raise PathRefused(404, "Not found")
    decoded = unquote_bytes(raw_path)
    if b"\x00" in decoded:
        raise PathRefused(400, "NUL byte in path")
    trailing = decoded.endswith(b"/")
    parts: list[str] = []
    for comp in decoded.split(b"/"):
        if comp in (b"", b"."):
            continue
        if comp == b"..":
            # Don't allow misbehaving clients to climb out of the served folder.
            raise PathRefused(404, "Not found")
        if not hidden and comp.startswith(b"."):
            raise PathRefused(404, "Not found")
        if any(b < 0x20 or b == 0x7F for b in comp):
            raise PathRefused(400, "Control character in path")
        parts.append(os.fsdecode(comp))
    return tuple(parts), trailing


def resolve_path(root: str, raw_path: bytes, *, hidden: bool = False) -> Resolved:
    """Resolve a raw URL path under `root` (an absolute real path) or raise PathRefused."""
    parts, trailing = split_url_path(raw_path, hidden=hidden)
    candidate = os.path.join(root, *parts) if parts else root
    real = reachable(root, candidate, hidden=hidden)
    if real is None:
        raise PathRefused(404, "Not found")
    return Resolved(real, parts, trailing)


def reachable(root: str, path: str, *, hidden: bool = False) -> str | None:
    """The real path of `path` if it may be served from `root`, else None.

    Also for files the server picks itself (index.html, 404.html): a symlink planted there must not
    reach what a URL could not.
    """
    real = os.path.realpath(path)
    if not is_inside(root, real):
        # A symlink that leads outside the served folder: treat as missing.
        return None
    if not hidden and real != root:
        # A symlink inside may still point at a dotfile; keep hidden files hidden.
        rel = os.path.relpath(real, root)
        if any(p.startswith(".") for p in rel.split(os.sep)):
            return None
    return real


# Longer URL paths are resolved afresh each time: the cache holds at most this many bytes of keys
# per entry (10,000 entries: 10 MB at worst).
MAX_CACHED_PATH = 1024


class ResolveCache:
    """Recent resolutions of raw URL paths, trusted for `ttl` seconds.

    Resolving costs a `realpath` (an lstat per component) and is most of the time a small file
    takes to answer. A cached resolution may be up to `ttl` old, the staleness the file cache
    already accepts for content. Callers use it only when the answer comes wholly from memory
    (see sites/static.py): whatever reads the disk resolves afresh, so a symlink swapped in the
    meantime is never followed out of the root.
    """

    def __init__(
        self,
        ttl: float = 1.0,
        *,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._entries: dict[bytes, tuple[Resolved, float]] = {}

    def get(self, raw_path: bytes) -> Resolved | None:
        """The resolution of `raw_path` if one is recent enough, else None."""
        hit = self._entries.get(raw_path)
        if hit is None or self.clock() - hit[1] >= self.ttl:
            return None
        return hit[0]

    def fresh_until(self, raw_path: bytes) -> float:
        """Until when (on this cache's clock) the resolution of `raw_path` is trusted; 0 if none."""
        hit = self._entries.get(raw_path)
        return 0.0 if hit is None else hit[1] + self.ttl

    def put(self, raw_path: bytes, resolved: Resolved) -> None:
        """Remember a fresh resolution (of a path of reasonable length)."""
        if len(raw_path) > MAX_CACHED_PATH:
            # Padded spellings of one path (`/./././a`) would otherwise fill memory with keys.
            return
        if len(self._entries) >= self.max_entries and raw_path not in self._entries:
            # Bounded without tracking recency on the hot path (as FileCache does).
            self._entries.clear()
        self._entries[raw_path] = (resolved, self.clock())


def linkable_name(name: str, *, hidden: bool = False) -> bool:
    """True if a name on disk can be reached through a URL (listings show only those)."""
    raw = os.fsencode(name)
    if raw in (b".", b"..") or (not hidden and raw.startswith(b".")):
        return False
    return b"\\" not in raw and not any(b < 0x20 or b == 0x7F for b in raw)


def is_inside(root: str, real: str) -> bool:
    """True if the real path `real` is `root` or lies below it (component-wise, not by prefix)."""
    if real == root:
        return True
    return os.path.commonpath([root, real]) == root


def real_root(path: Path | str) -> str:
    """The absolute real path of a folder to serve."""
    return os.path.realpath(os.fspath(path))


def quote_name(name: str) -> str:
    """Percent-encode one path component (str from os.fsdecode) for use in a URL."""
    return quote(os.fsencode(name), safe="")


def url_for_parts(
    parts: tuple[str, ...] | list[str], *, prefix: str = "", slash: bool = False
) -> str:
    """Build a URL path from decoded components, encoding each one."""
    url = prefix + "/" + "/".join(quote_name(p) for p in parts)
    if slash and not url.endswith("/"):
        url += "/"
    return url


# Everything RFC 3986 allows in a URL as it is (percent escapes included).
_URL_SAFE = "/:?#[]@!$&'()*+,;=%-._~"


def location_value(url: str) -> bytes:
    """A URL as a `Location` header value: anything beyond ASCII percent-encoded (as UTF-8).

    Links built from a site's mount path (`/文档/`) would otherwise fail to encode as a header.
    """
    return quote(url, safe=_URL_SAFE, errors="surrogateescape").encode("ascii")


# Bidirectional controls reorder what follows them: `rtl\u202etxt.exe` reads as `rtlexe.txt`.
# receive/names.py refuses them in names it saves; a listing shows them, visibly.
_BIDI_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _show_code_point(m: re.Match[str]) -> str:
    return f"[U+{ord(m.group()):04X}]"


def display_name(name: str) -> str:
    """A name fit for showing to a person: bad bytes as U+FFFD, bidi controls as `[U+202E]`."""
    shown = os.fsencode(name).decode("utf-8", "replace")
    return _BIDI_CONTROLS.sub(_show_code_point, shown)
