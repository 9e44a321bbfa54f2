"""What SealGate's MCP server declares beyond tools/call, read by the official client on every
transport: titles, annotations, icons, output schemas that the answers really match, a stable
order, the server's own name, version and instructions. (`db_query` needs PostgreSQL:
test_db_and_cache.py checks its schema and annotations.)"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import jsonschema
import pytest
from mcp import MCPError
from mcp_types import PromptReference, ResourceTemplateReference

from protocol import __version__
from tests.e2e.mcp_client import MODES, mcp_session
from tests.e2e.world import World
from tests.fakes.providers import FakeOpenAI
from tests.helpers import Stack, run_ctl

ADMIN = "sg_mcp-surface-bootstrap-0123456789"

#: Arguments that make each tool of the world's stack answer (not refuse).
CALLS: dict[str, dict[str, Any]] = {
    "health_check": {},
    "list_active_tools": {},
    "get_model_info": {},
    "llm_complete": {"prompt": "hello"},
    "summarize": {"prompt": "a long text"},
    "web_search": {"query": "sealgate"},
}


@pytest.mark.parametrize(("kind", "mode"), MODES)
async def test_every_tool_declares_itself_and_answers_its_own_schema(
    w: World, kind: str, mode: str
) -> None:
    async with mcp_session(w.stack.url, kind, mode) as client:
        tools = (await client.list_tools()).tools
        names = [tool.name for tool in tools]
        assert names == sorted(names)  # a stable order, whatever was registered first
        assert set(CALLS) <= set(names), names
        for tool in tools:
            assert tool.title and tool.annotations is not None, tool.name
            assert tool.annotations.destructive_hint is False, tool.name
            assert tool.icons and tool.icons[0].src.startswith("data:image/svg+xml"), tool.name
            schema = tool.output_schema
            assert schema is not None and schema["type"] == "object", tool.name
            jsonschema.Draft202012Validator.check_schema(schema)
            if tool.name not in CALLS:
                continue
            answer = await client.call_tool(tool.name, CALLS[tool.name])
            assert not answer.is_error, (tool.name, answer.content)
            # the client validated it already; say so here too, whatever the client does
            jsonschema.validate(answer.structured_content, schema)
        # the streamed path (a client that asks for progress) answers the same schema
        progress: list[float] = []

        async def on_progress(done: float, total: float | None, message: str | None) -> None:
            progress.append(done)

        streamed = await client.call_tool(
            "llm_complete", {"prompt": "stream it"}, progress_callback=on_progress
        )
        assert not streamed.is_error and progress, streamed.content
        schema = next(t.output_schema for t in tools if t.name == "llm_complete")
        jsonschema.validate(streamed.structured_content, schema)
        by_name = {tool.name: tool.annotations for tool in tools}
        assert by_name["web_search"].open_world_hint is True
        assert by_name["health_check"].read_only_hint is True
        for llm in ("llm_complete", "summarize"):
            assert by_name[llm].idempotent_hint is False and by_name[llm].read_only_hint is False


async def test_a_schema_that_does_not_fit_is_caught() -> None:
    """The check above can fail: an answer with a field the schema does not declare."""
    from sandbox.mcp_describe import BUILT_IN

    schema = BUILT_IN["health_check"].schema
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"status": "ok", "sandbox_version": "1", "extra": 1}, schema)


@pytest.mark.parametrize(("kind", "mode"), MODES)
async def test_server_says_who_it_is_on_every_transport(w: World, kind: str, mode: str) -> None:
    async with mcp_session(w.stack.url, kind, mode) as client:
        info = client.server_info
        assert info is not None and info.version == __version__, info
        instructions = client.instructions
        assert instructions and "gateway" in instructions
        capabilities = client.server_capabilities
        assert capabilities.tools and capabilities.prompts and capabilities.resources
        assert capabilities.completions is not None


async def test_server_discover_answers_what_the_server_supports(w: World) -> None:
    """A 2026-07-28 client asks `server/discover` instead of the initialize handshake."""
    async with mcp_session(w.stack.url, "http", "auto") as client:
        discovered = client.session.discover_result
        assert discovered is not None, "the client fell back to the handshake"
        assert "2026-07-28" in discovered.supported_versions
        assert discovered.capabilities.prompts and discovered.capabilities.resources
        assert discovered.instructions and "gateway" in discovered.instructions
        assert client.server_info is not None and client.server_info.version == __version__


async def test_modern_lists_are_private_to_their_caller(w: World) -> None:
    """Key-gated lists differ from one configuration (and principal) to the next: no shared
    cache may serve them to someone else."""
    async with mcp_session(w.stack.url, "http", "auto") as client:
        listed = await client.list_tools()
        assert listed.cache_scope == "private"


@pytest.mark.parametrize(("kind", "mode"), MODES)
async def test_tools_with_an_instruction_are_prompts_with_completion(
    w: World, kind: str, mode: str
) -> None:
    async with mcp_session(w.stack.url, kind, mode) as client:
        prompts = {prompt.name: prompt for prompt in (await client.list_prompts()).prompts}
        # summarize has a system_prompt; web_search (a search tool) and llm_complete do not
        assert list(prompts) == ["summarize"], list(prompts)
        summarize = prompts["summarize"]
        assert summarize.title == "Summarize" and summarize.description == "Summarize a text."
        arguments = {a.name: a for a in summarize.arguments or []}
        assert list(arguments) == ["text", "model", "provider"]
        assert arguments["text"].required is True and arguments["model"].required is False
        assert all(a.description for a in arguments.values())

        got = await client.get_prompt("summarize", {"text": "The quick brown fox."})
        message = got.messages[0]
        assert message.role == "user"
        assert message.content.text == "Summarize briefly.\n\nThe quick brown fox."
        via = await client.get_prompt("summarize", {"text": "fox", "model": "claude-test"})
        assert "`summarize` tool (model `claude-test`)" in via.messages[0].content.text

        ref = PromptReference(type="ref/prompt", name="summarize")
        models = await client.complete(ref, {"name": "model", "value": "cl"})
        assert models.completion.values == ["claude-test"]
        every = await client.complete(ref, {"name": "model", "value": ""})
        # models of active providers only: `rationed` is the local provider's, which is active
        assert "claude-test" in every.completion.values
        providers = await client.complete(ref, {"name": "provider", "value": "ge"})
        assert providers.completion.values == ["gemini"]
        nothing = await client.complete(ref, {"name": "text", "value": "a"})
        assert nothing.completion.values == []


@pytest.mark.parametrize(("kind", "mode"), MODES)
async def test_resources_catalog_usage_and_status(w: World, kind: str, mode: str) -> None:
    async with mcp_session(w.stack.url, kind, mode) as client:
        listed = [str(r.uri) for r in (await client.list_resources()).resources]
        assert listed == ["sealgate://models", "sealgate://status", "sealgate://usage/me"]
        templates = (await client.list_resource_templates()).resource_templates
        assert [t.uri_template for t in templates] == ["sealgate://models/{id}"]

        catalog = await read_json(client, "sealgate://models")
        ids = [model["id"] for model in catalog["models"]]
        assert "claude-test" in ids and "rationed" in ids
        one = await read_json(client, "sealgate://models/claude-test")
        assert one["id"] == "claude-test" and one["provider"] == "anthropic"
        with pytest.raises(MCPError, match="not_found"):
            await client.read_resource("sealgate://models/no-such-model")

        await client.call_tool("llm_complete", {"prompt": "count me"})
        usage = await read_json(client, "sealgate://usage/me")
        assert usage["principal"] == "anonymous" and usage["calls"] >= 1  # open mode
        assert usage["cost_usd"] > 0 and usage["monthly_budget_usd"] is None

        status = await read_json(client, "sealgate://status")
        assert status["status"] == "ok" and status["guardian"]["status"] == "ok"
        assert status["guardian_connected"] is True and "summarize" in status["prompts"]
        assert status["sandbox_version"] == __version__ and "llm_complete" in status["tools"]

        ref = ResourceTemplateReference(type="ref/resource", uri="sealgate://models/{id}")
        completed = await client.complete(ref, {"name": "id", "value": "claude"})
        assert completed.completion.values == ["claude-test"]


async def read_json(client: Any, uri: str) -> Any:
    answer = await client.read_resource(uri)
    content = answer.contents[0]
    assert content.mime_type == "application/json"
    return json.loads(content.text)


def narrow_config(fake: FakeOpenAI) -> str:
    return f"""
[LLM_PROVIDER.fake]
api = "openai"
base_url = "{fake.base}/v1"
allow_insecure = "true"
requires_key = "false"
default_model = "open-model"
[LLM_PROVIDER.fake_END]
[MODEL.open-model]
provider = "fake"
cost_input_per_1m = "1"
cost_output_per_1m = "1"
[MODEL.open-model_END]
[MODEL.secret-model]
provider = "fake"
[MODEL.secret-model_END]
[ROLE.narrow]
models = "open-model"
monthly_budget_usd = "5"
[ROLE.narrow_END]
"""


async def test_resources_show_only_what_the_caller_may_see(
    stack_factory: Callable[..., Stack],
) -> None:
    fake = FakeOpenAI(name="fake").start()
    try:
        stack = stack_factory(
            env={"SEALGATE_BOOTSTRAP_TOKEN": ADMIN}, config_text=narrow_config(fake)
        )
        admin_socket = stack.runtime / "guardian" / "admin.sock"
        added = run_ctl(
            admin_socket, "users", "add", "bob", "--role", "narrow", stdin="a long password\n"
        )
        assert added.returncode == 0, added.stderr
        bob = run_ctl(admin_socket, "tokens", "issue", "--user", "bob").stdout.strip()
        for kind, mode in MODES:
            as_bob = {"Authorization": f"Bearer {bob}"}
            async with mcp_session(stack.url, kind, mode, headers=as_bob) as client:
                catalog = await read_json(client, "sealgate://models")
                assert [m["id"] for m in catalog["models"]] == ["open-model"]
                with pytest.raises(MCPError, match="not_found"):
                    await client.read_resource("sealgate://models/secret-model")
                await client.call_tool("llm_complete", {"prompt": "mine"})
                usage = await read_json(client, "sealgate://usage/me")
                assert usage["principal"] == "bob" and usage["role"] == "narrow"
                assert usage["calls"] >= 1 and usage["monthly_budget_usd"] == 5
            as_admin = {"Authorization": f"Bearer {ADMIN}"}
            async with mcp_session(stack.url, kind, mode, headers=as_admin) as client:
                catalog = await read_json(client, "sealgate://models")
                assert {m["id"] for m in catalog["models"]} == {"open-model", "secret-model"}
                usage = await read_json(client, "sealgate://usage/me")
                assert usage["principal"] != "bob" and usage["calls"] == 0
    finally:
        fake.stop()
