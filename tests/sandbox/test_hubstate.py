"""The sandbox's own hub state records facts about the sandbox that db_query can read."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from protocol import __version__
from sandbox import hubstate
from sandbox.hubstate import HubState


async def test_hub_state_holds_this_sandboxs_version_and_start(tmp_path: Path) -> None:
    state = HubState(tmp_path / "hub_state.db")
    await state.open()
    try:
        answer = await state.query("SELECT key, value FROM hub_state ORDER BY key", None)
    finally:
        await state.close()
    facts = dict(answer["rows"])
    assert facts["version"] == __version__ and float(facts["started_at"]) > 0


async def test_expired_cache_entries_are_purged_as_new_ones_arrive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hubstate, "PURGE_INTERVAL_S", 0.0)
    state = HubState(tmp_path / "hub_state.db", ttl_s=0.01)
    await state.open()
    try:
        for n in range(5):
            await state.remember(f"k{n}", "p", "t", {"n": n})
            await asyncio.sleep(0.02)
        answer = await state.query("SELECT key FROM tool_cache", None)
    finally:
        await state.close()
    assert answer["rows"] == [["k4"]]  # the four expired before it were deleted


async def test_max_cache_entries_keeps_the_newest_answers(tmp_path: Path) -> None:
    state = HubState(tmp_path / "hub_state.db", max_entries=2)
    await state.open()
    try:
        for n in range(5):
            await state.remember(f"k{n}", "p", "t", {"n": n})
            await asyncio.sleep(0.002)  # distinct created_at
        answer = await state.query("SELECT key FROM tool_cache ORDER BY key", None)
    finally:
        await state.close()
    assert answer["rows"] == [["k3"], ["k4"]]


def test_a_cached_answer_needs_the_tool_allowed_and_a_grant() -> None:
    allowed = {"principal": "demo", "grant": "g1", "tools": ["llm_complete"]}
    assert hubstate.cache_grant(allowed, "llm_complete") == "g1"
    assert hubstate.cache_grant({**allowed, "tools": ["*"]}, "llm_complete") == "g1"
    assert hubstate.cache_grant({**allowed, "tools": ["health_check"]}, "llm_complete") is None
    assert hubstate.cache_grant({"principal": "demo", "tools": ["*"]}, "llm_complete") is None
    assert hubstate.cache_grant({**allowed, "grant": ""}, "llm_complete") is None
    assert hubstate.cache_grant(None, "llm_complete") is None
    # the key follows the grant, not the name
    assert hubstate.cache_key("g1", "t", {"a": 1}) != hubstate.cache_key("g2", "t", {"a": 1})
