"""`[HUB] trace_trusted_clients`: addresses or CIDRs, checked when the file is read."""

from __future__ import annotations

import pytest

from protocol.pyfun import PyfunError, parse


def hub(value: str) -> str:
    return f'[HUB]\ntrace_trusted_clients = "{value}"\n[HUB_END]\n'


def test_none_by_default() -> None:
    assert parse("[HUB]\n[HUB_END]\n", "t.pyfun").hub.trace_trusted_clients == ()


def test_addresses_and_networks() -> None:
    config = parse(hub("127.0.0.1, 10.0.0.0/8, ::1"), "t.pyfun")
    assert config.hub.trace_trusted_clients == ("127.0.0.1", "10.0.0.0/8", "::1")


def test_a_bad_entry_names_the_key() -> None:
    with pytest.raises(PyfunError, match="trace_trusted_clients"):
        parse(hub("10.0.0.0/8, not-a-network"), "t.pyfun")
