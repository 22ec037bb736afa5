"""The open-files limit, and how many connections a worker can hold within it.

Every connection is a file descriptor, and so is what a request holds open: an upload's part
file, its folder and DIR, a file being sent. The soft limit is often 1,024 while the hard one is
far higher, so the main process raises the soft limit to the hard one at start, as Go's runtime
does for Caddy; the workers inherit it. Where the hard limit is low, the connection cap is cut
down to what fits, rather than let `accept` fail with EMFILE: granian retries a failed accept at
once, a busy loop, and every file the sites open fails meanwhile.
"""

from __future__ import annotations

import contextlib

# Descriptors a worker needs besides its connections: the listener, pipes, SQLite, the shared
# assets, Python's own.
FD_RESERVE = 128
# What one connection may hold at once unless its sites say less (SiteKind.fds_per_connection):
# its socket, and up to three more (an upload's part file, its folder, DIR).
FDS_PER_CONNECTION = 4
# Asked for when the hard limit is "unlimited" (macOS refuses RLIM_INFINITY as a soft limit).
UNLIMITED_TARGETS = (1 << 20, 65536, 10240)


def raise_open_files_limit() -> int | None:
    """Raise the soft open-files limit to the hard one; the soft limit now (None: no limit)."""
    try:
        import resource
    except ImportError:  # not a Unix: the limit is not ours to raise
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    infinite = resource.RLIM_INFINITY
    if soft == infinite:
        return None
    targets = UNLIMITED_TARGETS if hard == infinite else (hard,)
    for target in targets:
        if target <= soft:
            break
        # Refused (a sandbox, macOS's kern.maxfilesperproc): try lower, else keep what we have.
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
            break
    return soft


def connections_within(
    wanted: int, open_files: int | None, per_connection: int = FDS_PER_CONNECTION
) -> int:
    """How many connections a worker may hold, at most `wanted`, within `open_files`, each
    holding up to `per_connection` descriptors."""
    if open_files is None:
        return wanted
    return max(16, min(wanted, (open_files - FD_RESERVE) // per_connection))
