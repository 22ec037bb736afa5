"""Parsing of `Range: bytes=...` headers (RFC 9110 §14)."""

from __future__ import annotations

# Beyond this many ranges a request is answered with the whole file (a server may ignore Range),
# so a client cannot make us build huge multipart bodies from one small request.
MAX_RANGES = 64


class Unsatisfiable(Exception):
    """No range of the header overlaps the file: answer 416."""


def parse_range(header: str, size: int) -> list[tuple[int, int]] | None:
    """Byte ranges as (start, end-inclusive) pairs, None to ignore the header, or Unsatisfiable."""
    unit, sep, spec = header.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    ranges: list[tuple[int, int]] = []
    items = spec.split(",")
    if len(items) > MAX_RANGES:
        return None
    for item in items:
        item = item.strip()
        if not item:
            continue
        first, dash, last = item.partition("-")
        first, last = first.strip(), last.strip()
        if not dash or not _number_or_empty(first) or not _number_or_empty(last):
            return None  # syntactically invalid: ignore the whole header, as RFC 9110 allows
        if first == "":
            if last == "":
                return None
            suffix = int(last)
            if suffix == 0:
                continue
            ranges.append((max(0, size - suffix), size - 1))
            continue
        start = int(first)
        if last and int(last) < start:
            return None
        if start >= size:
            # `bytes=10-` of a 10-byte file: valid, but past the end (416 if nothing else is).
            continue
        end = int(last) if last else size - 1
        ranges.append((start, min(end, size - 1)))
    if not ranges:
        raise Unsatisfiable()
    return _coalesce(ranges) if len(ranges) > 1 else ranges


def _number_or_empty(text: str) -> bool:
    # ASCII digits only: str.isdigit() also accepts "²", which int() then refuses (a 500).
    return text == "" or (text.isascii() and text.isdigit())


def _coalesce(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Merge overlapping or adjacent ranges, keeping the client's order otherwise.

    Overlapping ranges would make us send the same bytes several times (a cheap amplification);
    merged ones are sorted, which RFC 9110 permits.
    """
    ordered = sorted(ranges)
    merged = [ordered[0]]
    overlapped = False
    for start, end in ordered[1:]:
        last_start, last_end = merged[-1]
        if start <= last_end + 1:
            merged[-1] = (last_start, max(last_end, end))
            overlapped = True
        else:
            merged.append((start, end))
    return merged if overlapped else ranges
