"""The pure rules of client registration: nesting depth, the JWK set's shape, settings."""

from __future__ import annotations

from typing import Any

from guardian.oauth import registration


def test_depth_is_bounded_and_needs_no_recursion() -> None:
    assert registration.depth("x") == 0
    assert registration.depth({"a": ["b"]}) == 2
    deep: Any = "x"
    for _ in range(100_000):
        deep = [deep]
    assert registration.depth(deep) == registration.MAX_DEPTH + 1


def test_shape_problems() -> None:
    assert registration.shape_problem({"redirect_uris": ["u"], "jwks": {"keys": [{}]}}) is None
    for jwks in ({}, {"keys": "x"}, {"keys": []}, {"keys": [1]}, "x"):
        assert "JWK set" in str(registration.shape_problem({"jwks": jwks}))
    assert "deeper" in str(registration.shape_problem({"x": [[[[[["y"]]]]]]}))


def test_settings_fall_back_to_defaults() -> None:
    assert registration.max_clients({}) == registration.DEFAULT_MAX_CLIENTS
    assert registration.max_clients({"SEALGATE_OAUTH_MAX_CLIENTS": "3"}) == 3
    for bad in ("0", "-1", "nan", "many"):
        env = {"SEALGATE_OAUTH_MAX_CLIENTS": bad, "SEALGATE_OAUTH_UNUSED_CLIENT_HOURS": bad}
        assert registration.max_clients(env) == registration.DEFAULT_MAX_CLIENTS
        assert registration.unused_ttl_s(env) == registration.DEFAULT_UNUSED_HOURS * 3600
    assert registration.unused_ttl_s({"SEALGATE_OAUTH_UNUSED_CLIENT_HOURS": "2"}) == 7200
