"""`Content-Disposition` for downloads, right for any file name (RFC 6266, RFC 8187/5987).

A name goes out twice: `filename*=UTF-8''…` carries it exactly (percent-encoded UTF-8), and
`filename="…"` carries an ASCII fallback for clients that ignore the extended form — curl's `-J`
among them, which also stops at the first `"` and keeps only what follows the last `/` or `\\`.
So the fallback holds no quote, backslash, slash, control character, or `%XX` (which some clients
decode), and keeps everything else a plain ASCII name has: spaces, `#`, `;`, `'`, a lone `%`.
"""

from __future__ import annotations

import os
import re
import unicodedata
from urllib.parse import quote

# RFC 8187 attr-char: what may appear unencoded in `filename*`.
_ATTR_CHARS = "!#$&+-.^_`|~"
# Characters that would end, escape or split the quoted fallback, or become a path.
_UNSAFE_ASCII = re.compile(r'["\\/\x00-\x1f\x7f]')
# `%` followed by two hex digits reads as an escape to some clients (RFC 6266, appendix D).
_PERCENT_ESCAPE = re.compile(r"%(?=[0-9A-Fa-f]{2})")
# Generic name when no letter or digit is left of the original (e.g. only emoji or CJK).
FALLBACK_NAME = "download"


def _exact(name: str) -> str:
    """The name as Unicode text: undecodable bytes (surrogate escapes) shown as U+FFFD."""
    return os.fsencode(name).decode("utf-8", "replace")


def ascii_fallback(name: str) -> str:
    """An ASCII rendering of `name` safe inside `filename="…"` for every client.

    Accents are dropped (`é` → `e`), each run of other non-ASCII characters becomes one `_`, and
    unsafe characters `_`. A name with no letter or digit left (`日本語.pdf`) becomes
    `download.pdf`: what curl -OJ saves should still say what the file is.
    """
    text = unicodedata.normalize("NFKD", _exact(name))
    out: list[str] = []
    for ch in text:
        if ch.isascii():
            out.append(ch)
        elif unicodedata.combining(ch):
            continue  # the accent of a letter kept just before
        elif not out or out[-1] != "_":
            out.append("_")
    fallback = _PERCENT_ESCAPE.sub("_", _UNSAFE_ASCII.sub("_", "".join(out))).strip()
    # The extension is all from the first dot on, so that `.tar.gz` is kept whole.
    dot = fallback.find(".", 1)
    stem, ext = (fallback[:dot], fallback[dot:]) if dot > 0 else (fallback, "")
    if not any(c.isalnum() for c in stem):
        # Nothing recognisable left (or only dots: `..`): a generic name, with the extension.
        return FALLBACK_NAME + (ext if any(c.isalnum() for c in ext) else "")
    return fallback


def content_disposition(name: str, disposition: str = "attachment") -> str:
    """The `Content-Disposition` value offering `name` for download (ASCII only)."""
    encoded = quote(_exact(name).encode("utf-8"), safe=_ATTR_CHARS)
    return f"{disposition}; filename=\"{ascii_fallback(name)}\"; filename*=UTF-8''{encoded}"
