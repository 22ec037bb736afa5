"""Time as sites see it: the system's, or one a test moves by hand.

Sites take their clock from `SiteContext.clock`, so a test of an expiry or a deadline advances a
`ManualClock` instead of sleeping.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Wall-clock time (for deadlines shared between processes) and monotonic time (intervals)."""

    def time(self) -> float:
        """Seconds since the epoch."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin that never goes back."""
        ...


class SystemClock:
    """The machine's clocks."""

    def time(self) -> float:
        """Seconds since the epoch (time.time)."""
        return time.time()

    def monotonic(self) -> float:
        """time.monotonic."""
        return time.monotonic()


class ManualClock:
    """A clock that moves only when told to (tests)."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start
        self.mono = 0.0

    def time(self) -> float:
        """The current (manual) wall-clock time."""
        return self.now

    def monotonic(self) -> float:
        """The current (manual) monotonic time."""
        return self.mono

    def advance(self, seconds: float) -> None:
        """Move both clocks forward."""
        self.now += seconds
        self.mono += seconds
