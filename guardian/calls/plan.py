"""The first stage of a sealed completion: everything it may do, decided once, frozen.

Planning turns (snapshot, principal, request) into a `Plan`: the priced attempts in order,
each with the provider request it sends, the call's deadline, and the steps skipped on the
way (inactive providers, the role's refusals). The plan's worst case is held against the
principal's budget before anything leaves (`hold`), so the plan also carries that
reservation. Nothing of the plan changes while it runs (`guardian.calls.run`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from guardian.auth import Principal
from guardian.calls import planning
from guardian.calls.call_budget import call_budget
from guardian.calls.costs import input_bound_of, max_cost_usd, request_bytes
from guardian.calls.outcomes import Step
from guardian.limits import Limits
from guardian.providers.types import ChatRequest
from guardian.snapshot import Snapshot
from guardian.storage.base import Reservation
from protocol.pyfun import ModelConfig, ProviderConfig

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
    tool = planning.tool_for(snapshot, tool_name, "llm")
    await admit(principal, tool_name)
    messages = planning.messages_of(params)
    path: list[Step] = []
    chain = planning.allowed_attempts(
        principal.role,
        planning.plan_llm(snapshot, tool, params, path),
        bool(params.get("provider") or params.get("model")),
        snapshot,
        path,
    )
    system = planning.system_prompt(tool, params)
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
    temperature = planning.temperature_of(tool, params)
    attempts = []
    for attempt in chain:
        model = snapshot.config.models.get(attempt.model)
        bound = input_bound_of(size, model)
        request = ChatRequest(
            model=attempt.model,
            messages=messages,
            system=system,
            max_tokens=planning.max_tokens_for(params, tool, model),
            temperature=temperature,
            tools=params.get("tools"),
            tool_choice=params.get("tool_choice"),
            response_format=params.get("response_format"),
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
    worst, most = planning.worst_case([(a.max_cost_usd, a) for a in attempts])
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
