"""Sealed provider calls: run a plan, with the key injected, along its fallbacks, metered.

What a call may do is planned in `guardian.calls.planning` (pure, over one configuration
snapshot); which key goes out is `guardian.calls.keys`; how a stream is read is
`guardian.calls.streaming`; what a call costs and how its ending is recorded is
`guardian.calls.metering`. This module puts them together with the I/O: admission, the budget
hold, the outbound requests, and the one ledger row every call writes however it ends.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

from guardian import policy
from guardian.auth import Principal
from guardian.call_log import log_request, log_response
from guardian.calls import planning
from guardian.calls.call_budget import call_budget
from guardian.calls.costs import input_token_bound, max_cost_usd
from guardian.calls.keys import KeyRotation
from guardian.calls.metering import CallMeter, metered
from guardian.calls.model_rates import admit_model
from guardian.calls.outbound import DEFAULT_MAX_RESPONSE_BYTES, Outbound, translated
from guardian.calls.planning import Attempt, Step
from guardian.calls.provider_slots import ProviderSlots
from guardian.calls.retries import with_retries
from guardian.calls.streaming import Emit, Emitter, chunks_sent, read_stream
from guardian.calls.usage_figures import Billed
from guardian.ledger import UsageLedger
from guardian.limits import Limits
from guardian.liveconfig import LiveConfig
from guardian.providers.adapters import embed_call, llm_adapter, parse_embeddings
from guardian.providers.search import result_count, search_adapter
from guardian.providers.types import (
    ChatRequest,
    ChatResult,
    ProviderFailure,
    SearchRequest,
    SearchResult,
)
from guardian.snapshot import Snapshot
from guardian.storage.base import Reservation
from protocol.errors import InvalidParams, RateLimited, RPCError
from protocol.pyfun import ProviderConfig, ToolConfig

T = TypeVar("T")

#: Provider error text kept per failure, after redaction.
MAX_ERROR_TEXT = 240


def reply_text(result: ChatResult) -> str:
    """What came back, as SealGate counts it when the provider reports no usage."""
    calls = json.dumps(result.tool_calls) if result.tool_calls else ""
    return result.text + calls


def usage_of(billed: Billed) -> dict[str, Any]:
    """The usage a caller sees: what was billed, flagged when SealGate counted or bounded it."""
    usage: dict[str, Any] = {
        "input_tokens": billed.input_tokens,
        "output_tokens": billed.output_tokens,
    }
    if billed.estimated:
        usage["estimated"] = True
    if billed.clamped:
        usage["clamped"] = True
    return usage


class Router:
    def __init__(
        self,
        live: LiveConfig,
        outbound: Outbound,
        ledger: UsageLedger,
        limits: Limits,
        keys: KeyRotation,
    ) -> None:
        self.live = live
        self.outbound = outbound
        self.ledger = ledger
        self.limits = limits
        self.keys = keys
        self.slots = ProviderSlots()  # [HUB_LIMITS] max_parallel_requests

    async def admit(self, principal: Principal, tool: str) -> None:
        await policy.admit(self.limits, principal, tool, self.live.snapshot.config)

    def key_status(self) -> dict[str, dict[str, str]]:
        return self.keys.status()

    def _meter(
        self, principal: Principal, tool: str, action: str, params: dict[str, Any]
    ) -> CallMeter:
        return CallMeter(
            ledger=self.ledger,
            limits=self.limits,
            principal=principal.name,
            user_id=principal.user_id,
            tool=tool,
            action=action,
            ip=str((params.get("caller") or {}).get("ip", "")),
        )

    # llm -----------------------------------------------------------------------------------
    async def complete(
        self, params: dict[str, Any], principal: Principal, emit: Emit | None = None
    ) -> dict[str, Any]:
        started = time.monotonic()
        snapshot = self.live.snapshot
        tool_name = params["tool"]
        tool = planning.tool_for(snapshot, tool_name, "llm")
        await self.admit(principal, tool_name)
        messages = planning.messages_of(params)
        path: list[Step] = []
        attempts = planning.allowed_attempts(
            principal.role,
            planning.plan_llm(snapshot, tool, params, path),
            bool(params.get("provider") or params.get("model")),
            snapshot,
            path,
        )
        # what the input tokens are bounded from: everything of the request that is sent
        payload = {
            "messages": messages,
            "system": planning.system_prompt(tool, params),
            **{
                key: params[key]
                for key in ("tools", "tool_choice", "response_format")
                if params.get(key) is not None
            },
        }
        meter = self._meter(
            principal, tool_name, "llm.stream" if emit is not None else "llm.complete", params
        )
        priced = []
        tokens: dict[int, tuple[int, int]] = {}
        for attempt in attempts:
            model = snapshot.config.models.get(attempt.model)
            bound = input_token_bound(payload, model)
            most = planning.max_tokens_for(params, tool, model)
            priced.append((max_cost_usd(model, bound, most), attempt))
            tokens[id(attempt)] = (bound, most)
        meter.reservation = await self._hold(principal, tool_name, priced, tokens)
        # From here on, every way the call ends writes exactly one ledger row (CallMeter).
        answer = await self._ending(
            meter,
            path,
            self._complete_chain(
                snapshot,
                tool,
                params,
                attempts,
                payload,
                started,
                path,
                meter,
                Emitter(emit) if emit is not None else None,
            ),
        )
        await self._spent_unbudgeted(meter)
        return answer

    async def _hold(
        self,
        principal: Principal,
        tool_name: str,
        priced: list[tuple[float | None, Attempt]],
        tokens: dict[int, tuple[int, int]] | None = None,
    ) -> Reservation:
        """Record the call's start, with the most any attempt of it can cost and consume, in
        storage, before anything leaves, so that it survives a SIGKILL of the guardian; for
        a principal with a budget, hold that cost against it."""
        worst, worst_attempt = planning.worst_case(priced)
        input_tokens, output_tokens = (tokens or {}).get(id(worst_attempt), (0, 0))
        return await self.limits.reserve(
            principal.name,
            principal.role.monthly_budget_usd,
            worst,
            user_id=principal.user_id,
            tool=tool_name,
            provider=worst_attempt.provider.name,
            model=worst_attempt.model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
        )

    async def _spent_unbudgeted(self, meter: CallMeter) -> None:
        """A call that held nothing against a budget adds its cost once it ended (a budget's
        reservation is settled with the call's usage row instead)."""
        held = meter.reservation
        if (held is None or not held.counted) and meter.cost:
            await self.limits.add_spend(meter.user_id or meter.principal, meter.cost)

    async def _ending(self, meter: CallMeter, path: list[Step], work: Awaitable[T]) -> T:
        return await metered(meter, path, work, self.live.redactor)

    async def _complete_chain(
        self,
        snapshot: Snapshot,
        tool: ToolConfig | None,
        params: dict[str, Any],
        attempts: list[Attempt],
        payload: dict[str, Any],
        started: float,
        path: list[Step],
        meter: CallMeter,
        emitter: Emitter | None,
    ) -> dict[str, Any]:
        """Walk the chain; return the answer (its ending recorded) or raise the error."""
        limits = snapshot.config.hub_limits
        deadline = started + call_budget(tool, [a.provider for a in attempts], limits, "llm")
        temperature = planning.temperature_of(tool, params)
        last: tuple[Attempt, ProviderFailure] | None = None
        rate_refusal: RateLimited | None = None
        for index, attempt in enumerate(attempts):
            model_config = snapshot.config.models.get(attempt.model)
            if model_config is not None:
                try:
                    await admit_model(self.limits, attempt.model, model_config)
                except RateLimited as refusal:
                    path.append({"provider": attempt.provider.name, "error": refusal.message})
                    rate_refusal = refusal
                    continue
            request = ChatRequest(
                model=attempt.model,
                messages=payload["messages"],
                system=payload["system"],
                max_tokens=planning.max_tokens_for(params, tool, model_config),
                temperature=temperature,
                tools=params.get("tools"),
                tool_choice=params.get("tool_choice"),
                response_format=params.get("response_format"),
            )
            meter.begin(
                attempt.provider.name,
                attempt.model,
                model_config,
                input_token_bound(payload, model_config),
                request.max_tokens,
            )
            debug, sent_at = snapshot.config.debug, time.monotonic()
            log_request(
                debug,
                tool=meter.tool,
                provider=attempt.provider.name,
                model=attempt.model,
                input_bound=input_token_bound(payload, model_config),
                stream=emitter is not None,
            )
            try:
                result = await self._chat_with_retry(
                    snapshot,
                    attempt,
                    request,
                    deadline,
                    emitter,
                    meter,
                    is_last=index == len(attempts) - 1,
                )
            except ProviderFailure as failure:
                log_response(
                    debug,
                    tool=meter.tool,
                    provider=attempt.provider.name,
                    model=attempt.model,
                    outcome=f"failed:{failure.kind}:{failure.status or '-'}",
                    elapsed_ms=(time.monotonic() - sent_at) * 1000,
                )
                path.append({"provider": attempt.provider.name, "error": self._describe(failure)})
                last = (attempt, failure)
                if not planning.may_move_on(failure, chunks_sent(emitter)):
                    break
                continue
            billed = meter.succeed(result.input_tokens, result.output_tokens, path)
            log_response(
                debug,
                tool=meter.tool,
                provider=attempt.provider.name,
                model=result.model or attempt.model,
                outcome="ok",
                input_tokens=billed.input_tokens,
                output_tokens=billed.output_tokens,
                elapsed_ms=(time.monotonic() - sent_at) * 1000,
            )
            return {
                # a stream's text went out in its chunks; it does not cross the socket twice
                "text": result.text if emitter is None else "",
                "provider": attempt.provider.name,
                "model": result.model or attempt.model,
                "fallback_path": path,
                "usage": usage_of(billed),
                "cost_usd": meter.cost,
                "latency_ms": round((time.monotonic() - started) * 1000, 3),
                "finish_reason": result.finish_reason,
                "tool_calls": result.tool_calls,
            }
        if last is None and rate_refusal is not None:
            raise rate_refusal
        raise self._final_error(path, last, chunks_sent(emitter))

    async def _chat_with_retry(
        self,
        snapshot: Snapshot,
        attempt: Attempt,
        request: ChatRequest,
        deadline: float,
        emitter: Emitter | None,
        meter: CallMeter,
        *,
        is_last: bool,
    ) -> ChatResult:
        """One provider, asked again on a retryable failure (`guardian.calls.retries`)."""
        return await with_retries(
            lambda: self._chat(snapshot, attempt, request, deadline, emitter, meter),
            name=attempt.provider.name,
            describe=self._describe,
            limits=snapshot.config.hub_limits,
            deadline=deadline,
            is_last=is_last,
            streamed=lambda: bool(chunks_sent(emitter)),
        )

    async def _chat(
        self,
        snapshot: Snapshot,
        attempt: Attempt,
        request: ChatRequest,
        deadline: float,
        emitter: Emitter | None,
        meter: CallMeter,
    ) -> ChatResult:
        provider = attempt.provider
        if not attempt.model:
            raise ProviderFailure("config", "no model: set default_model for this provider")
        adapter = llm_adapter(provider)
        started_at = time.monotonic()
        loop_deadline = asyncio.get_running_loop().time() + (deadline - started_at)

        async def send(key: str | None, timeout: float) -> ChatResult:
            call = adapter.chat(key, request, stream=emitter is not None)
            meter.sending()
            try:
                if emitter is None:
                    body = await self.outbound.json(
                        provider.name, call, timeout=timeout, max_bytes=DEFAULT_MAX_RESPONSE_BYTES
                    )
                    meter.answered()
                    result = adapter.parse_chat(body)
                    meter.text(reply_text(result))
                    return result
                # The call's budget bounds a whole stream, or a provider that trickles (each
                # event inside `timeout`) would hold the call forever.
                with translated(deadline - started_at):
                    async with (
                        asyncio.timeout_at(loop_deadline),
                        self.outbound.stream(
                            provider.name,
                            call,
                            timeout=timeout,
                            max_bytes=DEFAULT_MAX_RESPONSE_BYTES,
                        ) as chunks,
                    ):
                        return await read_stream(chunks, adapter, emitter, meter)
            except ProviderFailure as failure:
                # refused with a status, or never reached: nothing was consumed
                if meter.in_flight and failure.kind in ("status", "connection"):
                    meter.answered()
                raise

        # Once text has reached the caller, another key would repeat it: no retry then.
        cap = snapshot.config.hub_limits.max_parallel_requests
        return await self.keys.call(
            snapshot.secrets,
            provider,
            deadline,
            self.slots.slotted(provider.name, cap, send),
            may_retry=lambda: not chunks_sent(emitter),
        )

    # embeddings ----------------------------------------------------------------------------
    async def embed(self, params: dict[str, Any], principal: Principal) -> dict[str, Any]:
        """Embeddings from the model's own provider; no fallback (vectors of another model
        would not be comparable)."""
        started = time.monotonic()
        snapshot = self.live.snapshot
        await self.admit(principal, "embeddings")
        texts = params["input"] if isinstance(params["input"], list) else [params["input"]]
        if not texts:
            raise InvalidParams("input is empty")
        path: list[Step] = []
        named = {"model": params["model"]}
        attempt = planning.allowed_attempts(
            principal.role, planning.plan_llm(snapshot, None, named, path), True, snapshot, path
        )[0]
        provider = attempt.provider
        model = snapshot.config.models.get(attempt.model)
        bound = input_token_bound(texts, model)
        meter = self._meter(principal, "embeddings", "llm.embed", params)
        meter.reservation = await self._hold(
            principal,
            "embeddings",
            [(max_cost_usd(model, bound, 0), attempt)],
            {id(attempt): (bound, 0)},
        )
        meter.begin(provider.name, attempt.model, model, bound, 0)

        async def send(key: str | None, timeout: float) -> tuple[list[list[float]], int | None]:
            call = embed_call(provider, key, attempt.model, texts)
            meter.sending()
            try:
                body = await self.outbound.json(
                    provider.name, call, timeout=timeout, max_bytes=DEFAULT_MAX_RESPONSE_BYTES
                )
            except ProviderFailure as failure:
                if failure.kind in ("status", "connection"):
                    meter.answered()
                raise
            meter.answered()
            return parse_embeddings(provider, body)

        async def work() -> dict[str, Any]:
            try:
                vectors, tokens = await self.keys.call(
                    snapshot.secrets, provider, started + provider.timeout_sec, send
                )
            except ProviderFailure as failure:
                path.append({"provider": provider.name, "error": self._describe(failure)})
                raise self._final_error(path, (attempt, failure), 0) from None
            billed = meter.succeed(tokens, 0, path)
            return {
                "data": vectors,
                "model": attempt.model,
                "provider": provider.name,
                "usage": {k: v for k, v in usage_of(billed).items() if k != "output_tokens"},
            }

        answer = await self._ending(meter, path, work())
        await self._spent_unbudgeted(meter)
        return answer

    # search --------------------------------------------------------------------------------
    async def search(self, params: dict[str, Any], principal: Principal) -> dict[str, Any]:
        started = time.monotonic()
        snapshot = self.live.snapshot
        tool_name = params["tool"]
        tool = planning.tool_for(snapshot, tool_name, "search")
        await self.admit(principal, tool_name)
        path: list[Step] = []
        chain = planning.plan_search(
            snapshot, tool, params.get("provider") or "", principal.role, path
        )
        limits = snapshot.config.hub_limits
        deadline = started + call_budget(tool, chain, limits, "search")
        meter = self._meter(principal, tool_name, "search.web", params)
        # a search has no token cost, but its start is recorded like any call's
        meter.reservation = await self.limits.reserve(
            principal.name, None, 0.0, tool=tool_name, provider=chain[0].name, model=""
        )

        async def work() -> dict[str, Any]:
            last: tuple[Attempt, ProviderFailure] | None = None
            for index, provider in enumerate(chain):
                meter.begin(provider.name, "", None, 0, 0)  # searches have no token cost
                request = SearchRequest(
                    query=params["query"],
                    max_results=result_count(params.get("max_results"), provider),
                )
                try:
                    result = await with_retries(
                        functools.partial(self._search_one, snapshot, provider, request, deadline),
                        name=provider.name,
                        describe=self._describe,
                        limits=limits,
                        deadline=deadline,
                        is_last=index == len(chain) - 1,
                    )
                except ProviderFailure as failure:
                    path.append({"provider": provider.name, "error": self._describe(failure)})
                    last = (Attempt(provider, ""), failure)
                    if not planning.may_move_on(failure, 0):
                        break
                    continue
                answer: dict[str, Any] = {
                    "results": result.results[: request.max_results],
                    "provider": provider.name,
                    "fallback_path": path,
                    "latency_ms": round((time.monotonic() - started) * 1000, 3),
                }
                if result.answer:
                    answer["answer"] = result.answer
                meter.succeed(0, 0, path)
                return answer
            raise self._final_error(path, last, 0)

        return await self._ending(meter, path, work())

    async def _search_one(
        self, snapshot: Snapshot, provider: ProviderConfig, request: SearchRequest, deadline: float
    ) -> SearchResult:
        adapter = search_adapter(provider)

        async def send(key: str | None, timeout: float) -> SearchResult:
            body = await self.outbound.json(
                provider.name,
                adapter.search(key, request),
                timeout=timeout,
                max_bytes=DEFAULT_MAX_RESPONSE_BYTES,
            )
            return adapter.parse(body)

        cap = snapshot.config.hub_limits.max_parallel_requests
        return await self.keys.call(
            snapshot.secrets, provider, deadline, self.slots.slotted(provider.name, cap, send)
        )

    # helpers -------------------------------------------------------------------------------
    def _describe(self, failure: ProviderFailure) -> str:
        """A failure as callers, logs and the ledger see it: redacted whole, then cut."""
        return self.live.redactor.redact_and_cut(failure.describe(), MAX_ERROR_TEXT)

    def _final_error(
        self, path: list[Step], last: tuple[Attempt, ProviderFailure] | None, sent: int
    ) -> RPCError:
        describe = self._describe(last[1]) if last is not None else ""
        return planning.final_error(path, last, sent, describe)
