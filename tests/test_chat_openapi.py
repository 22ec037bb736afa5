"""The chat's HTTP API has its OpenAPI document (as the api kind's tables have theirs), valid,
with Swagger UI beside it; tests/live/test_chat_schemathesis.py checks the server against it."""

from __future__ import annotations

from pathlib import Path

from openapi_spec_validator import validate

from comptoir.app import build_app
from comptoir.sites.chat import ChatOptions
from tests.conftest import asgi_client, make_config


async def test_the_http_api_has_a_valid_openapi_document(tmp_path: Path) -> None:
    options = ChatOptions(history=tmp_path / "h.sqlite3")
    async with asgi_client(build_app(make_config("chat", options))) as client:
        r = await client.get("/openapi.json")
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        doc = r.json()
        validate(doc)
        assert set(doc["paths"]) == {
            "/api/rooms",
            "/api/rooms/{room}/messages",
            "/api/users",
        }
        post = doc["paths"]["/api/rooms/{room}/messages"]["post"]
        assert {"201", "400", "409", "413", "415"} <= set(post["responses"])
        page = await client.get("/docs")
        assert page.status_code == 200
        assert 'data-openapi="/openapi.json"' in page.text and "← chat" in page.text
