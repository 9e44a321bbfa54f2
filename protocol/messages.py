"""msgpack-rpc message shapes, checked on the way in.

    request       [0, msgid, method, params]
    response      [1, msgid, error, result]
    notification  [2, method, params]
    stream chunk  [3, msgid, chunk]          (zero or more, before a streaming call's response)

`parse` turns a decoded frame into one of the dataclasses below or raises `MalformedFrame`;
a sound peer never sends anything it rejects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from protocol.errors import MalformedFrame

REQUEST = 0
RESPONSE = 1
NOTIFICATION = 2
STREAM_CHUNK = 3

MAX_MSGID = 2**32 - 1
MAX_METHOD_LENGTH = 64


@dataclass(frozen=True, slots=True)
class Request:
    msgid: int
    method: str
    params: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Response:
    msgid: int
    error: dict[str, Any] | None
    result: Any


@dataclass(frozen=True, slots=True)
class Notification:
    method: str
    params: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StreamChunk:
    msgid: int
    chunk: Any


Message = Request | Response | Notification | StreamChunk


def request(msgid: int, method: str, params: dict[str, Any]) -> list[Any]:
    return [REQUEST, msgid, method, params]


def response(msgid: int, error: dict[str, Any] | None, result: Any) -> list[Any]:
    return [RESPONSE, msgid, error, result]


def notification(method: str, params: dict[str, Any]) -> list[Any]:
    return [NOTIFICATION, method, params]


def stream_chunk(msgid: int, chunk: Any) -> list[Any]:
    return [STREAM_CHUNK, msgid, chunk]


def _msgid(value: object) -> int:
    # bool is an int subclass; msgpack never yields one for an integer, but be exact.
    if type(value) is not int or not 0 <= value <= MAX_MSGID:
        raise MalformedFrame("msgid must be an integer in 0..2**32-1")
    return value


def _method(value: object) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_METHOD_LENGTH:
        raise MalformedFrame(f"method must be a string of 1..{MAX_METHOD_LENGTH} characters")
    return value


def _params(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedFrame("params must be a map")
    return value


def parse(obj: object) -> Message:
    """Check one decoded frame against the four message shapes."""
    if not isinstance(obj, list) or not obj:
        raise MalformedFrame("a message must be a non-empty array")
    kind = obj[0]
    if kind == REQUEST and len(obj) == 4:
        return Request(_msgid(obj[1]), _method(obj[2]), _params(obj[3]))
    if kind == RESPONSE and len(obj) == 4:
        error = obj[2]
        if error is not None and not isinstance(error, dict):
            raise MalformedFrame("a response's error must be nil or a map")
        return Response(_msgid(obj[1]), error, obj[3])
    if kind == NOTIFICATION and len(obj) == 3:
        return Notification(_method(obj[1]), _params(obj[2]))
    if kind == STREAM_CHUNK and len(obj) == 3:
        return StreamChunk(_msgid(obj[1]), obj[2])
    raise MalformedFrame("unknown message type or wrong number of fields")
