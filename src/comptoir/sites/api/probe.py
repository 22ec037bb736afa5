"""Reads an api site's tables in a process of its own and reports what is wrong with them.

`python -m comptoir.sites.api.probe` takes pickled `ApiOptions` on stdin and writes the pickled
list of `Problem`s on stdout. The main process checks the tables this way, never by reading them
itself: granian forks the workers from it, and Polars' threads do not survive a fork
(docs/decisions.md). A subprocess rather than multiprocessing's spawn, which would leave its
resource tracker running beside the workers for the whole run.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from comptoir.sites.api import ApiOptions
    from comptoir.sites.contract import Problem


def probe(options: ApiOptions) -> list[Problem]:
    """The problems `read_problems` finds, found in a fresh Python process."""
    done = subprocess.run(
        [sys.executable, "-m", "comptoir.sites.api.probe"],
        input=pickle.dumps(options),
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        from comptoir.errors import ConfigError

        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise ConfigError(f"cannot check the tables: {lines[-1] if lines else done.returncode}")
    problems: list[Problem] = pickle.loads(done.stdout)
    return problems


def main() -> None:
    """Read options from stdin, write problems to stdout."""
    from comptoir.sites.api import read_problems

    options = pickle.loads(sys.stdin.buffer.read())
    sys.stdout.buffer.write(pickle.dumps(read_problems(options)))


if __name__ == "__main__":
    main()
