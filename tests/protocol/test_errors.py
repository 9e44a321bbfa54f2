from __future__ import annotations

from protocol import errors


def test_every_code_round_trips_to_its_class() -> None:
    for code in errors.ErrorCode:
        cls = errors._BY_CODE[code.value]
        rebuilt = errors.error_from_wire(cls("boom", {"x": 1}).to_wire())
        assert type(rebuilt) is cls
        assert rebuilt.message == "boom" and rebuilt.data == {"x": 1}


def test_unknown_error_shapes_become_internal() -> None:
    for wire in (None, "x", {"code": "nope", "message": "m"}, {"code": "timeout"}):
        assert isinstance(errors.error_from_wire(wire), errors.Internal)
