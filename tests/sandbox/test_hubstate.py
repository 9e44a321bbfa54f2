"""The sandbox's own hub state records facts about the sandbox that db_query can read."""

from __future__ import annotations

from pathlib import Path

from protocol import __version__
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
