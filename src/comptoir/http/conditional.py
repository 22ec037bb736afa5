"""Preconditions (RFC 9110 §13): If-Match, If-Unmodified-Since, If-None-Match, If-Modified-Since,
If-Range — evaluated in the order the RFC gives."""

from __future__ import annotations

from collections.abc import Mapping
from email.utils import parsedate_to_datetime


def _http_date_seconds(value: str) -> int | None:
    try:
        return int(parsedate_to_datetime(value).timestamp())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _etags(header: str) -> list[str]:
    return [t.strip() for t in header.split(",") if t.strip()]


def _weak_match(tag: str, etag: str) -> bool:
    return tag.removeprefix("W/") == etag.removeprefix("W/")


def evaluate(method: str, headers: Mapping[str, str], etag: str, mtime: int | None) -> int | None:
    """Return 412 or 304 when a precondition decides the answer, else None (serve normally).

    `etag` is the strong validator; `mtime` the modification time in whole seconds (None: the
    representation has no date, so the date preconditions do not apply).
    """
    if_match = headers.get("if-match")
    if if_match is not None:
        tags = _etags(if_match)
        # If-Match uses the strong comparison; weak tags never match.
        if "*" not in tags and etag not in tags:
            return 412
    else:
        ius = headers.get("if-unmodified-since")
        if ius is not None and mtime is not None:
            since = _http_date_seconds(ius)
            if since is not None and mtime > since:
                return 412
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        tags = _etags(if_none_match)
        if "*" in tags or any(_weak_match(t, etag) for t in tags):
            return 304 if method in ("GET", "HEAD") else 412
    elif method in ("GET", "HEAD"):
        ims = headers.get("if-modified-since")
        if ims is not None and mtime is not None:
            since = _http_date_seconds(ims)
            if since is not None and mtime <= since:
                return 304
    return None


def range_applies(headers: Mapping[str, str], etag: str | None, last_modified: str | None) -> bool:
    """Whether a Range header may be honoured given If-Range (absent means yes).

    A validator the representation lacks (None) never matches.
    """
    if_range = headers.get("if-range")
    if if_range is None:
        return True
    if_range = if_range.strip()
    if if_range.startswith(('"', "W/")):
        # Only a strong, exactly equal entity tag keeps the range.
        return if_range == etag
    # A date must match Last-Modified exactly (it is then a strong enough validator).
    return last_modified is not None and if_range == last_modified
