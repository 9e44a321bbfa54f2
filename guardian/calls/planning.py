"""The plan stage of a sealed call: where it may go, decided once, frozen into a `Plan`.

Where a call goes is decided here from guardian configuration only (ARCHITECTURE.md 4.3):
the sandbox names a tool, and may name a provider or a model; the guardian checks both. The
chain starts at the named provider (or the model's, or the tool's default) and follows
`fallback_to`, skipping inactive providers. A pinned model is only ever sent to the first
provider; the others use their own default model. The chain moves on after a timeout, a
connection error, 401, 403, 408, 429 or 5xx, and stops at once on any other 4xx: the request
itself was refused. A stream falls back only before its first chunk has been passed on.

The rules are pure functions over a configuration snapshot, tested in-process
(`tests/guardian/test_planning.py`). `plan_completion` applies them once per call and
freezes the answer: the priced attempts in order, each with the provider request it sends,
the deadline, and the steps skipped on the way (inactive providers, the role's refusals);
its only I/O is the admission it is given and the hold of the worst case against the
principal's budget, both before anything leaves. `guardian.calls.run` runs the plan; what a
failure means for the chain is `guardian.calls.outcomes`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from guardian import policy
from guardian.calls.call_budget import call_budget
from guardian.calls.costs import input_bound_of, max_cost_usd, output_token_bound, request_bytes
from guardian.calls.outcomes import Step
from guardian.calls.outcomes import final_error as final_error
from guardian.calls.outcomes import may_move_on as may_move_on
from guardian.identity.principal import Principal
from guardian.limits import Limits
from guardian.providers.types import ChatRequest
from guardian.snapshot import Snapshot
from guardian.storage.base import Reservation
from protocol.errors import Forbidden, InvalidParams, NotFound, Unavailable
from protocol.pyfun import ModelConfig, ProviderConfig, RoleConfig, ToolConfig

#: What each built-in tool may call; a built-in not listed makes no provider call at all.
BUILTIN_KINDS = {
    "llm_complete": "llm",
    "web_search": "search",
    "health_check": "",
    "list_active_tools": "",
    "get_model_info": "",
    "db_query": "",
}
A = TypeVar("A")


@dataclass(frozen=True, slots=True)
class Attempt:
    provider: ProviderConfig
    model: str


def tool_for(snapshot: Snapshot, name: str, kind: str) -> ToolConfig | None:
    """The tool a call is made for, which must be one that makes calls of this kind: a role's
    tool list names what each tool may do, so a sandbox cannot relabel a completion as
    `get_model_info` to pass a role allowed only that."""
    if name not in snapshot.tools:
        raise NotFound(f"tool {name!r} is not active")
    tool = snapshot.config.tools.get(name)
    if name in BUILTIN_KINDS:
        tool_kind = BUILTIN_KINDS[name]
    else:
        tool_kind = tool.provider_type if tool is not None else ""
    if tool_kind != kind:
        raise Forbidden(f"tool {name!r} makes no {kind} calls")
    return tool


def split_model(model: str, providers: Mapping[str, ProviderConfig]) -> tuple[str, str]:
    """`provider/model` names a provider only when the prefix is one (OpenRouter ids have /)."""
    prefix, slash, rest = model.partition("/")
    if slash and prefix in providers and rest:
        return prefix, rest
    return "", model


def provider_chain(
    providers: Mapping[str, ProviderConfig],
    active: tuple[str, ...],
    start: str,
    path: list[Step],
) -> list[ProviderConfig]:
    """`start` and its `fallback_to` successors that are active; the others are noted on
    the path as skipped."""
    if start not in providers:
        raise NotFound(f"provider {start!r} is not configured")
    chain: list[ProviderConfig] = []
    seen: set[str] = set()  # loops are refused when .pyfun is parsed; this keeps it total
    current: ProviderConfig | None = providers[start]
    while current is not None and current.name not in seen:
        seen.add(current.name)
        if current.name in active:
            chain.append(current)
        else:
            path.append({"provider": current.name, "error": "skipped: not active (no key)"})
        current = providers.get(current.fallback_to) if current.fallback_to else None
    if not chain:
        raise Unavailable(f"provider {start!r} is not active and has no active fallback")
    return chain


def first_llm_provider(
    snapshot: Snapshot, tool: ToolConfig | None, provider: str, model: str
) -> tuple[str, str]:
    """(provider, model) a call starts at: the named provider, the model's owner, the tool's
    default, else the first active LLM provider. `model` loses a provider prefix."""
    config = snapshot.config
    if model:
        prefix, model = split_model(model, config.llm_providers)
        if prefix and provider and prefix != provider:
            raise InvalidParams(f"model names provider {prefix!r} but provider is {provider!r}")
        if not prefix and model not in snapshot.known_models:
            raise NotFound(
                f"model {model!r} is not configured; add a [MODEL.{model}] block, or name its"
                " provider as 'provider/model'"
            )
        provider = provider or prefix
        if not provider and model in config.models:
            provider = config.models[model].provider
        if not provider:  # a provider's default or listed model
            provider = next(
                (
                    p.name
                    for p in config.llm_providers.values()
                    if model == p.default_model or model in p.models
                ),
                "",
            )
    if not provider:
        default = tool.default_provider if tool else ""
        provider = default or (snapshot.llm_providers[0] if snapshot.llm_providers else "")
    if not provider:
        raise Unavailable("no LLM provider is active: no key is configured")
    return provider, model


def plan_llm(
    snapshot: Snapshot, tool: ToolConfig | None, params: Mapping[str, Any], path: list[Step]
) -> list[Attempt]:
    """Every attempt a completion may make, in order, before any role filter."""
    provider, model = first_llm_provider(
        snapshot, tool, params.get("provider") or "", params.get("model") or ""
    )
    try:
        chain = provider_chain(
            snapshot.config.llm_providers, snapshot.llm_providers, provider, path
        )
    except Unavailable as exc:
        if not model:
            raise
        # A model nobody can serve now is the caller's "no such model" (OpenAI: 404
        # model_not_found), not a server failure to retry.
        raise NotFound(f"model {model!r} is not available: {exc}") from None
    attempts = []
    for index, candidate in enumerate(chain):
        pinned = model if index == 0 and candidate.name == provider else ""
        attempts.append(Attempt(candidate, pinned or candidate.default_model))
    return attempts


def allowed_attempts(
    role: RoleConfig,
    attempts: list[Attempt],
    pinned_first: bool,
    snapshot: Snapshot,
    path: list[Step],
) -> list[Attempt]:
    """Drop the attempts the role does not allow; refuse if the caller named the first."""
    kept = []
    for index, attempt in enumerate(attempts):
        pinned = index == 0 and pinned_first
        reason = policy.refusal(role, attempt.provider, attempt.model, pinned, snapshot.config)
        if reason:
            path.append({"provider": attempt.provider.name, "error": f"skipped: {reason}"})
        else:
            kept.append(attempt)
    if not kept:
        raise Forbidden(f"role {role.name!r} may use none of the providers this call could go to")
    return kept


def plan_search(
    snapshot: Snapshot,
    tool: ToolConfig | None,
    named: str,
    role: RoleConfig,
    path: list[Step],
) -> list[ProviderConfig]:
    """The search providers a query may go to, in order, for this role."""
    start = named or (tool.default_provider if tool else "")
    start = start or (snapshot.search_providers[0] if snapshot.search_providers else "")
    if not start:
        raise Unavailable("no search provider is active: no key is configured")
    chain = provider_chain(snapshot.config.search_providers, snapshot.search_providers, start, path)
    if named and not policy.allows(role.providers, start):
        raise Forbidden(f"provider {start!r} is not allowed for role {role.name!r}")
    chain = [p for p in chain if policy.allows(role.providers, p.name)]
    if not chain:
        raise Forbidden(f"role {role.name!r} may use no search provider here")
    return chain


def messages_of(params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The conversation: a prompt, or OpenAI-shaped messages (never both)."""
    prompt, messages = params.get("prompt"), params.get("messages")
    if (prompt is None) == (messages is None):
        raise InvalidParams("send either 'prompt' or 'messages'")
    if prompt is not None:
        return [{"role": "user", "content": prompt}]
    conversation = []
    for index, message in enumerate(messages or []):
        role = message.get("role")
        if role == "developer":  # what current OpenAI SDKs send for system instructions
            message = {**message, "role": "system"}
        elif role not in ("system", "user", "assistant", "tool"):
            raise InvalidParams(
                f"messages[{index}]: role must be system, developer, user, assistant or tool"
            )
        conversation.append(message)
    if not conversation:
        raise InvalidParams("messages is empty")
    return conversation


def system_prompt(tool: ToolConfig | None, params: Mapping[str, Any]) -> str:
    """A tool's own system prompt wins over the caller's."""
    return (tool.system_prompt if tool and tool.system_prompt else "") or params.get("system") or ""


def temperature_of(tool: ToolConfig | None, params: Mapping[str, Any]) -> float | None:
    temperature = params.get("temperature")
    if temperature is None and tool is not None:
        temperature = tool.temperature
    return float(temperature) if temperature is not None else None


def max_tokens_for(
    params: Mapping[str, Any], tool: ToolConfig | None, model: ModelConfig | None
) -> int:
    return output_token_bound(params.get("max_tokens"), tool.max_tokens if tool else None, model)


def worst_case(priced: Sequence[tuple[float | None, A]]) -> tuple[float, A]:
    """The attempt whose bound cost is highest (the last of equals): what a budget holds."""
    worst, worst_attempt = 0.0, priced[0][1]
    for amount, attempt in priced:
        if amount is not None and amount >= worst:
            worst, worst_attempt = amount, attempt
    return worst, worst_attempt


# the plan ------------------------------------------------------------------------------------
Admit = Callable[[Principal, str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class PlannedAttempt:
    """One provider of the chain, with the request it is sent and what that may cost."""

    provider: ProviderConfig
    model: str
    model_config: ModelConfig | None
    request: ChatRequest
    input_bound: int  # the most input tokens the request can be (`guardian.calls.costs`)
    max_cost_usd: float | None  # None when the model has no prices


@dataclass(frozen=True, slots=True)
class Plan:
    snapshot: Snapshot
    tool: str
    attempts: tuple[PlannedAttempt, ...]
    skipped: tuple[Step, ...]  # the fallback path as planning left it
    started: float  # time.monotonic() when the call arrived
    deadline: float  # time.monotonic() by which every attempt, retry included, has ended
    stream: bool
    reservation: Reservation


async def plan_completion(
    snapshot: Snapshot,
    principal: Principal,
    params: Mapping[str, Any],
    *,
    admit: Admit,
    limits: Limits,
    started: float,
    stream: bool,
) -> Plan:
    """The plan of one completion, its worst case held; raises the caller's error (unknown
    tool, refused provider, bad messages, over budget) before anything is sent."""
    tool_name = params["tool"]
    tool = tool_for(snapshot, tool_name, "llm")
    await admit(principal, tool_name)
    messages = messages_of(params)
    path: list[Step] = []
    chain = allowed_attempts(
        principal.role,
        plan_llm(snapshot, tool, params, path),
        bool(params.get("provider") or params.get("model")),
        snapshot,
        path,
    )
    system = system_prompt(tool, params)
    # what the input tokens are bounded from: everything of the request that is sent,
    # measured once for every attempt
    size = request_bytes(
        {
            "messages": messages,
            "system": system,
            **{
                key: params[key]
                for key in ("tools", "tool_choice", "response_format")
                if params.get(key) is not None
            },
        }
    )
    temperature = temperature_of(tool, params)
    attempts = []
    for attempt in chain:
        model = snapshot.config.models.get(attempt.model)
        bound = input_bound_of(size, model)
        request = ChatRequest(
            model=attempt.model,
            messages=messages,
            system=system,
            max_tokens=max_tokens_for(params, tool, model),
            temperature=temperature,
            tools=params.get("tools"),
            tool_choice=params.get("tool_choice"),
            response_format=params.get("response_format"),
            stop=params.get("stop"),
            betas=tuple(params.get("betas") or ()),
            anthropic=params.get("anthropic"),
        )
        attempts.append(
            PlannedAttempt(
                attempt.provider,
                attempt.model,
                model,
                request,
                bound,
                max_cost_usd(model, bound, request.max_tokens),
            )
        )
    limits_config = snapshot.config.hub_limits
    budget_s = call_budget(tool, [a.provider for a in chain], limits_config, "llm")
    worst, most = worst_case([(a.max_cost_usd, a) for a in attempts])
    # Recorded in storage before anything leaves, so that it survives a SIGKILL of the
    # guardian; for a principal with a budget, the most the call can cost is held against it.
    reservation = await limits.reserve(
        principal.name,
        principal.role.monthly_budget_usd,
        worst,
        user_id=principal.user_id,
        tool=tool_name,
        provider=most.provider.name,
        model=most.model,
        input_tokens=most.input_bound,
        output_tokens=most.request.max_tokens,
    )
    return Plan(
        snapshot=snapshot,
        tool=tool_name,
        attempts=tuple(attempts),
        skipped=tuple(path),
        started=started,
        deadline=started + budget_s,
        stream=stream,
        reservation=reservation,
    )
