"""Which tools the guardian reports active: a tool registers only when a provider along its
own fallback chain is active (issue 15, item 13)."""

from __future__ import annotations

from guardian.secrets import Secret, Secrets
from guardian.snapshot import Snapshot
from protocol.pyfun import parse
from tests.helpers import EXAMPLE_CONFIG

LOCAL_ONLY = """
[LLM_PROVIDER.local]
api            = "openai"
base_url       = "http://127.0.0.1:11434/v1"
allow_insecure = "true"
requires_key   = "false"
default_model  = "llama3.2"
[LLM_PROVIDER.local_END]
"""


def snapshot(extra: str = "", keys: tuple[str, ...] = ()) -> Snapshot:
    config = parse(EXAMPLE_CONFIG.read_text() + extra, ".pyfun")
    return Snapshot.build(config, Secrets({k: Secret("x" * 20, "ENVIRONMENT") for k in keys}))


def test_a_tool_whose_whole_chain_is_inactive_does_not_register() -> None:
    tools = snapshot(LOCAL_ONLY).tools
    assert "llm_complete" in tools  # the local provider serves it
    assert "code_review" not in tools  # anthropic -> gemini -> openrouter -> huggingface
    assert "summarize" not in tools and "translate" not in tools


def test_a_tool_registers_when_any_provider_along_its_chain_is_active() -> None:
    tools = snapshot(keys=("HF_TOKEN",)).tools  # the end of every LLM tool's chain
    assert {"code_review", "summarize", "translate", "llm_complete"} <= set(tools)
    assert "web_search" not in tools


def test_a_search_tool_follows_its_chain_too() -> None:
    assert "web_search" in snapshot(keys=("TAVILY_API_KEY",)).tools


def test_a_tool_without_a_default_provider_uses_any_active_one() -> None:
    extra = LOCAL_ONLY + (
        '[TOOL.free]\nprovider_type = "llm"\ndescription = "any provider"\n[TOOL.free_END]\n'
    )
    assert "free" in snapshot(extra).tools


def test_a_tool_block_switched_off_is_not_served() -> None:
    text = (
        '[LLM_PROVIDER.local]\nbase_url = "http://127.0.0.1:9/v1"\nallow_insecure = "true"\n'
        'requires_key = "false"\n[LLM_PROVIDER.local_END]\n'
        '[TOOL.llm_complete]\nactive = "false"\n[TOOL.llm_complete_END]\n'
    )
    assert "llm_complete" not in Snapshot.build(parse(text), Secrets({})).tools
    on = text.replace('active = "false"', 'active = "true"')
    assert "llm_complete" in Snapshot.build(parse(on), Secrets({})).tools
