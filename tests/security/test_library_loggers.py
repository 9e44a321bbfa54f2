"""Library loggers print values: at debug level the sandbox's aiosqlite logger printed every
statement with its parameters, so every cached answer reached the log. No library logger
speaks below WARNING, whatever the log level; the project's own loggers keep theirs."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Callable, Iterator

import pytest

from protocol.logsafety import protect
from tests.e2e.mcp_client import mcp_session
from tests.fakes.providers import FakeOpenAI
from tests.helpers import Stack
from tests.security.common import provider_block

#: The provider's answer: a user's data, which the sandbox caches for deterministic calls.
ANSWER = "private-answer-4f1c9e in the users own words"


def test_library_records_below_warning_are_dropped_whatever_the_level() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    protect(handler)
    root = logging.getLogger()
    before = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    library = logging.getLogger("aiosqlite")
    library_level = library.level
    library.setLevel(logging.DEBUG)  # as a library or a debugging operator may
    try:
        library.debug("executing %s", ("INSERT INTO tool_cache VALUES (?)", ANSWER))
        logging.getLogger("httpx").info("HTTP Request: POST https://x/?key=%s", ANSWER)
        library.warning("iterdump completed unexpectedly")
        logging.getLogger("sealgate.sandbox").debug("our own debug line")
    finally:
        root.removeHandler(handler)
        root.setLevel(before)
        library.setLevel(library_level)
    output = stream.getvalue()
    assert ANSWER not in output
    assert "iterdump completed unexpectedly" in output
    assert "our own debug line" in output


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI(name="fake", reply_text=ANSWER).start()
    yield server
    server.stop()


def test_a_debug_level_sandbox_logs_no_cached_answer(
    stack_factory: Callable[..., Stack], fake: FakeOpenAI
) -> None:
    stack = stack_factory(
        env={"HUB_LOG_LEVEL": "debug"}, config_text=provider_block(fake, keyed=False)
    )

    async def twice() -> bool:
        async with mcp_session(stack.url) as client:
            params = {"prompt": "same", "temperature": 0}
            await client.call_tool("llm_complete", params)
            second = await client.call_tool("llm_complete", params)
            return bool(second.structured_content.get("cached"))

    assert asyncio.run(twice())  # stored in and read from the sandbox's cache
    logs = stack.logs()
    assert ANSWER not in logs
    assert "aiosqlite" not in logs
