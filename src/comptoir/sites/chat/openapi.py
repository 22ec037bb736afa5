"""The OpenAPI 3.1 document of a chat site's HTTP API, as the api kind has one for its tables:
the rooms, a room's messages (read and posted), who is connected; the error shape. The WebSocket
protocol is in the README (OpenAPI has no words for it)."""

from __future__ import annotations

from typing import Any

from comptoir import __version__
from comptoir.sites.chat.session import HISTORY_MAX
from comptoir.sites.chat.text import NICK_MAX, ROOM_MAX

_ERROR = {
    "type": "object",
    "properties": {"error": {"type": "string"}},
    "required": ["error"],
}
# Names as the chat takes them: letters, digits, `-`, `_`, `.` (any script's letters; the document
# says ASCII's, what a pattern can say everywhere).
_NAME = "[A-Za-z0-9_.-]"
_ROOM = {"type": "string", "pattern": f"^{_NAME}{{1,{ROOM_MAX}}}$"}
_NICK = {"type": "string", "pattern": f"^{_NAME}{{1,{NICK_MAX}}}$"}
_MESSAGE = {
    "type": "object",
    "properties": {
        "type": {"const": "message"},
        "id": {"type": "integer", "description": "increasing over the whole site"},
        "ts": {"type": "integer", "description": "when it was stored, ms since 1970 (UTC)"},
        "room": {"type": "string"},
        "from": {"type": "string"},
        "text": {"type": "string"},
    },
    "required": ["id", "ts", "room", "from", "text"],
}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _whole(name: str, description: str) -> dict[str, Any]:
    schema = {"type": "integer", "minimum": 0, "maximum": 10**18 - 1}  # 18 digits at most
    parameter: dict[str, Any] = {"name": name, "in": "query", "required": False}
    return parameter | {"description": description, "schema": schema}


def openapi_document(prefix: str, max_message: int) -> dict[str, Any]:
    """The whole document (a JSON object); `prefix` is the site's mount path."""
    room = {"name": "room", "in": "path", "required": True, "schema": _ROOM}
    message = {"$ref": "#/components/schemas/Message"}
    unavailable = _error("the chat's hub is gone (the server is stopping)")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "comptoir chat",
            "version": __version__,
            "description": "Rooms and their messages over HTTP; the live chat is the WebSocket at "
            "`/ws` (its protocol is in comptoir's README).",
        },
        "servers": [{"url": prefix or "/"}],
        "paths": {
            "/api/rooms": {
                "get": {
                    "summary": "Every room: members now, messages kept, the last one's id",
                    "operationId": "list_rooms",
                    "responses": {
                        "200": _json(
                            "the rooms",
                            {
                                "type": "object",
                                "properties": {
                                    "rooms": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "properties": {
                                                "name": {"type": "string"},
                                                "members": {"type": "integer"},
                                                "messages": {"type": "integer"},
                                                "last_id": {"type": "integer"},
                                            },
                                            "required": ["name", "members", "messages"],
                                        },
                                    }
                                },
                                "required": ["rooms"],
                            },
                        ),
                        "503": unavailable,
                    },
                }
            },
            "/api/rooms/{room}/messages": {
                "get": {
                    "summary": "A room's messages, oldest first: the latest, or after/before an id",
                    "operationId": "list_messages",
                    "parameters": [
                        room,
                        _whole("after", "only messages with a larger id"),
                        _whole("before", "only messages with a smaller id"),
                        {
                            "name": "limit",
                            "in": "query",
                            "required": False,
                            "description": f"at most this many (at most {HISTORY_MAX})",
                            "schema": {"type": "integer", "minimum": 0, "maximum": 10**18 - 1},
                        },
                    ],
                    "responses": {
                        "200": _json(
                            "the messages",
                            {
                                "type": "object",
                                "properties": {
                                    "room": {"type": "string"},
                                    "messages": {"type": "array", "items": message},
                                },
                                "required": ["room", "messages"],
                            },
                        ),
                        "400": _error("a room name or a number that breaks the rules"),
                        "404": _error("no such room"),
                        "503": unavailable,
                    },
                },
                "post": {
                    "summary": "Post a message (delivered live to the room's connections)",
                    "operationId": "post_message",
                    "parameters": [room],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "text": {
                                            "type": "string",
                                            "minLength": 1,
                                            "description": f"at most {max_message} bytes",
                                        },
                                        "nick": _NICK,
                                    },
                                    "required": ["text", "nick"],
                                }
                            }
                        },
                    },
                    "responses": {
                        "201": _json("the message as stored", message),
                        "400": _error(
                            "not JSON, a field missing or empty, a name that breaks the rules"
                        ),
                        "404": _error("no such room (the site's rooms are fixed)"),
                        "409": _error(
                            "a connected user holds that nickname, or the chat holds as many"
                            " rooms as it can"
                        ),
                        "413": _error(f"a text over {max_message} bytes"),
                        "415": _error("a body that is not application/json"),
                        "429": _error("more messages from this address than --rate allows"),
                        "503": unavailable,
                    },
                },
            },
            "/api/users": {
                "get": {
                    "summary": "Who is connected now, and in which rooms",
                    "operationId": "list_users",
                    "responses": {
                        "200": _json(
                            "the users",
                            {
                                "type": "object",
                                "properties": {
                                    "users": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "properties": {
                                                "nick": {"type": "string"},
                                                "rooms": {
                                                    "type": "array",
                                                    "items": {"type": "string"},
                                                },
                                            },
                                            "required": ["nick", "rooms"],
                                        },
                                    }
                                },
                                "required": ["users"],
                            },
                        ),
                        "503": unavailable,
                    },
                }
            },
        },
        "components": {"schemas": {"Error": _ERROR, "Message": _MESSAGE}},
    }
