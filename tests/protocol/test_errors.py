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


def test_an_upstreams_unavailability_keeps_its_code_and_names_the_server() -> None:
    """`unavailable` stays one wire code; `data.upstream` makes it an upstream's, rebuilt
    typed, so a client never takes a dead upstream for an unreachable guardian."""
    wire = errors.UpstreamUnavailable.of("web", "upstream MCP server 'web' failed").to_wire()
    assert wire == {
        "code": "unavailable",
        "message": "upstream MCP server 'web' failed",
        "data": {"upstream": "web"},
    }
    rebuilt = errors.error_from_wire(wire)
    assert isinstance(rebuilt, errors.UpstreamUnavailable) and rebuilt.server == "web"
    plain = errors.error_from_wire({"code": "unavailable", "message": "guardian gone"})
    assert type(plain) is errors.Unavailable
    odd = errors.error_from_wire({"code": "unavailable", "message": "m", "data": {"upstream": 1}})
    assert type(odd) is errors.Unavailable
