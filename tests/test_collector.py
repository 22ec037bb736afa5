"""A worker's collector settings once its sites are up (collector.py)."""

from __future__ import annotations

import gc
from pathlib import Path

from comptoir.app import build_app
from comptoir.collector import YOUNG
from comptoir.sites.static import StaticOptions
from tests.conftest import make_config
from tests.test_conformance import run_lifespan


async def test_a_started_worker_freezes_what_it_built_and_collects_less_often(
    tmp_path: Path,
) -> None:
    before = gc.get_threshold()
    gc.unfreeze()
    try:
        app = build_app(make_config("static", StaticOptions(root=tmp_path)))
        assert await run_lifespan(app) == [
            "lifespan.startup.complete",
            "lifespan.shutdown.complete",
        ]
        assert gc.get_freeze_count() > 0  # the sites built, out of the collector's sight
        assert gc.get_threshold()[0] == YOUNG
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
