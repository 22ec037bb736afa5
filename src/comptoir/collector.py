"""Python's cyclic garbage collector, set for a server's worker.

A worker builds its sites once (modules, templates, tables, indexes: hundreds of thousands of
objects) and then serves, allocating short-lived objects per request or per frame. With the
collector's defaults each full collection walks every object built at start again, and the
youngest generation is collected after every 700 container allocations: a chat message to 1,000
clients set it off a dozen times and a full collection paused the worker 150 ms
(docs/decisions.md, chat fan-out). So once the sites are up:

- what exists is moved out of the collector's sight (`gc.freeze()`): it lives as long as the
  worker, and no collection walks it again;
- the youngest generation is collected after `YOUNG` allocations rather than 700, as CPython
  3.13 moved to 2,000 for the same reason; reference cycles are still freed, a little later.
"""

from __future__ import annotations

import gc

YOUNG = 10_000


def settle() -> None:
    """Freeze what the worker built at start; collect the young generation less often."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG, middle, old)
