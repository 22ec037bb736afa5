"""`comptoir chat`'s HTTP API against its OpenAPI document, by Schemathesis's command line (as
tests/live/test_api_schemathesis.py does for the api kind): generated requests to a real server,
each answer checked — no 500, documented statuses, content types and schemas."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import live_server
from tests.live.openapi_check import check_against_document

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
    history = str(tmp_path / "history.sqlite3")
    with live_server("chat", "--history", history, "--rate", "1000/s", timeout=60) as srv:
        check_against_document(srv, tmp_path, CONFIG, max_examples=20)
