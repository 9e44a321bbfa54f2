"""What a new user meets in their first hour (issue 15): the example `.pyfun` with one keyless
local provider, so Anthropic and the rest are configured but inactive.

Items: 10 (an SSE session logs no ERROR), 11 (closed MCP sessions are forgotten), 13 (a tool
whose chain is all inactive does not register; a reload registers it), 14 (`/v1` errors in
OpenAI's shape and statuses; `developer` messages), 15 (one wording for argument errors),
16 (open mode in the log, on `/` and in `users add`), 17 (one model list, marked). The tests
run in file order: the last one adds the first user.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import openai
import pytest
from openai import OpenAI

from tests.e2e.mcp_client import mcp_session
from tests.fakes.providers import FakeOpenAI
from tests.helpers import EXAMPLE_CONFIG, Stack, run_ctl


def local_block(base: str, extra_tool: bool = False) -> str:
    text = (
        "\n[LLM_PROVIDER.local]\n"
        'api = "openai"\n'
        f'base_url = "{base}/v1"\n'
        'allow_insecure = "true"\n'
        'requires_key = "false"\n'
        'default_model = "llama-local"\n'
        "[LLM_PROVIDER.local_END]\n"
    )
    if extra_tool:
        text += (
            '[TOOL.local_notes]\nprovider_type = "llm"\ndefault_provider = "local"\n'
            'description = "Notes from the local model."\n[TOOL.local_notes_END]\n'
        )
    return text


@dataclass
class FirstHour:
    stack: Stack
    local: FakeOpenAI
    #: one SDK client per key, closed with the module (one left to the garbage collector
    #: closes its socket with a ResourceWarning in whichever test runs then)
    clients: dict[str, OpenAI] = field(default_factory=dict)

    def ctl(self, *args: str, stdin: str = "") -> str:
        done = run_ctl(self.stack.runtime / "guardian" / "admin.sock", *args, stdin=stdin)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def sdk(self, key: str = "anything") -> OpenAI:
        if key not in self.clients:
            self.clients[key] = OpenAI(base_url=f"{self.stack.url}/v1", api_key=key, max_retries=0)
        return self.clients[key]


@pytest.fixture(scope="module")
def first() -> Iterator[FirstHour]:
    local = FakeOpenAI(name="local", reply_text="Local model says hello").start()
    stack = Stack(config_text=EXAMPLE_CONFIG.read_text() + local_block(local.base))
    try:
        stack.start()
        hour = FirstHour(stack, local)
        yield hour
        for client in hour.clients.values():
            client.close()
    finally:
        stack.cleanup()
        local.stop()


def assert_openai_error(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert error["message"] and error["type"] and error["code"]
    return error


def test_a_model_without_an_active_provider_is_404_model_not_found(first: FirstHour) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        first.sdk().chat.completions.create(
            model="claude-haiku-4-5", messages=[{"role": "user", "content": "Hello"}]
        )
    body = raised.value.body
    assert isinstance(body, dict)
    assert body["code"] == "model_not_found" and body["param"] == "model"
    assert body["type"] == "invalid_request_error"
    assert "claude-haiku-4-5" in body["message"]


def test_a_developer_message_is_a_system_message(first: FirstHour) -> None:
    first.local.requests.clear()
    reply = first.sdk().chat.completions.create(
        model="llama-local",
        messages=[
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": "Hello"},
        ],
    )
    assert reply.choices[0].message.content == "Local model says hello"
    sent = first.local.requests[-1].body["messages"]
    assert {"role": "system", "content": "Be brief."} in sent


def test_middleware_refusals_under_v1_have_openai_shape(first: FirstHour) -> None:
    url = first.stack.url
    too_big = httpx.post(
        f"{url}/v1/chat/completions",
        content=b"{" + b" " * (4 * 1024 * 1024 + 10) + b"}",
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert assert_openai_error(too_big, 413)["type"] == "invalid_request_error"
    form = httpx.post(f"{url}/v1/chat/completions", data={"model": "x"}, timeout=10)
    assert_openai_error(form, 415)
    # Outside /v1 the gateway's own shape stays.
    assert set(httpx.post(f"{url}/api", data={"a": "b"}, timeout=10).json()["error"]) == {
        "code",
        "message",
    }


def test_argument_errors_read_the_same_over_mcp_and_api(first: FirstHour) -> None:
    async def over_mcp(arguments: dict[str, object]) -> str:
        async with mcp_session(first.stack.url) as client:
            result = await client.call_tool("llm_complete", arguments)
        assert result.is_error
        return result.content[0].text

    cases = [
        ({}, "invalid_params: missing parameter(s) for llm_complete: prompt"),
        (
            {"prompt": "x", "colour": "red"},
            "invalid_params: unknown parameter(s) for llm_complete: colour",
        ),
        (
            {"prompt": "x", "max_tokens": "many"},
            "invalid_params: invalid parameter(s) for llm_complete: max_tokens:",
        ),
    ]
    for arguments, wording in cases:
        text = asyncio.run(over_mcp(arguments))
        assert text.startswith(wording), text
        assert "pydantic" not in text and "\n" not in text
        api = httpx.post(
            f"{first.stack.url}/api",
            json={"tool": "llm_complete", "params": arguments},
            timeout=10,
        )
        assert api.status_code == 400
        error = api.json()["error"]
        assert f"{error['code']}: {error['message']}".startswith(wording), error


def test_one_model_list_marked_active_or_not(first: FirstHour) -> None:
    listed = httpx.post(
        f"{first.stack.url}/api", json={"tool": "list_active_tools", "params": {}}, timeout=10
    ).json()["result"]
    assert {"id": "claude-haiku-4-5", "provider": "anthropic", "active": False} in listed["models"]
    page = httpx.get(f"{first.stack.url}/", headers={"accept": "text/html"}, timeout=10).text
    row = re.search(r"<tr class=inactive><td>claude-haiku-4-5</td>.*?</tr>", page)
    assert row is not None and "inactive: anthropic has no key" in row.group(0), page
    usable = {m.id for m in first.sdk().models.list()}
    assert "claude-haiku-4-5" not in usable and "llama-local" in usable


def test_tools_register_only_with_an_active_provider_along_their_chain(first: FirstHour) -> None:
    async def names() -> set[str]:
        async with mcp_session(first.stack.url) as client:
            return {t.name for t in (await client.list_tools()).tools}

    tools = asyncio.run(names())
    assert "llm_complete" in tools
    assert not {"code_review", "summarize", "translate", "web_search"} & tools
    first.stack.config.write_text(
        EXAMPLE_CONFIG.read_text() + local_block(first.local.base, extra_tool=True)
    )
    first.ctl("config", "reload")
    assert "local_notes" in asyncio.run(names())


def test_an_sse_session_logs_no_error_and_closed_sessions_are_forgotten(first: FirstHour) -> None:
    told_before = first.stack.logs().count("tool list changed: told")

    async def sessions() -> None:
        async with mcp_session(first.stack.url, "http", "legacy") as staying:
            await staying.call_tool("health_check", {})
            for kind, mode in (("sse", "legacy"), ("http", "legacy"), ("http", "auto")) * 2:
                async with mcp_session(first.stack.url, kind, mode) as client:
                    await client.call_tool("health_check", {})
            await asyncio.sleep(0.5)  # the closed connections unwind
            # A change to the tool list now tells the open sessions: only one is.
            toggled = "local_notes" not in first.stack.config.read_text()
            first.stack.config.write_text(
                EXAMPLE_CONFIG.read_text() + local_block(first.local.base, extra_tool=toggled)
            )
            await asyncio.to_thread(first.ctl, "config", "reload")
            await asyncio.to_thread(wait_for, first.stack, told_before + 1)

    asyncio.run(sessions())
    logs = first.stack.logs()
    told = re.findall(r"tool list changed: told (\d+) MCP session", logs)
    assert told[-1] == "1", told
    assert " ERROR " not in logs and "Traceback" not in logs, logs[-5000:]


def wait_for(stack: Stack, count: int, timeout: float = 10.0) -> None:
    """Until the log has `count` "tool list changed" lines."""
    deadline = time.monotonic() + timeout
    while stack.logs().count("tool list changed: told") < count:
        assert time.monotonic() < deadline, stack.logs()[-3000:]
        time.sleep(0.1)


def wait_for_text(stack: Stack, text: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while text not in stack.logs() and time.monotonic() < deadline:
        time.sleep(0.1)
    return stack.logs()


def test_open_mode_is_said_and_its_end_is_said_too(first: FirstHour) -> None:
    url = first.stack.url
    logs = first.stack.logs()
    assert re.search(r"WARNING .*the gateway is open on loopback", logs), logs[-3000:]
    page = httpx.get(f"{url}/", headers={"accept": "text/html"}, timeout=10).text
    assert "Open mode" in page and "users add" in page
    added = first.ctl("users", "add", "ada", stdin="correct horse battery\n")
    assert "auth is now ON" in added and "tokens issue --user ada" in added
    logs = wait_for_text(first.stack, "open mode is over")
    assert re.search(r"WARNING .*open mode is over", logs), logs[-3000:]
    # And every /v1 refusal keeps OpenAI's shape, 401 included.
    missing = httpx.get(f"{url}/v1/models", timeout=10)
    assert assert_openai_error(missing, 401)["type"] == "authentication_error"
    token = first.ctl("tokens", "issue", "--user", "ada").strip()
    assert (
        "Auth is on"
        in httpx.get(
            f"{url}/",
            headers={"accept": "text/html", "authorization": f"Bearer {token}"},
            timeout=10,
        ).text
    )
