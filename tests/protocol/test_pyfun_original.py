"""The original Universal MCP Hub's `.pyfun` traits: each loads (with warnings, never a
refusal) and means what it meant there; real contradictions still stop with file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from protocol.pyfun import PyfunError, parse

ORIGINAL = Path(__file__).parent.parent / "data" / "original_hub.pyfun"


def _load() -> tuple[str, list[str], list[str]]:
    config = parse(ORIGINAL.read_text(), "orig.pyfun")
    return "orig.pyfun", list(config.warnings), list(config.translations)


def _line(fragment: str) -> int:
    """The line of the test file holding `fragment` (so the tests name no line numbers)."""
    for number, line in enumerate(ORIGINAL.read_text().splitlines(), start=1):
        if fragment in line:
            return number
    raise AssertionError(f"{fragment!r} is not in {ORIGINAL}")


def test_the_original_file_loads_and_every_mapped_value_is_read() -> None:
    config = parse(ORIGINAL.read_text(), "orig.pyfun")
    hub, limits = config.hub, config.hub_limits
    assert (hub.name, hub.host, hub.port) == ("Universal MCP Hub", "127.0.0.1", 7860)
    assert hub.space_url == "https://example-user-universal-mcp-hub.hf.space"
    assert hub.log_level == "info"  # DEBUG_LEVEL = "INFO" wins over DEBUG = "true"
    assert limits.max_parallel_requests == 2 and limits.retry_count == 1
    assert limits.retry_delay_sec == 0.2
    assert (limits.request_timeout_sec, limits.search_timeout_sec) == (45.0, 15.0)
    assert config.db_sync.max_cache_entries == 500
    assert config.debug.log_requests and config.debug.log_responses

    anthropic = config.llm_providers["anthropic"]
    assert anthropic.api_version_header == "2023-01-01"
    assert anthropic.models == ("claude-haiku-4-5", "claude-sonnet-4-5")  # trailing comma
    assert anthropic.timeout_sec == 45.0  # REQUEST_TIMEOUT_SEC as the provider default
    openrouter = config.llm_providers["openrouter"]
    assert openrouter.fallback_to == ""  # "" is unset
    assert dict(openrouter.headers) == {
        "HTTP-Referer": "https://example-user-universal-mcp-hub.hf.space",
        "X-Title": "Universal MCP Hub",
    }
    huggingface = config.llm_providers["huggingface"]
    assert not huggingface.active
    assert huggingface.base_url == "https://router.huggingface.co/v1"
    assert "mistral" not in config.llm_providers  # commented out

    brave, tavily = config.search_providers["brave"], config.search_providers["tavily"]
    assert (brave.default_results, brave.max_results, brave.timeout_sec) == (3, 10, 15.0)
    assert (tavily.default_results, tavily.max_results, tavily.include_answer) == (5, 8, False)

    haiku = config.models["claude-haiku-4-5"]
    assert haiku.context_window == 200_000 and haiku.requests_per_day == 1000
    assert (haiku.cost_input_per_1m, haiku.cost_output_per_1m) == (1.0, 5.0)
    assert haiku.capabilities == ("text", "code", "vision")
    free = config.models["meta-llama/llama-3.3-70b-instruct:free"]
    assert free.max_output_tokens is None and free.cost_input_per_1m == 0.0

    tools = config.tools
    assert tools["llm_complete"].timeout_sec == 30.0  # its own timeout_sec wins
    assert tools["web_search"].timeout_sec == 15.0  # SEARCH_TIMEOUT_SEC
    assert tools["db_query"].provider_type == "db"
    assert not tools["translate"].active
    assert tools["translate"].system_prompt == (
        "Translate the text into the language the person asks for.\n"
        "Keep names, numbers and code as they are.\n"
        "Answer with the translation only, {with: braces}"
    )


def test_a_value_spanning_lines_is_read_whole_and_warned_about() -> None:
    """The original kept the first line (with its opening quote) and dropped the rest
    without a word; SealGate reads it all and says what the original would have done."""
    source, warnings, _ = _load()
    first = _line('system_prompt = "Translate the text')
    (warning,) = [w for w in warnings if w.startswith(f"{source}:{first}: ")]
    assert f"system_prompt spans lines {first}-{first + 2}" in warning
    assert "the original hub read only the first line" in warning


def test_each_ignored_key_and_section_is_warned_about_once_with_its_line() -> None:
    source, warnings, _ = _load()
    expected = {
        _line("HUB_VERSION"): "HUB_VERSION ignored",
        _line("HUB_DESCRIPTION"): "HUB_DESCRIPTION ignored",
        _line("HUB_MODE"): "HUB_MODE ignored",
        _line("HUB_STATELESS"): "HUB_STATELESS ignored",
        _line("SQLITE_PATH"): "SQLITE_PATH ignored",
        _line("SYNC_INTERVAL_SEC"): "SYNC_INTERVAL_SEC ignored",
        _line("LOG_FILE"): "LOG_FILE ignored",
        _line("[WEB_PROVIDERS]"): "[WEB_PROVIDERS] of the original hub is ignored",
        _line("[PARSER_PROVIDER]"): "[PARSER_PROVIDER] of the original hub is ignored",
        _line("[FALLBACK]"): "[FALLBACK] of the original hub is ignored",
        _line("api-inference.huggingface.co"): "using https://router.huggingface.co/v1",
    }
    for line, fragment in expected.items():
        assert [w for w in warnings if w.startswith(f"{source}:{line}: ") and fragment in w], (
            line,
            fragment,
            warnings,
        )
    # nothing inside a skipped section is reported on its own
    assert not any("ORDER" in w or "engine" in w or "WEB_PROVIDER.fetch" in w for w in warnings)
    assert sum("[WEB_PROVIDERS]" in w for w in warnings) == 1


def test_log_requests_and_responses_warn_that_they_log_metadata_only() -> None:
    _, warnings, _ = _load()
    for key in ("LOG_REQUESTS", "LOG_RESPONSES"):
        (warning,) = [w for w in warnings if f"[DEBUG] {key} " in w]
        assert "never prompts, answers or keys" in warning


def test_the_end_slip_loads_with_a_warning_naming_both_lines() -> None:
    source, warnings, _ = _load()
    opened, slip = _line("[LLM_PROVIDER.openrouter]"), _line("[LLM_PROVIDER.huggingface_END]")
    (warning,) = [w for w in warnings if w.startswith(f"{source}:{slip}: ")]
    assert f"opened at line {opened}" in warning
    assert "[LLM_PROVIDER.openrouter_END]" in warning


def test_translations_list_every_original_spelling() -> None:
    source, _, translations = _load()
    for fragment, meaning in [
        ("[PYFUN_FILE = .pyfun]", "identifier line"),
        ("RETRY_COUNT", "read as retry_count"),
        ("MAX_PARALLEL_REQUESTS", "read as max_parallel_requests"),
        ("HUB_NAME", "read as name"),
        ("HUB_SPACE_URL", "HTTP-Referer"),
        ("HUB_TRANSPORT", "both served"),
        ("MAX_CACHE_ENTRIES", "read as max_cache_entries"),
        ("DEBUG_LEVEL", 'log_level = "info"'),
        ("api_version_header", "anthropic-version: 2023-01-01"),
        ('cost_input_per_1k  = "0.001"', "cost_input_per_1m = 1"),
        ('context_tokens     = "200000"', "read as context_window"),
        ('readonly      = "true"', "read-only by construction"),
    ]:
        line = _line(fragment)
        assert [t for t in translations if t.startswith(f"{source}:{line}: ") and meaning in t], (
            fragment,
            translations,
        )


def test_per_1k_costs_convert_exactly() -> None:
    text = '[MODEL.m]\ncost_input_per_1k = "0.0003"\ncost_output_per_1k = "0.0011"\n[MODEL.m_END]\n'
    model = parse(text).models["m"]
    # 0.0003 * 1000 as a float would be 0.30000000000000004
    assert (model.cost_input_per_1m, model.cost_output_per_1m) == (0.3, 1.1)


def test_per_1k_and_per_1m_in_one_block_is_an_error_naming_the_lines() -> None:
    text = '[MODEL.m]\ncost_input_per_1k = "0.001"\ncost_output_per_1m = "5"\n[MODEL.m_END]\n'
    with pytest.raises(PyfunError) as info:
        parse(text, "x.pyfun")
    assert str(info.value).startswith("x.pyfun:3: ")
    assert "x.pyfun:2" in str(info.value)


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        # an END naming another block, followed by a key (not a header): a real contradiction
        (
            '[MODEL.a]\nprovider = "p"\n[MODEL.b_END]\nprovider = "q"\n',
            3,
            "while [MODEL.a] is open",
        ),
        # an END naming a block of another kind
        ("[MODEL.a]\n[TOOL.a_END]\n[MODEL.b]\n[MODEL.b_END]\n", 2, "while [MODEL.a] is open"),
        (
            '[MODEL.a]\ncontext_tokens = "10"\ncontext_window = "20"\n[MODEL.a_END]\n',
            3,
            "say the same thing",
        ),
        ('[WEB_PROVIDERS]\nx = "1"\n', 1, "never closed"),
        ('[HUB_LIMITS]\nRETRY_COUNT = "many"\n[HUB_LIMITS_END]\n', 2, "whole number"),
        (
            '[LLM_PROVIDER.anthropic]\nenv_key = "K"\napi_version_header = "a b"\n'
            "[LLM_PROVIDER.anthropic_END]\n",
            3,
            "not a version",
        ),
    ],
)
def test_real_contradictions_still_stop(text: str, line: int, fragment: str) -> None:
    with pytest.raises(PyfunError) as info:
        parse(text, "bad.pyfun")
    assert str(info.value).startswith(f"bad.pyfun:{line}: ")
    assert fragment in str(info.value)


def test_empty_string_means_unset_for_every_type() -> None:
    text = (
        '[HUB]\nport = ""\nlog_level = ""\n[HUB_END]\n[HUB_LIMITS]\nRETRY_COUNT = ""\n'
        'REQUEST_TIMEOUT_SEC = ""\n[HUB_LIMITS_END]\n[MODEL.m]\nrequests_per_day = ""\n'
        'capabilities = ""\n[MODEL.m_END]\n'
    )
    config = parse(text)
    assert (config.hub.port, config.hub.log_level) == (7860, "info")
    assert (config.hub_limits.retry_count, config.hub_limits.request_timeout_sec) == (0, None)
    assert config.models["m"].requests_per_day is None and config.models["m"].capabilities == ()
    assert config.warnings == ()


def test_stdio_transport_warns_and_points_to_the_bridge() -> None:
    config = parse('[HUB]\nHUB_TRANSPORT = "stdio"\n[HUB_END]\n', "s.pyfun")
    assert config.hub.transport == "http"
    assert any("s.pyfun:2:" in w and "sealgate-ctl mcp-stdio" in w for w in config.warnings)


def test_debug_maps_onto_log_levels_and_hub_log_level_wins() -> None:
    assert parse('[DEBUG]\nDEBUG = "true"\n[DEBUG_END]\n').hub.log_level == "debug"
    assert parse('[DEBUG]\nDEBUG = "false"\n[DEBUG_END]\n').hub.log_level == "info"
    assert parse('[DEBUG]\nDEBUG_LEVEL = "WARNING"\n[DEBUG_END]\n').hub.log_level == "warning"
    text = '[HUB]\nlog_level = "error"\n[HUB_END]\n[DEBUG]\nDEBUG = "true"\n[DEBUG_END]\n'
    assert parse(text).hub.log_level == "error"
    odd = parse('[DEBUG]\nDEBUG_LEVEL = "FULL"\n[DEBUG_END]\n', "d.pyfun")
    assert odd.hub.log_level == "info"
    assert any(w.startswith("d.pyfun:2: ") and "DEBUG_LEVEL ignored" in w for w in odd.warnings)


def test_provider_and_tool_keys_in_the_wrong_place_warn() -> None:
    text = (
        '[LLM_PROVIDER.gemini]\nenv_key = "K"\napi_version_header = "1"\nmax_results = "3"\n'
        'include_answer = "true"\n[LLM_PROVIDER.gemini_END]\n'
        '[TOOL.t]\nreadonly = "true"\n[TOOL.t_END]\n'
        '[TOOL.db_query]\nprovider_type = "db"\nreadonly = "false"\n[TOOL.db_query_END]\n'
    )
    config = parse(text, "w.pyfun")
    gemini = config.llm_providers["gemini"]
    assert gemini.api_version_header == "" and gemini.max_results is None
    for line, key in [(3, "api_version_header"), (4, "max_results"), (5, "include_answer")]:
        assert any(
            w.startswith(f"w.pyfun:{line}: ") and f"{key} ignored" in w for w in config.warnings
        )
    assert any(w.startswith("w.pyfun:8: ") and "readonly ignored" in w for w in config.warnings)
    assert any(w.startswith("w.pyfun:12: ") and "never writes" in w for w in config.warnings)


def test_explicit_openrouter_headers_win_over_the_attribution_from_hub() -> None:
    text = (
        '[HUB]\nHUB_NAME = "Mine"\nHUB_SPACE_URL = "https://a.example"\n[HUB_END]\n'
        '[LLM_PROVIDER.openrouter]\nenv_key = "K"\nheader_x_title = "Theirs"\n'
        "[LLM_PROVIDER.openrouter_END]\n"
    )
    headers = dict(parse(text).llm_providers["openrouter"].headers)
    assert headers == {"X-Title": "Theirs", "HTTP-Referer": "https://a.example"}
    # without [HUB] name nothing is sent; other providers never get the headers
    plain = parse('[LLM_PROVIDER.openrouter]\nenv_key = "K"\n[LLM_PROVIDER.openrouter_END]\n')
    assert plain.llm_providers["openrouter"].headers == ()


def test_timeouts_precedence_tool_then_provider_then_hub_limits_then_default() -> None:
    text = (
        '[HUB_LIMITS]\nREQUEST_TIMEOUT_SEC = "40"\n[HUB_LIMITS_END]\n'
        '[LLM_PROVIDER.a]\nenv_key = "K"\nbase_url = "https://a.example/v1"\ntimeout_sec = "9"\n'
        "[LLM_PROVIDER.a_END]\n"
        '[TOOL.x]\ntimeout_sec = "12"\n[TOOL.x_END]\n[TOOL.y]\n[TOOL.y_END]\n'
        '[TOOL.z]\nprovider_type = "search"\n[TOOL.z_END]\n'
    )
    config = parse(text)
    assert config.llm_providers["a"].timeout_sec == 9.0
    assert config.tools["x"].timeout_sec == 12.0
    assert config.tools["y"].timeout_sec == 40.0
    assert config.tools["z"].timeout_sec == 60.0  # no SEARCH_TIMEOUT_SEC: the default


def test_identifier_line_and_file_end_are_accepted_and_upper_case_keys_anywhere() -> None:
    text = (
        "[PYFUN_FILE = .pyfun]\n"
        '  [TOOL.t]\n    PROVIDER_TYPE = "search"   # indented, upper case\n  [TOOL.t_END]\n'
        "[PYFUN_FILE_END]\n"
    )
    config = parse(text)
    assert config.tools["t"].provider_type == "search"
    assert config.warnings == ()


def test_errors_name_the_key_as_written() -> None:
    with pytest.raises(PyfunError, match="RETRY_COUNT must be a whole number"):
        parse('[HUB_LIMITS]\nRETRY_COUNT = "many"\n[HUB_LIMITS_END]\n')
