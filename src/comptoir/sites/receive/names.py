"""Names of received files: whatever a client sends becomes one safe file name.

A name comes from a stranger (a URL path, a multipart `filename`), and the file it names is then
opened on this machine and later copied, zipped, synced to other systems. So the rules are those of
the strictest file system it may meet: one component (no `/` or `\\`), no control or
direction-changing characters, nothing Windows refuses (`<>:"|?*`, `CON`, `COM1.txt`, trailing dots
and spaces), not hidden (no leading dot), at most 255 bytes of UTF-8, in NFC (macOS and Linux then
agree on which names are equal). An empty result becomes "upload".
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

MAX_BYTES = 255
FALLBACK = "upload"
# Folder levels a client may create under DIR with one upload.
MAX_DEPTH = 32

# Separators and the characters Windows does not allow in names.
_FORBIDDEN = frozenset('/\\<>:"|?*')
# Bidirectional controls make `photo\u202egpj.exe` display as `photoexe.jpg`.
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
    + [f"{dev}{n}" for dev in ("COM", "LPT") for n in (*"0123456789", "¹", "²", "³")]
)
_LEADING = re.compile(r"^[\s.]+")
_TRAILING = re.compile(r"[\s.]+$")
# An extension is kept whole when a long name is cut, and numbered copies go before it.
_EXTENSION = re.compile(r"(\.tar)?\.[^.\s]{1,16}$", re.IGNORECASE)


def _replace_char(c: str) -> str:
    if c in _FORBIDDEN or c in _BIDI:
        return "_"
    category = unicodedata.category(c)
    # Cc: controls; Cs: lone surrogates (undecodable bytes); Zl/Zp: line/paragraph separators.
    if category in ("Cc", "Cs", "Zl", "Zp"):
        return "_"
    return c


def split_extension(name: str) -> tuple[str, str]:
    """Split `name` into stem and extension (`.tar.gz` counts as one); the stem is never empty."""
    m = _EXTENSION.search(name)
    if m is None or m.start() == 0:
        return name, ""
    return name[: m.start()], name[m.start() :]


def _cut(text: str, budget: int) -> str:
    # Cut on a character boundary: a partial UTF-8 sequence at the end is dropped.
    return text.encode("utf-8")[: max(budget, 0)].decode("utf-8", "ignore")


def _truncate(name: str) -> str:
    if len(name.encode("utf-8")) <= MAX_BYTES:
        return name
    stem, ext = split_extension(name)
    return _cut(stem, MAX_BYTES - len(ext.encode("utf-8"))) + ext


def _is_reserved(name: str) -> bool:
    # Windows reserves `CON` with any extension (`con.tar.gz`), and ignores trailing spaces.
    return name.split(".", 1)[0].rstrip(" ").upper() in _RESERVED


def _clean_once(text: str) -> str:
    text = unicodedata.normalize("NFC", text)
    if not text.isprintable() or any(c in _FORBIDDEN or c in _BIDI for c in text):
        text = "".join(map(_replace_char, text))
    text = _TRAILING.sub("", _LEADING.sub("", text))
    if _is_reserved(text):
        text = "_" + text
    return _truncate(text)


def clean_component(text: str) -> str:
    """`text` reduced to one safe path component, possibly empty (see the module's rules)."""
    # Each step may undo another's work (a cut may end in a space, NFC may grow a name):
    # repeat until nothing changes, which also makes the function idempotent.
    for _ in range(8):
        cleaned = _clean_once(text)
        if cleaned == text:
            break
        text = cleaned
    return text


def safe_name(text: str) -> str:
    """A safe, non-empty file name for what a client called `text`."""
    return clean_component(text) or FALLBACK


def numbered(name: str, n: int | str) -> str:
    """An alternative to a taken `name`: `photo (2).jpg`, still at most 255 bytes."""
    stem, ext = split_extension(name)
    suffix = f" ({n})"
    budget = MAX_BYTES - len(suffix) - len(ext.encode("utf-8"))
    return safe_name(_cut(stem, budget) + suffix + ext)


def safe_components(parts: Sequence[str]) -> tuple[tuple[str, ...], str]:
    """Folders and file name for the components of a relative path a client sent, each safe.

    Empty, `.` and `..` folders are dropped: a path can only go down from where it starts.
    """
    *folders, last = parts or [""]
    kept = tuple(c for c in map(clean_component, folders) if c)
    return kept, safe_name(last)
