"""Content types by file name, the same on every machine (not read from /etc/mime.types)."""

from __future__ import annotations

import mimetypes

_EXTRA = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".htm": "text/html",
    ".json": "application/json",
    ".map": "application/json",
    ".webmanifest": "application/manifest+json",
    ".wasm": "application/wasm",
    ".svg": "image/svg+xml",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".ico": "image/x-icon",
    ".md": "text/markdown",
    ".txt": "text/plain",
    ".csv": "text/csv",
    ".xml": "application/xml",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
    ".pdf": "application/pdf",
    ".zip": "application/zip",
    ".gz": "application/gzip",
    ".tar": "application/x-tar",
    ".py": "text/x-python",
    ".toml": "application/toml",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
}

_types = mimetypes.MimeTypes(filenames=())
for _ext, _type in _EXTRA.items():
    _types.add_type(_type, _ext)

# Types that are text although not under text/: they get a charset too.
_TEXTUAL = {
    "application/json",
    "application/manifest+json",
    "application/xml",
    "application/toml",
    "application/yaml",
    "image/svg+xml",
    "application/javascript",
}

DEFAULT_TYPE = "application/octet-stream"


def content_type(name: str) -> str:
    """The Content-Type for a file name, with `charset=utf-8` for text types."""
    ctype, _ = _types.guess_type(name, strict=False)
    if ctype is None:
        return DEFAULT_TYPE
    if is_textual(ctype):
        return ctype + "; charset=utf-8"
    return ctype


def is_textual(ctype: str) -> bool:
    """True for types worth compressing and labelling with a charset."""
    base = ctype.split(";", 1)[0].strip()
    return base.startswith("text/") or base in _TEXTUAL
