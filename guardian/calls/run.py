"""The second stage of a sealed completion: its plan run, attempt by attempt, through a
declared stack of layers.

The stack, outermost first, is `Router.layers` (retry, key rotation, provider slots), ending
in the outbound exchange (`guardian.calls.exchange`). Each attempt is prepared once (its
adapter, its request's body encoded once) and sent down the stack; what the layers see is
written into the call's record for metering to read when the call has ended. The chain moves
on, or stops, by the rules of `guardian.calls.outcomes`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from guardian import telemetry, telemetry_content
from guardian.call_log import log_request, log_response
from guardian.calls.exchange import Exchange
from guardian.calls.job import Job, Layer, Send
from guardian.calls.model_rates import admit_model
from guardian.calls.outcomes import Step, final_error, may_move_on
from guardian.calls.planning import Plan, PlannedAttempt
from guardian.calls.record import CallRecord, Observed
from guardian.calls.streaming import Emitter
from guardian.limits import Limits
from guardian.providers.adapters import llm_adapter
from guardian.providers.types import ChatResult, ProviderFailure
from protocol.errors import RateLimited
from protocol.pyfun import ProviderConfig


@dataclass(frozen=True, slots=True)
class Answered:
    """The attempt that answered, and its reply."""

    attempt: PlannedAttempt
    result: ChatResult
    sent_at: float


def stack(layers: Sequence[Layer], last: Send) -> Send:
    """`layers` around `last`, the first layer outermost."""
    send = last
    for layer in reversed(layers):
        send = functools.partial(layer.send, inner=send)
    return send


async def run_completion(
    plan: Plan,
    *,
    layers: Sequence[Layer],
    exchange: Exchange,
    record: CallRecord,
    path: list[Step],
    emitter: Emitter | None,
    limits: Limits,
    describe: Callable[[ProviderFailure], str],
    redact_and_cut: Callable[[str, int], str] | None = None,
) -> Answered:
    """Walk the chain; return the first answer, or raise the error the caller gets."""
    send = stack(layers, exchange.send)
    snapshot = plan.snapshot
    debug = snapshot.config.debug
    last: tuple[PlannedAttempt, ProviderFailure] | None = None
    rate_refusal: RateLimited | None = None
    call_span = telemetry.current()
    for index, attempt in enumerate(plan.attempts):
        provider = attempt.provider.name
        if attempt.model_config is not None:
            try:
                await admit_model(limits, attempt.model, attempt.model_config)
            except RateLimited as refusal:
                call_span.add_event(
                    "sealgate.attempt.skipped",
                    {"sealgate.provider": provider, "error.type": "rate_limited"},
                )
                path.append({"provider": provider, "error": refusal.message})
                rate_refusal = refusal
                continue
        if last is not None:
            call_span.add_event(
                "sealgate.fallback",
                {"sealgate.from_provider": last[0].provider.name, "sealgate.provider": provider},
            )
        observed = Observed(
            provider,
            attempt.model,
            attempt.model_config,
            attempt.input_bound,
            attempt.request.max_tokens,
        )
        record.attempts.append(observed)
        sent_at = time.monotonic()
        log_request(
            debug,
            tool=record.tool,
            provider=provider,
            model=attempt.model,
            input_bound=attempt.input_bound,
            stream=emitter is not None,
        )
        with telemetry.span(
            f"chat {attempt.model}",
            kind=telemetry.CLIENT,
            attributes=attempt_attributes(attempt.provider, attempt.model, emitter is not None),
        ) as attempt_span:
            try:
                if not attempt.model:
                    raise ProviderFailure("config", "no model: set default_model for this provider")
                adapter = llm_adapter(attempt.provider)
                job = Job(
                    provider=attempt.provider,
                    adapter=adapter,
                    # the one encoding of this attempt's body: retries and keys resend it
                    call=adapter.chat(None, attempt.request, stream=emitter is not None).encoded(),
                    deadline=plan.deadline,
                    secrets=snapshot.secrets,
                    limits=snapshot.config.hub_limits,
                    observed=observed,
                    emitter=emitter,
                    is_last=index == len(plan.attempts) - 1,
                    describe=describe,
                )
                result = await send(job)
            except ProviderFailure as failure:
                attempt_span.fail(telemetry.error_type_of(failure))
                telemetry.attempt_metrics(
                    metric_attributes(attempt.provider, attempt.model, None, failure),
                    time.monotonic() - sent_at,
                )
                log_response(
                    debug,
                    tool=record.tool,
                    provider=provider,
                    model=attempt.model,
                    outcome=f"failed:{failure.kind}:{failure.status or '-'}",
                    elapsed_ms=(time.monotonic() - sent_at) * 1000,
                )
                path.append({"provider": provider, "error": describe(failure)})
                last = (attempt, failure)
                if not may_move_on(failure, emitter.sent if emitter is not None else 0):
                    break
                continue
            answered(attempt_span, result)
            if redact_and_cut is not None:  # the explicit opt-in only (telemetry_content)
                telemetry_content.record(attempt_span, attempt.request, result, redact_and_cut)
            first_chunk_s = None
            if emitter is not None and emitter.first_at is not None:
                first_chunk_s = max(emitter.first_at - sent_at, 0.0)
                attempt_span.set_attribute("gen_ai.response.time_to_first_chunk", first_chunk_s)
            telemetry.attempt_metrics(
                metric_attributes(attempt.provider, attempt.model, result, None),
                time.monotonic() - sent_at,
                result.input_tokens,
                result.output_tokens,
                first_chunk_s,
            )
            return Answered(attempt, result, sent_at)
    if last is None and rate_refusal is not None:
        raise rate_refusal
    raise final_error(
        path, last, emitter.sent if emitter is not None else 0, describe(last[1]) if last else ""
    )


#: `gen_ai.provider.name` for each adapter (the conventions' well-known values); the
#: operator's name for the provider is `sealgate.provider`.
GEN_AI_PROVIDER = {"openai": "openai", "anthropic": "anthropic", "gemini": "gcp.gemini"}


def attempt_attributes(
    provider: ProviderConfig, model: str, stream: bool
) -> dict[str, telemetry.Value]:
    """An attempt span's attributes known before it is sent (GenAI conventions)."""
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": GEN_AI_PROVIDER.get(provider.api, provider.api),
        "gen_ai.request.model": model,
        "sealgate.provider": provider.name,
        "sealgate.stream": stream,
    }


def answered(span: telemetry.Span, result: ChatResult) -> None:
    """An attempt span's attributes from its reply: the model and the provider's counts,
    never the text."""
    if result.model:
        span.set_attribute("gen_ai.response.model", result.model)
    if result.input_tokens is not None:
        span.set_attribute("gen_ai.usage.input_tokens", result.input_tokens)
    if result.output_tokens is not None:
        span.set_attribute("gen_ai.usage.output_tokens", result.output_tokens)
    if result.finish_reason:
        span.set_attribute("gen_ai.response.finish_reasons", [result.finish_reason])


def metric_attributes(
    provider: ProviderConfig,
    model: str,
    result: ChatResult | None,
    failure: ProviderFailure | None,
) -> dict[str, telemetry.Value]:
    """The GenAI metrics' attributes of one attempt (bounded: configured names only)."""
    attributes: dict[str, telemetry.Value] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": GEN_AI_PROVIDER.get(provider.api, provider.api),
        "gen_ai.request.model": model,
    }
    if result is not None and result.model:
        attributes["gen_ai.response.model"] = result.model[:128]
    if failure is not None:
        attributes["error.type"] = telemetry.error_type_of(failure)
    return attributes
