"""Open mode (no user yet) needs the sandbox's configured host to be loopback. That answer
is worked out once per configuration (it is asked on every call): a reload that moves the
host off loopback must end open mode at once, and one that moves it back restore it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from guardian.identity.accounts import Accounts
from guardian.identity.cache import PrincipalCache
from guardian.identity.passwords import ROUNDS_SETTING, Passwords
from guardian.limits import Limits
from guardian.liveconfig import LiveConfig
from guardian.redact import Redactor
from guardian.secrets import Secrets
from guardian.snapshot import Snapshot
from guardian.storage import Storage, open_storage
from protocol.pyfun import parse

ENVIRON = {ROUNDS_SETTING: "1000"}


def _snapshot(host: str) -> Snapshot:
    return Snapshot.build(parse(f'[HUB]\nhost = "{host}"\n[HUB_END]\n'), Secrets({}))


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[Storage]:
    store = await open_storage(None, tmp_path / "guardian.db")
    yield store
    await store.close()


async def test_a_reload_that_moves_the_host_changes_open_mode_at_once(
    storage: Storage, tmp_path: Path
) -> None:
    live = LiveConfig(
        path=tmp_path / ".pyfun",
        environ=ENVIRON,
        snapshot=_snapshot("127.0.0.1"),
        redactor=Redactor(),
        store_values=dict,
        announce=lambda names: None,
    )
    limits = Limits(storage)
    await limits.start()
    accounts = Accounts(live, storage, ENVIRON, limits, PrincipalCache(), Passwords(ENVIRON))
    assert accounts.open_possible()
    for host, expected in [("0.0.0.0", False), ("::1", True), ("example.org", False)]:
        live.swap(_snapshot(host))
        assert accounts.open_possible() is expected, host
        assert accounts.open_possible() is expected, host  # asked again: the same answer
