"""The watch of upstream tools served: which servers it names as changed, and when."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from guardian.upstream.watch import ServedWatch


class FakeService:
    """What the watch reads of `UpstreamService`: the configured servers, what each serves."""

    def __init__(self) -> None:
        self.served: dict[str, frozenset[tuple[str, str]]] = {}
        config = SimpleNamespace(mcp_servers={})
        self.pool = SimpleNamespace(
            live=SimpleNamespace(snapshot=SimpleNamespace(config=config)), changed=asyncio.Event()
        )

    def configure(self, *names: str) -> None:
        self.pool.live.snapshot.config.mcp_servers = {n: SimpleNamespace(name=n) for n in names}

    async def served_digests(self, config: Any) -> frozenset[tuple[str, str]]:
        return self.served.get(config.name, frozenset())


async def test_only_a_difference_in_what_is_served_is_notified() -> None:
    service = FakeService()
    told: list[list[str]] = []
    watch = ServedWatch(service, told.append)  # type: ignore[arg-type]
    service.configure("web", "local")
    assert await watch.check() == []  # nothing served, nothing was: no news
    service.served["web"] = frozenset({("echo", "d1"), ("add", "d2")})
    assert await watch.check() == ["web"]  # approved
    assert await watch.check() == []  # the same again: quiet
    service.served["web"] = frozenset({("add", "d2")})  # echo changed: its pin hides it
    service.served["local"] = frozenset({("echo", "d3")})
    assert await watch.check() == ["local", "web"]
    service.configure("local")  # web's block removed by a reload: its tools went
    assert await watch.check() == ["web"]
    assert told == [["web"], ["local", "web"], ["web"]]


async def test_a_change_wakes_the_watch_at_once() -> None:
    service = FakeService()
    told: list[list[str]] = []
    watch = ServedWatch(service, told.append)  # type: ignore[arg-type]
    service.configure("web")
    task = asyncio.create_task(watch.run())
    try:
        await asyncio.sleep(0.1)
        service.served["web"] = frozenset({("echo", "d1")})
        service.pool.changed.set()
        for _ in range(50):
            if told:
                break
            await asyncio.sleep(0.02)
        assert told == [["web"]]  # long before the next round (WATCH_EVERY_S)
    finally:
        task.cancel()
