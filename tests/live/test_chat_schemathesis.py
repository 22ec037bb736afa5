"""`comptoir chat`'s HTTP API against its OpenAPI document, by Schemathesis's command line (as
tests/live/test_api_schemathesis.py does for the api kind): generated requests to a real server,
each answer checked — no 500, documented statuses, content types and schemas."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import live_server

# A room may not exist yet (404: rooms are made by their first message); a posted message may
# find its nickname held by someone connected (409). Names are documented
# in ASCII; the chat takes any script's letters: a request off the document may be accepted.
CONFIG = """
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "404", "409"]
[checks.negative_data_rejection]
enabled = false
"""


def test_the_chat_http_api_answers_as_its_openapi_document_says(tmp_path: Path) -> None:
    cli = Path(sys.executable).with_name("schemathesis")
    if not cli.exists():
        pytest.skip("schemathesis is not installed (uv sync --group dev)")
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    history = str(tmp_path / "history.sqlite3")
    with live_server("chat", "--history", history, "--rate", "1000/s", timeout=60) as srv:
        argv = [str(cli), "--config-file", str(config), "run", srv.url + "openapi.json"]
        argv += ["--max-examples", "20", "--seed", "1", "--workers", "1"]
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=600, cwd=tmp_path, check=False
        )
        srv.stop()
        errors = srv.read_stderr()
    assert done.returncode == 0, done.stdout[-6000:]
    assert "passed" in done.stdout and "internal error" not in errors, errors[-3000:]
