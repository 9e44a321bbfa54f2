"""The original Universal MCP Hub's request and answer shapes, so its clients move unchanged.

Its REST clients (a PySide6 desktop client, a WordPress plugin) and the MCP clients set up
for it send the original's parameter names and expect its answers:
- parameters: `provider_name` for `provider`, `model_name` for `model` (`get_model_info`),
  `prompt` for a search tool's `query`; an empty string means "the default" (the plugin
  sends every form field, filled or not);
- its REST client sends `prompt`, `provider_name`, `model` and `max_tokens` to every tool:
  on `POST /api` those a tool does not take are ignored (and logged once), as the original
  ignored them;
- `POST /api` answers `{"result": "<answer text>"}` for LLM and search tools (SealGate keeps
  its details beside it under `meta`);
- `list_active_tools` names `active_tools`, `active_llm_providers`, `active_search_providers`
  and `available_models`;
- `GET /` with a credential header and no wish for HTML is a JSON health answer.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from typing import Any

from starlette.datastructures import Headers

logger = logging.getLogger("sealgate.sandbox.api")

#: The original's parameter name -> SealGate's, for every tool that has the SealGate one.
#: Search tools also take `prompt` for `query` (resolved in the tool, where the kind is known).
PARAM_ALIASES: dict[str, str] = {"provider_name": "provider", "model_name": "model"}

#: Names a tool accepts only for the original's clients: not listed in `tool_params`.
ALIAS_NAMES = frozenset(PARAM_ALIASES)

#: What the original's REST client sends to every tool, whichever it calls.
GENERIC_KEYS = frozenset({"prompt", "provider_name", "model", "max_tokens"})
#: (tool, keys) already logged: bounded by the registered tools and subsets of GENERIC_KEYS.
_ignored_logged: set[tuple[str, frozenset[str]]] = set()


def drop_empty(params: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments without those sent as an empty string: `""` means the default."""
    return {name: value for name, value in params.items() if value != ""}


def drop_unused_generic(
    tool: str, params: Mapping[str, Any], accepted: Collection[str]
) -> dict[str, Any]:
    """The arguments without those of `GENERIC_KEYS` that `tool` does not take (the original
    hub ignored them: `web_search` got `max_tokens` from its client). Any other unknown name
    is still refused. Each tool's set of ignored keys is logged once."""
    unused = frozenset(name for name in params if name in GENERIC_KEYS and name not in accepted)
    if not unused:
        return dict(params)
    if (tool, unused) not in _ignored_logged:
        _ignored_logged.add((tool, unused))
        logger.info(
            "/api: %s does not take %s (the original hub's client sends them to every"
            " tool); ignored",
            tool,
            ", ".join(sorted(unused)),
        )
    return {name: value for name, value in params.items() if name not in unused}


def first_given(*values: str | None) -> str | None:
    """The first value that is neither None nor empty: SealGate's name wins over an alias."""
    for value in values:
        if value:
            return value
    return None


def api_answer(data: dict[str, Any], text: str | None) -> dict[str, Any]:
    """The `/api` body for a tool's structured result.

    LLM and search tools answer with their text as `result`, as the original did, and the
    whole map (provider, model, fallback path, usage, cost) as `meta`; `text` is None for
    the built-in tools, whose result is their map, as before (the original's were maps too).
    """
    if text is not None:
        return {"result": text, "meta": data}
    return {"result": data}


def original_listing(
    tools: list[str],
    llm_providers: list[str],
    search_providers: list[str],
    usable_models: list[str],
) -> dict[str, Any]:
    """`list_active_tools` under the original's keys (beside SealGate's own)."""
    return {
        "active_tools": tools,
        "active_llm_providers": llm_providers,
        "active_search_providers": search_providers,
        "available_models": usable_models,
    }


def wants_json_status(headers: Headers) -> bool:
    """A program asking `GET /` for the hub's state: it sends a credential header and does
    not ask for HTML. Browsers ask for HTML (and carry the session cookie, not a header)."""
    has_header_credential = bool(
        headers.get("authorization", "").strip() or headers.get("x-api-key", "").strip()
    )
    return has_header_credential and "text/html" not in headers.get("accept", "").lower()
