from __future__ import annotations

import struct

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.errors import FrameTooLarge, MalformedFrame, ProtocolError
from protocol.framing import FrameDecoder, encode

_leaf = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=50)
_values = st.recursive(
    _leaf | st.binary(max_size=50),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=20,
)


def test_round_trip_of_several_frames_in_one_feed() -> None:
    messages = [[0, 1, "hello", {"protocol_version": 1}], [1, 1, None, {"ok": True}], [2, "x", {}]]
    data = b"".join(encode(m) for m in messages)
    assert FrameDecoder().feed(data) == messages


def test_a_frame_split_byte_by_byte_arrives_once_whole() -> None:
    decoder = FrameDecoder()
    data = encode([0, 7, "health", {}])
    out = []
    for i in range(len(data)):
        out.extend(decoder.feed(data[i : i + 1]))
    assert out == [[0, 7, "health", {}]]
    assert decoder.buffered == 0


def test_announced_length_over_the_maximum_is_refused_before_the_body() -> None:
    decoder = FrameDecoder(max_frame_size=1024)
    with pytest.raises(FrameTooLarge):
        decoder.feed(struct.pack(">I", 1025))  # header only: nothing else was buffered


def test_four_gib_announced_length_is_refused() -> None:
    with pytest.raises(FrameTooLarge):
        FrameDecoder().feed(b"\xff\xff\xff\xff")


def test_garbage_body_is_malformed() -> None:
    with pytest.raises(MalformedFrame):
        FrameDecoder().feed(struct.pack(">I", 1) + b"\xc1")  # 0xc1 is never used by msgpack


def test_trailing_bytes_inside_a_frame_are_malformed() -> None:
    body = msgpack.packb(1) + msgpack.packb(2)
    with pytest.raises(MalformedFrame):
        FrameDecoder().feed(struct.pack(">I", len(body)) + body)


def test_non_string_map_keys_are_malformed() -> None:
    body = msgpack.packb({1: "x"})
    with pytest.raises(MalformedFrame):
        FrameDecoder().feed(struct.pack(">I", len(body)) + body)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_decoder_on_random_bytes_raises_only_protocol_errors(data: bytes) -> None:
    decoder = FrameDecoder(max_frame_size=4096)
    try:
        for message in decoder.feed(data):
            assert message is not ...
    except ProtocolError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.lists(_values, min_size=1, max_size=5), st.lists(st.integers(1, 64), max_size=20))
def test_decoder_round_trips_any_split(values: list[object], cuts: list[int]) -> None:
    data = b"".join(encode(v) for v in values)
    decoder = FrameDecoder()
    out: list[object] = []
    position = 0
    for cut in cuts:
        out.extend(decoder.feed(data[position : position + cut]))
        position += cut
    out.extend(decoder.feed(data[position:]))
    assert out == values
