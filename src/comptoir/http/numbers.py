"""Decimal numbers a client sends (Content-Length, Range, cookies): parsed without surprises.

`str.isdigit()` accepts "²" and other digits `int()` refuses, and `int()` refuses more than 4,300
digits: either would be a 500 for a client's mistake. Values this long are larger than any file or
body anyway, so they are capped at HUGE, which every limit and size comparison handles.
"""

from __future__ import annotations

# Larger than any file size or body limit (about 888 PiB).
HUGE = 10**18
_MAX_DIGITS = len(str(HUGE)) - 1


def parse_decimal(text: str) -> int | None:
    """A non-negative decimal number of ASCII digits, capped at HUGE; None if `text` is not one."""
    if not text or not text.isascii() or not text.isdigit():
        return None
    return int(text) if len(text) <= _MAX_DIGITS else HUGE
