from __future__ import annotations

import pytest

from protocol.errors import MalformedFrame
from protocol.messages import Notification, Request, Response, StreamChunk, parse


def test_each_message_kind_parses() -> None:
    assert parse([0, 1, "health", {}]) == Request(1, "health", {})
    assert parse([1, 1, None, {"a": 1}]) == Response(1, None, {"a": 1})
    assert parse([2, "cancel", {"msgid": 3}]) == Notification("cancel", {"msgid": 3})
    assert parse([3, 4, "chunk"]) == StreamChunk(4, "chunk")


@pytest.mark.parametrize(
    "frame",
    [
        None,
        [],
        {"a": 1},
        [0, 1, "health"],
        [0, -1, "health", {}],
        [0, 2**32, "health", {}],
        [0, True, "health", {}],
        [0, 1, "", {}],
        [0, 1, "x" * 65, {}],
        [0, 1, b"health", {}],
        [0, 1, "health", []],
        [1, 1, "error", None],
        [4, 1, "x", {}],
        [2, "cancel"],
    ],
)
def test_malformed_shapes_are_refused(frame: object) -> None:
    with pytest.raises(MalformedFrame):
        parse(frame)
