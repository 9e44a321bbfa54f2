"""Which tools become MCP prompts, what the prompt says, and what completion suggests."""

from __future__ import annotations

from types import SimpleNamespace

from protocol.pyfun import parse
from sandbox.guardian_link import ActiveNames
from sandbox.mcp_prompts import candidates, completer, prompt_names, prompt_text

CONFIG = parse(
    """
[LLM_PROVIDER.a]
base_url = "https://a.example/v1"
env_key = "KEY_a"
[LLM_PROVIDER.a_END]
[LLM_PROVIDER.b]
base_url = "https://b.example/v1"
env_key = "KEY_b"
[LLM_PROVIDER.b_END]
[MODEL.alpha-1]
provider = "a"
[MODEL.alpha-1_END]
[MODEL.beta-1]
provider = "b"
[MODEL.beta-1_END]
[TOOL.review]
provider_type = "llm"
system_prompt = "Review it."
[TOOL.review_END]
[TOOL.plain]
provider_type = "llm"
[TOOL.plain_END]
[TOOL.find]
provider_type = "search"
system_prompt = "not a prompt: a search tool"
[TOOL.find_END]
"""
)
ACTIVE = ActiveNames(llm_providers=("a",), tools=("review", "plain", "find", "gone"))


def test_only_active_llm_tools_with_an_instruction_are_prompts() -> None:
    assert prompt_names(CONFIG, ACTIVE) == ["review"]
    assert prompt_names(CONFIG, ActiveNames(llm_providers=("a",), tools=("plain",))) == []


def test_the_prompt_text_is_the_instruction_then_the_text_or_the_tool_with_its_options() -> None:
    tool = CONFIG.tools["review"]
    assert prompt_text(tool, "x = 1", None, None) == "Review it.\n\nx = 1"
    routed = prompt_text(tool, "x = 1", "alpha-1", "a")
    assert "`review` tool (model `alpha-1`, provider `a`)" in routed and routed.endswith("x = 1")


def test_completion_names_only_usable_models_and_providers_by_prefix() -> None:
    assert candidates("model", CONFIG, ACTIVE) == ["alpha-1"]  # beta-1's provider has no key
    assert candidates("provider", CONFIG, ACTIVE) == ["a"]
    assert candidates("text", CONFIG, ACTIVE) == []
    complete = completer(lambda: CONFIG, lambda: ACTIVE)
    argument = SimpleNamespace(name="model", value="AL")
    assert complete(None, argument, None) == ["alpha-1"]
    assert complete(None, SimpleNamespace(name="model", value="z"), None) == []
