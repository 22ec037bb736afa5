"""Every test under tests/live starts real servers: they carry the `live` marker.

`pytest -m "not live"` runs the in-process suite alone, in seconds.
"""

from __future__ import annotations

from pathlib import Path

import pytest

LIVE_DIR = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests of this folder `live` (the hook sees every collected test: filter)."""
    for item in items:
        if LIVE_DIR in item.path.resolve().parents:
            item.add_marker(pytest.mark.live)
