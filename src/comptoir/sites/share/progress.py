"""The terminal side of a share: a live line per transfer (client, item, bytes, rate, ETA) and a
summary when the worker stops.

Transfers run in worker processes, so each worker draws its own. On a terminal with one worker,
rich redraws the lines in place and takes over the other stderr lines meanwhile (terminal.py), so
the access log prints above them instead of through them. With several workers, or when stderr
is not a terminal, live redrawing would garble: each transfer gets a line when it starts and one
when it ends. `--quiet` draws nothing.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

from comptoir import terminal
from comptoir.accesslog import escape_for_log
from comptoir.http.listing import human_size


@dataclass(eq=False)
class Transfer:
    """One response carrying a file or an archive, as the terminal shows it."""

    client: str
    name: str  # already escaped for the terminal
    total: int | None  # bytes the response carries (None: not known in advance)
    started: float
    sent: int = 0
    task: TaskID | None = None

    @property
    def label(self) -> str:
        """`client  name`, the first column of its line."""
        return f"{self.client}  {self.name}"


class TransferBoard:
    """Draws transfers on stderr; with `console` None (--quiet) it only keeps the totals."""

    def __init__(
        self,
        console: Console | None,
        *,
        live: bool,
        label: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console = console
        self.clock = clock
        self.label = label
        self.active: set[Transfer] = set()
        self.complete = 0
        self.cut = 0
        self.bytes_sent = 0
        self.progress: Progress | None = None
        if console is not None and live:
            self.progress = Progress(
                TextColumn("{task.description}", markup=False),
                BarColumn(bar_width=24),
                DownloadColumn(binary_units=True),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=console,
                transient=True,
                redirect_stdout=False,
                redirect_stderr=False,
                refresh_per_second=4,
            )
        self._live = False

    def begin(self, client: str, name: str, total: int | None) -> Transfer:
        """A transfer starts: give it a line."""
        t = Transfer(client, escape_for_log(name), total, self.clock())
        self.active.add(t)
        if self.console is None:
            return t
        if self.progress is not None:
            if not self._live:
                self.progress.start()
                terminal.take_over(self._print_above)
                self._live = True
            t.task = self.progress.add_task(t.label, total=total)
        else:
            size = f" ({human_size(total)})" if total is not None else ""
            self._line(f"→ {t.label}{size}")
        return t

    def advance(self, t: Transfer, n: int) -> None:
        """`n` more bytes of `t` went out."""
        t.sent += n
        self.bytes_sent += n
        if self.progress is not None and t.task is not None:
            self.progress.update(t.task, advance=n)

    def end(self, t: Transfer, *, finished: bool, counted: bool) -> None:
        """`t` is over: `finished` if its last byte went out, `counted` if that completed a
        download (a Range ending early finishes without completing one)."""
        self.active.discard(t)
        if counted:
            self.complete += 1
        elif not finished:
            self.cut += 1
        if self.console is None:
            return
        if self.progress is not None and t.task is not None:
            self.progress.remove_task(t.task)
        self._line(self._outcome(t, finished, counted))
        if self.progress is not None and self._live and not self.active:
            # Idle: no live region left on screen, stderr back to plain lines.
            self.progress.stop()
            terminal.take_over(None)
            self._live = False

    def _outcome(self, t: Transfer, finished: bool, counted: bool) -> str:
        took = max(self.clock() - t.started, 1e-6)
        rate = f"{human_size(int(t.sent / took))}/s"
        if not finished:
            of = f" of {human_size(t.total)}" if t.total is not None else ""
            return f"✗ {t.label}  cut after {human_size(t.sent)}{of}"
        what = "downloaded" if counted else "sent"
        return f"✓ {t.label}  {what} {human_size(t.sent)} in {took:.1f} s ({rate})"

    def note(self, text: str) -> None:
        """One line about the share as a whole (e.g. why it stops), after the label; none when
        quiet."""
        if self.console is not None:
            self._line(f"{self.label}{text}")

    def close(self) -> None:
        """Stop drawing and print what this worker sent."""
        if self.progress is not None and self._live:
            self.progress.stop()
            terminal.take_over(None)
            self._live = False
        if self.console is None:
            return
        downloads = f"{self.complete} download{'' if self.complete == 1 else 's'} complete"
        cut = f", {self.cut} cut" if self.cut else ""
        self._line(f"{self.label}{downloads}{cut}, {human_size(self.bytes_sent)} sent")

    def _line(self, text: str) -> None:
        if self._live:
            self._print_above(text)
        else:
            terminal.write_line(text)

    def _print_above(self, text: str) -> None:
        assert self.console is not None
        self.console.print(Text(text), soft_wrap=True)


def make_board(*, quiet: bool, workers: int) -> TransferBoard:
    """The board of one worker: live on a terminal with one worker, plain lines otherwise."""
    if quiet:
        return TransferBoard(None, live=False)
    console = Console(file=sys.stderr, highlight=False)
    label = f"share (worker {os.getpid()}): " if workers > 1 else "share: "
    return TransferBoard(console, live=console.is_terminal and workers == 1, label=label)
