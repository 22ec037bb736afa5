"""Schemathesis's command line against a live server's OpenAPI document (as a user runs it):
requests made from the document, each answer checked; the server must log no internal error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import LiveServer


def check_against_document(srv: LiveServer, tmp_path: Path, config: str, max_examples: int) -> None:
    """Run `schemathesis run` on `srv`'s `/openapi.json` with `config` (a schemathesis.toml),
    stop the server, and fail with Schemathesis's report if anything failed."""
    cli = Path(sys.executable).with_name("schemathesis")
    if not cli.exists():
        pytest.skip("schemathesis is not installed (uv sync --group dev)")
    (tmp_path / "schemathesis.toml").write_text(config)
    argv = [str(cli), "--config-file", str(tmp_path / "schemathesis.toml")]
    argv += ["run", srv.url + "openapi.json", "--max-examples", str(max_examples)]
    argv += ["--seed", "1", "--workers", "1"]
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=600, cwd=tmp_path, check=False
    )
    srv.stop()
    errors = srv.read_stderr()
    assert done.returncode == 0, done.stdout[-6000:]
    assert "passed" in done.stdout and "internal error" not in errors, errors[-3000:]
