"""What processes use, from /proc: memory of a process tree, CPU time taken by everyone else.

Used by run.py; Linux only.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Proc:
    """One line of the process table: parent and CPU time used so far (clock ticks)."""

    ppid: int
    ticks: int


def process_table() -> dict[int, Proc]:
    """Every process of the machine, by pid (from /proc/<pid>/stat)."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces or parentheses: fields start after the last ')'.
        fields = stat.rpartition(")")[2].split()
        # fields[1] is the parent; fields[11] and [12] are user and system time.
        table[int(entry)] = Proc(int(fields[1]), int(fields[11]) + int(fields[12]))
    return table


def process_tree(pid: int, table: dict[int, Proc] | None = None) -> list[int]:
    """`pid` and all its descendants (comptoir: main process and granian workers)."""
    children: dict[int, list[int]] = {}
    for child, proc in (table if table is not None else process_table()).items():
        children.setdefault(proc.ppid, []).append(child)
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, []))
    return tree


def steal_ticks() -> int:
    """CPU time the hypervisor gave to other guests, all CPUs, in clock ticks (/proc/stat)."""
    with open("/proc/stat") as f:
        return int(f.readline().split()[8])


class BackgroundLoad:
    """The share of the CPUs taken from this benchmark by others while a scenario ran.

    Other work on the machine (a test suite, a browser) and, on a virtual machine, other guests
    (steal time) take CPU time from the server being measured and can halve a figure: this makes
    it visible next to the figure. Kernel threads are left out (their network work is caused by
    the load itself), and so are processes that both start and end within the scenario (unseen).
    """

    def __enter__(self) -> BackgroundLoad:
        self.share = 0.0
        self._start = process_table()
        self._steal = steal_ticks()
        self._t0 = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        end = process_table()
        elapsed = time.monotonic() - self._t0
        stolen = steal_ticks() - self._steal
        ours = set(process_tree(os.getpid(), self._start)) | set(process_tree(os.getpid(), end))
        used = 0
        for pid, proc in end.items():
            if pid in ours or pid == 2 or proc.ppid == 2:  # 2: kthreadd, parent of kernel threads
                continue
            before = self._start.get(pid)
            used += max(0, proc.ticks - before.ticks) if before else proc.ticks
        cpus = len(os.sched_getaffinity(0))
        self.share = (used + stolen) / os.sysconf("SC_CLK_TCK") / max(elapsed * cpus, 1e-9)


def _status_kb(path: str, key: str) -> int:
    # A process that ended meanwhile uses nothing any more.
    with contextlib.suppress(OSError), open(path) as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1])
    return 0


def tree_memory_kb(pid: int) -> tuple[int, int]:
    """(sum of VmRSS, sum of Pss) over a process tree, in kB.

    RSS counts pages shared between a parent and its forked workers once per process; PSS splits
    them, so it is the fairer total. The targets use RSS, the stricter of the two.
    """
    rss, pss, _ = tree_memory(pid)
    return rss, pss


def tree_memory(pid: int, pss: bool = True) -> tuple[int, int, int]:
    """(sum of VmRSS, sum of Pss, largest VmRSS of one process) over a process tree, in kB: the
    last one is a worker's own memory (a target per worker). Without `pss`, its sum is 0: Pss
    comes from smaps_rollup, which walks the process's page tables under its memory lock, while
    VmRSS is a counter (see MemorySampler)."""
    rss = total_pss = largest = 0
    for p in process_tree(pid):
        own = _status_kb(f"/proc/{p}/status", "VmRSS:")
        rss += own
        largest = max(largest, own)
        if pss:
            total_pss += _status_kb(f"/proc/{p}/smaps_rollup", "Pss:")
    return rss, total_pss, largest


class MemorySampler:
    """Samples a server's tree memory in a thread while load runs; keeps the peak.

    VmRSS every `interval`, Pss every `PSS_EVERY` samples and at the end: reading smaps_rollup
    walks a process's page tables under its memory lock, and every 0.2 s it raised the p99 of
    comptoir's chat (250 MB, its allocator mapping and unmapping) at 24,000 deliveries/s from
    42-60 ms to 99 ms and cost it the 32,000 step. The peak Pss is a little less exact for it.
    """

    PSS_EVERY = 10

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.pid = pid
        self.interval = interval
        self._samples = 0
        self.peak_rss_kb = 0
        self.peak_pss_kb = 0
        self.peak_process_rss_kb = 0  # the largest single process seen (a worker)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._samples += 1
            self._sample(pss=self._samples % self.PSS_EVERY == 0)

    def _sample(self, pss: bool = True) -> None:
        rss, pss_kb, largest = tree_memory(self.pid, pss)
        self.peak_rss_kb = max(self.peak_rss_kb, rss)
        self.peak_pss_kb = max(self.peak_pss_kb, pss_kb)
        self.peak_process_rss_kb = max(self.peak_process_rss_kb, largest)


def tree_sockets(pid: int) -> int:
    """How many sockets the processes of a tree hold open (from /proc/<pid>/fd)."""
    count = 0
    for p in process_tree(pid):
        try:
            fds = os.listdir(f"/proc/{p}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                count += os.readlink(f"/proc/{p}/fd/{fd}").startswith("socket:")
            except OSError:
                continue
    return count
