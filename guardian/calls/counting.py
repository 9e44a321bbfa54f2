"""`llm.count_tokens`: how many input tokens a completion request is, without sending it.

Planned like a completion (the tool must make LLM calls, the role must allow the provider the
request resolves to, a pinned model goes only to its provider) but only the first allowed
provider is asked, and only when it speaks Anthropic's wire format, whose
`POST /v1/messages/count_tokens` counts with the model's own tokenizer. Any other provider
has no such endpoint: the answer is then SealGate's documented estimate, marked as one (one
token per byte of the request as the guardian measures it, plus framing: the budget bound of
`guardian.calls.costs`, never below the truth). Counting costs nothing, so no spend is
recorded; it is admitted (and rate-limited) like a call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from guardian.calls import planning
from guardian.calls.costs import input_bound_of, request_bytes
from guardian.calls.outcomes import Step
from guardian.providers.adapters import AnthropicAdapter
from guardian.providers.types import ChatRequest, HttpCall, malformed
from guardian.snapshot import Snapshot
from protocol.pyfun import ProviderConfig, RoleConfig

#: What Anthropic's count_tokens takes of a Messages request (it refuses the rest).
COUNTED_FIELDS = (
    "model",
    "messages",
    "system",
    "tools",
    "tool_choice",
    "thinking",
    "context_management",
    "output_config",
)


@dataclass(frozen=True, slots=True)
class CountPlan:
    provider: ProviderConfig
    model: str
    request: ChatRequest
    #: SealGate's estimate of the request (what is answered when the provider cannot count)
    estimate: int
    skipped: tuple[Step, ...]

    @property
    def asks_provider(self) -> bool:
        return self.provider.api == "anthropic"


def plan_count(snapshot: Snapshot, role: RoleConfig, params: Mapping[str, Any]) -> CountPlan:
    """Where a count goes, decided like a completion's first attempt; raises the caller's
    error (unknown tool or model, refused provider, bad messages) before anything is sent.
    The tool's admission is the caller's (`Router.admit`), made first."""
    tool = planning.tool_for(snapshot, params["tool"], "llm")
    messages = planning.messages_of(params)
    path: list[Step] = []
    first = planning.allowed_attempts(
        role,
        planning.plan_llm(snapshot, tool, params, path),
        bool(params.get("provider") or params.get("model")),
        snapshot,
        path,
    )[0]
    system = planning.system_prompt(tool, params)
    extras = {
        key: params[key]
        for key in ("tools", "tool_choice", "response_format")
        if params.get(key) is not None
    }
    size = request_bytes({"messages": messages, "system": system, **extras})
    request = ChatRequest(
        model=first.model,
        messages=messages,
        system=system,
        tools=params.get("tools"),
        tool_choice=params.get("tool_choice"),
        betas=tuple(params.get("betas") or ()),
        anthropic=params.get("anthropic"),
    )
    estimate = input_bound_of(size, snapshot.config.models.get(first.model))
    return CountPlan(first.provider, first.model, request, estimate, tuple(path))


def count_call(provider: ProviderConfig, key: str | None, request: ChatRequest) -> HttpCall:
    """Anthropic's `POST /v1/messages/count_tokens`: the Messages request the adapter would
    send (same translation, same allowlisted `anthropic-beta`), without what only shapes the
    answer (max_tokens, temperature, stop_sequences)."""
    call = AnthropicAdapter(provider).chat(key, request, stream=False)
    body = {name: call.json[name] for name in COUNTED_FIELDS if name in call.json}
    return HttpCall(method="POST", url=f"{call.url}/count_tokens", headers=call.headers, json=body)


def parse_count(body: Any) -> int:
    """Anthropic's `MessageTokensCount`: `{"input_tokens": N}`."""
    tokens = body.get("input_tokens") if isinstance(body, dict) else None
    if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 0:
        raise malformed("count_tokens reply without input_tokens")
    return tokens
