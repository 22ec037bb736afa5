"""Lines for the terminal (stderr) of a worker process, from whichever part writes them.

The access log writes a line per request; `comptoir share` draws live progress lines that rich
redraws in place. A line written straight to the file descriptor in the middle of a redraw tears
the display, so while a live display runs it takes the lines over (`take_over`) and prints them
above itself; otherwise each line is one `write(2)` — whole, even when several workers share it.
"""

from __future__ import annotations

import os
from collections.abc import Callable

_writer: Callable[[str], None] | None = None


def write_line(line: str) -> None:
    """Write one line (without its newline) to stderr, or to the live display holding it."""
    writer = _writer
    if writer is not None:
        writer(line)
        return
    os.write(2, (line + "\n").encode("utf-8", "backslashreplace"))


def take_over(writer: Callable[[str], None] | None) -> None:
    """Route `write_line` to `writer` (a live display), or back to stderr with None."""
    global _writer
    _writer = writer
