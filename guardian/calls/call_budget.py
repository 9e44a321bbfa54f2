"""How long a whole call may take (its fallbacks and retries included).

Precedence, one rule for all: a tool's `timeout_sec` (its `[TOOL.<name>]` block; a block
without one takes `[HUB_LIMITS] REQUEST_TIMEOUT_SEC` for LLM tools and `SEARCH_TIMEOUT_SEC`
for search tools when the file is read), then, for a built-in tool with no block, those two
`[HUB_LIMITS]` defaults, then each provider's own `timeout_sec` summed along the chain, capped.
"""

from __future__ import annotations

from protocol.pyfun import HubLimitsConfig, ProviderConfig, ToolConfig

#: The longest a call may take when nothing sets its time.
MAX_BUDGET_S = 600.0


def call_budget(
    tool: ToolConfig | None,
    chain: list[ProviderConfig],
    limits: HubLimitsConfig,
    kind: str,
) -> float:
    """Seconds the call of `kind` ("llm" or "search") may take from its start."""
    if tool is not None:
        return tool.timeout_sec
    default = limits.request_timeout_sec if kind == "llm" else limits.search_timeout_sec
    if default is not None:
        return default
    return min(sum(p.timeout_sec for p in chain), MAX_BUDGET_S)
