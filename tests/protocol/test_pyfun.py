from __future__ import annotations

import pytest

from protocol.pyfun import (
    RESERVED_QUERY_SCHEMAS,
    DbQueryConfig,
    DbSyncConfig,
    HubLimitsConfig,
    PyfunError,
    parse,
    with_env_overrides,
)
from tests.helpers import EXAMPLE_CONFIG


def test_the_example_config_parses_without_warnings() -> None:
    config = parse(EXAMPLE_CONFIG.read_text(), ".pyfun")
    assert config.warnings == ()
    assert config.hub.port == 7860 and config.hub.host == "127.0.0.1"
    assert list(config.llm_providers) == ["anthropic", "gemini", "openrouter", "huggingface"]
    assert config.llm_providers["anthropic"].fallback_to == "gemini"
    assert config.search_providers["brave"].api == "brave"
    assert "#" in config.tools["code_review"].system_prompt


def test_upper_case_hub_keys_mean_the_same_as_lower_case() -> None:
    text = '[HUB]\nHUB_NAME = "X"\nHUB_PORT = "9000"\nHUB_TRANSPORT = "sse"\n[HUB_END]\n'
    hub = parse(text).hub
    assert (hub.name, hub.port, hub.transport) == ("X", 9000, "sse")


def test_named_blocks_without_grouping_sections_and_odd_model_ids() -> None:
    text = """
[MODEL.meta-llama/llama-3.3-70b:free]
provider = "openrouter"
cost_input_per_1m = "0.5"
[MODEL.meta-llama/llama-3.3-70b:free_END]
[LLM_PROVIDER.local]
api = "openai"
base_url = "http://127.0.0.1:11434/v1"
allow_insecure = "true"
requires_key = "false"
models = "a, b ,c"
[LLM_PROVIDER.local_END]
"""
    config = parse(text)
    assert config.models["meta-llama/llama-3.3-70b:free"].cost_input_per_1m == 0.5
    local = config.llm_providers["local"]
    assert local.models == ("a", "b", "c") and not local.requires_key and local.env_keys == ()


def test_comments_outside_quotes_only() -> None:
    text = '[HUB]\nname = "a # b"  # a comment\n# name = "ignored"\n[HUB_END]  # done\n'
    assert parse(text).hub.name == "a # b"


def test_unknown_sections_and_keys_warn() -> None:
    text = '[FUTURE]\nx = "1"\n[FUTURE_END]\n[HUB]\nshiny = "yes"\n[HUB_END]\n'
    warnings = parse(text, "f.pyfun").warnings
    assert any("f.pyfun:1: unknown section [FUTURE]" in w for w in warnings)
    assert any("f.pyfun:5: unknown key 'shiny'" in w for w in warnings)


def test_env_overrides_host_and_port() -> None:
    config = with_env_overrides(parse(""), {"HUB_HOST": "0.0.0.0", "HUB_PORT": "8080"})
    assert (config.hub.host, config.hub.port) == ("0.0.0.0", 8080)
    with pytest.raises(PyfunError, match="HUB_PORT"):
        with_env_overrides(parse(""), {"HUB_PORT": "eighty"})


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ('[HUB]\nname = "x"\n', 1, "never closed"),
        ("[HUB]\nname = x\n[HUB_END]\n", 2, "values must be quoted"),
        ('[HUB]\nname = "x\n[HUB_END]\n', 2, "unterminated string"),
        ("[HUB]\n[HUB_END]\n[HUB]\n[HUB_END]\n", 3, "duplicate section [HUB]"),
        ('[HUB]\nname = "a"\nname = "b"\n[HUB_END]\n', 3, "duplicate key 'name'"),
        ("[HUB]\n[TOOLS_END]\n", 2, "while [HUB] is open"),
        ("[TOOLS]\n[MODELS_END]\n", 2, "while [TOOLS] is open"),
        ("[HUB_END]\n", 1, "not open"),
        ("[HUB]\n[MODEL.x]\n", 2, "starts inside [HUB]"),
        ("[MODEL.]\n", 1, "needs a name"),
        ('[HUB]\nname = "a" trailing\n[HUB_END]\n', 2, "unexpected text"),
        ("[HUB]\njust words\n[HUB_END]\n", 2, 'expected key = "value"'),
        ('[HUB]\nport = "http"\n[HUB_END]\n', 2, "whole number"),
        ('[HUB]\nport = "70000"\n[HUB_END]\n', 2, "between 0 and 65535"),
        (
            '[LLM_PROVIDER.x]\nbase_url = "http://example.com/v1"\nenv_key = "K"\n'
            "[LLM_PROVIDER.x_END]\n",
            2,
            "must use https",
        ),
        (
            '[LLM_PROVIDER.x]\nbase_url = "https://example.com/v1"\n[LLM_PROVIDER.x_END]\n',
            1,
            "needs env_key",
        ),
        (
            '[LLM_PROVIDER.a]\nenv_key = "K"\nbase_url = "https://a.example/v1"\nfallback_to = "b"\n'
            '[LLM_PROVIDER.a_END]\n[LLM_PROVIDER.b]\nenv_key = "K"\nbase_url = "https://b.example/v1"'
            '\nfallback_to = "a"\n[LLM_PROVIDER.b_END]\n',
            1,
            "fallback chain loops: a -> b -> a",
        ),
        (
            '[LLM_PROVIDER.a]\nenv_key = "K"\nbase_url = "https://a.example/v1"\nfallback_to = "zz"\n'
            "[LLM_PROVIDER.a_END]\n",
            1,
            "not a llm provider",
        ),
        (
            '[LLM_PROVIDER.a]\nenv_key = "K"\nbase_url = "https://a.example/v1"\n'
            'header_authorization = "Bearer x"\n[LLM_PROVIDER.a_END]\n',
            4,
            "set by the guardian",
        ),
    ],
)
def test_malformed_input_names_file_and_line(text: str, line: int, fragment: str) -> None:
    with pytest.raises(PyfunError) as info:
        parse(text, "bad.pyfun")
    assert str(info.value).startswith(f"bad.pyfun:{line}: ")
    assert fragment in str(info.value)


def test_limits_sync_and_query_sections_are_typed_with_defaults() -> None:
    empty = parse("")
    assert empty.hub_limits == HubLimitsConfig()
    assert (empty.hub_limits.max_failed_logins, empty.hub_limits.lockout_minutes) == (5, 15.0)
    assert empty.db_sync.tool_cache_ttl_sec == 3600.0
    assert empty.db_query == DbQueryConfig()
    text = (
        '[HUB_LIMITS]\nMAX_FAILED_LOGINS = "3"\nlogin_attempts_per_min = "7"\n'
        'lockout_minutes = "2.5"\nsession_idle_minutes = "30"\nsession_max_hours = "24"\n'
        '[HUB_LIMITS_END]\n[DB_SYNC]\nTOOL_CACHE_TTL_SEC = "60"\n[DB_SYNC_END]\n'
        '[DB_QUERY]\ntables = "products, Shop.Orders"\nfunctions = "my_fn"\nmax_rows = "50"\n'
        'statement_timeout_ms = "1000"\n[DB_QUERY_END]\n'
    )
    config = parse(text)
    assert config.warnings == ()
    assert config.hub_limits == HubLimitsConfig(
        max_failed_logins=3,
        login_attempts_per_min=7,
        lockout_minutes=2.5,
        session_idle_minutes=30,
        session_max_hours=24,
    )
    assert config.db_sync == DbSyncConfig(tool_cache_ttl_sec=60)
    assert config.db_query == DbQueryConfig(
        tables=("products", "shop.orders"),
        functions=("my_fn",),
        max_rows=50,
        statement_timeout_ms=1000,
    )


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('[HUB_LIMITS]\n\nmax_failed_logins = "five"\n[HUB_LIMITS_END]\n', "whole number"),
        ('[HUB_LIMITS]\n\nmax_failed_logins = "0"\n[HUB_LIMITS_END]\n', "between 1 and"),
        ('[HUB_LIMITS]\n\nlogin_attempts_per_min = "-1"\n[HUB_LIMITS_END]\n', "between 1 and"),
        ('[HUB_LIMITS]\n\nlockout_minutes = "a while"\n[HUB_LIMITS_END]\n', "must be a number"),
        ('[HUB_LIMITS]\n\nsession_idle_minutes = "nan"\n[HUB_LIMITS_END]\n', "between"),
        ('[HUB_LIMITS]\n\nsession_max_hours = "inf"\n[HUB_LIMITS_END]\n', "between"),
        ('[DB_SYNC]\n\ntool_cache_ttl_sec = "an hour"\n[DB_SYNC_END]\n', "must be a number"),
        ('[DB_QUERY]\n\nmax_rows = "lots"\n[DB_QUERY_END]\n', "whole number"),
        ('[DB_QUERY]\n\nmax_rows = "20000"\n[DB_QUERY_END]\n', "between 1 and 10000"),
        ('[DB_QUERY]\n\nstatement_timeout_ms = "5s"\n[DB_QUERY_END]\n', "whole number"),
        ('[DB_QUERY]\n\ntables = "a; drop"\n[DB_QUERY_END]\n', "not a table"),
        ('[DB_QUERY]\n\ntables = "sealgate.users"\n[DB_QUERY_END]\n', "never be allowlisted"),
        ('[DB_QUERY]\n\nfunctions = "f()"\n[DB_QUERY_END]\n', "not a function"),
    ],
)
def test_bad_limits_sync_and_query_values_fail_with_file_and_line(text: str, fragment: str) -> None:
    with pytest.raises(PyfunError) as info:
        parse(text, "bad.pyfun")
    assert str(info.value).startswith("bad.pyfun:3: ")
    assert fragment in str(info.value)


def test_unknown_keys_and_sections_warn_with_file_and_line() -> None:
    text = (
        '[HUB_LIMITS]\nmax_failed_login = "3"\n[HUB_LIMITS_END]\n'
        '[DB_SYNC]\nttl = "3"\n[DB_SYNC_END]\n[DB_QUERY]\ntable = "x"\n[DB_QUERY_END]\n'
        "[NOPE]\n[NOPE_END]\n"
    )
    assert set(parse(text, "w.pyfun").warnings) == {
        "w.pyfun:2: unknown key 'max_failed_login' in [HUB_LIMITS] (ignored)",
        "w.pyfun:5: unknown key 'ttl' in [DB_SYNC] (ignored)",
        "w.pyfun:8: unknown key 'table' in [DB_QUERY] (ignored)",
        "w.pyfun:10: unknown section [NOPE] (ignored)",
    }


def test_reserved_query_schemas_match_the_sql_checker() -> None:
    from protocol.readonly_sql import NEVER_SCHEMAS

    assert RESERVED_QUERY_SCHEMAS == NEVER_SCHEMAS


def test_a_quoted_value_may_span_lines() -> None:
    text = (
        "[TOOL.t]\n"
        'system_prompt  = "First line of a long prompt.\n'
        '                  Second line, # not a comment, \\"quoted\\"\n'
        '                  Last line, {with: braces}"   # a comment\n'
        'description = "Two\n'
        '   lines"\n'
        "[TOOL.t_END]\n"
    )
    config = parse(text, "multi.pyfun")
    tool = config.tools["t"]
    assert tool.system_prompt == (
        "First line of a long prompt.\n"
        'Second line, # not a comment, "quoted"\n'
        "Last line, {with: braces}"
    )
    assert tool.description == "Two\nlines"
    spans = [w for w in config.warnings if "spans lines" in w]
    assert spans[0].startswith("multi.pyfun:2: system_prompt spans lines 2-4")
    assert spans[1].startswith("multi.pyfun:5: description spans lines 5-6")


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ('[HUB]\nname = "two\nlines"\n[HUB_END]\n', 2, "name must be one line"),
        ('[TOOL.t]\nsystem_prompt = "a\nb" trailing\n[TOOL.t_END]\n', 3, "opened at line 2"),
        ('[TOOL.t]\nsystem_prompt = "never closed\n[TOOL.t_END]\n', 2, "end of the file"),
    ],
)
def test_a_value_spanning_lines_fails_where_it_cannot_be(
    text: str, line: int, fragment: str
) -> None:
    with pytest.raises(PyfunError) as caught:
        parse(text, "multi.pyfun")
    assert caught.value.line == line and fragment in str(caught.value), str(caught.value)


def test_anthropic_beta_is_an_allowlist_of_beta_names_for_anthropic_providers_only() -> None:
    """Issue 27: the `anthropic-beta` values the guardian may send, per provider."""
    config = parse(
        '[LLM_PROVIDER.anthropic]\nenv_key = "K"\n'
        'anthropic_beta = "context-management-2025-06-27, effort-2025-11-24"\n'
        "[LLM_PROVIDER.anthropic_END]\n"
        '[LLM_PROVIDER.gemini]\nenv_key = "K"\nanthropic_beta = "x-1"\n[LLM_PROVIDER.gemini_END]\n',
        "b.pyfun",
    )
    assert config.llm_providers["anthropic"].anthropic_beta == (
        "context-management-2025-06-27",
        "effort-2025-11-24",
    )
    assert config.llm_providers["gemini"].anthropic_beta == ()
    assert any(
        w.startswith("b.pyfun:7: ") and "anthropic_beta ignored" in w for w in config.warnings
    )
    with pytest.raises(PyfunError, match="is not a beta name"):
        parse(
            '[LLM_PROVIDER.anthropic]\nenv_key = "K"\nanthropic_beta = "a b"\n'
            "[LLM_PROVIDER.anthropic_END]\n",
            "c.pyfun",
        )
