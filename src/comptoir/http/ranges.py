"""Parsing of `Range: bytes=...` headers (RFC 9110 §14)."""

from __future__ import annotations

from comptoir.http.numbers import parse_decimal

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
        first_text, dash, last_text = item.partition("-")
        first_text, last_text = first_text.strip(), last_text.strip()
        first, last = parse_decimal(first_text), parse_decimal(last_text)
        if not dash or (first_text and first is None) or (last_text and last is None):
            return None  # syntactically invalid: ignore the whole header, as RFC 9110 allows
        if first is None:
            if last is None:
                return None
            if last == 0 or size == 0:
                # Nothing to send: a suffix of an empty representation selects no byte.
                continue
            ranges.append((max(0, size - last), size - 1))  # a suffix: the last `last` bytes
            continue
        if last is not None and last < first:
            return None
        if first >= size:
            # `bytes=10-` of a 10-byte file: valid, but past the end (416 if nothing else is).
            continue
        end = last if last is not None else size - 1
        ranges.append((first, min(end, size - 1)))
    if not ranges:
        raise Unsatisfiable()
    return _coalesce(ranges) if len(ranges) > 1 else ranges


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
