"""Sealed provider calls: pick the provider chain, inject the key, walk the fallbacks, meter.

Where a call goes is decided here from guardian configuration only (ARCHITECTURE.md 4.3):
the sandbox names a tool, and may name a provider or a model; the guardian checks both. The
chain starts at the named provider (or the model's, or the tool's default) and follows
`fallback_to`, skipping inactive providers. A pinned model is only ever sent to the first
provider; the others use their own default model. The chain moves on after a timeout, a
connection error, 401, 403, 408, 429 or 5xx, and stops at once on any other 4xx: the request
itself was refused. A stream falls back only before its first chunk has been passed on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from guardian import policy
from guardian.auth import Principal
from guardian.costs import input_token_bound, max_cost_usd, output_token_bound
from guardian.keys import KeyRing
from guardian.ledger import UsageLedger
from guardian.limits import Limits
from guardian.metering import LINK_LOST, CallMeter, cancel_reason
from guardian.outbound import DEFAULT_MAX_RESPONSE_BYTES, Outbound, translated
from guardian.providers.adapters import (
    LLMAdapter,
    embed_call,
    llm_adapter,
    parse_embeddings,
)
from guardian.providers.search import search_adapter
from guardian.providers.sse import events
from guardian.providers.types import (
    ChatRequest,
    ChatResult,
    ProviderFailure,
    SearchRequest,
)
from guardian.state import GuardianState, Snapshot
from guardian.storage.base import Reservation
from protocol.errors import (
    ConnectionLost,
    Forbidden,
    InvalidParams,
    NotFound,
    ProviderError,
    RateLimited,
    RPCError,
    Timeout,
    Unavailable,
)
from protocol.pyfun import ModelConfig, ProviderConfig, ToolConfig

logger = logging.getLogger("sealgate.guardian.router")

T = TypeVar("T")

MAX_BUDGET_S = 600.0
MAX_STREAM_EVENT_BYTES = 1024 * 1024
#: Provider error text kept per failure, after redaction.
MAX_ERROR_TEXT = 240
Emit = Callable[[Any], Awaitable[None]]
#: What each built-in tool may call; a built-in not listed makes no provider call at all.
BUILTIN_KINDS = {
    "llm_complete": "llm",
    "web_search": "search",
    "health_check": "",
    "list_active_tools": "",
    "get_model_info": "",
    "db_query": "",
}


@dataclass(frozen=True, slots=True)
class Attempt:
    provider: ProviderConfig
    model: str


class _Emitter:
    """Passes stream chunks on and remembers whether any reached the caller."""

    def __init__(self, emit: Emit) -> None:
        self._emit = emit
        self.sent = 0

    async def __call__(self, text: str, tool_calls: list[dict[str, Any]] | None = None) -> None:
        chunk: dict[str, Any] = {"text": text}
        if tool_calls:
            chunk["tool_calls"] = tool_calls
        await self._emit(chunk)
        self.sent += 1


def merge_tool_calls(calls: dict[int, dict[str, Any]], deltas: list[dict[str, Any]]) -> None:
    """Fold OpenAI-style tool call deltas (by index) into whole calls."""
    for delta in deltas:
        if not isinstance(delta, dict):
            continue
        index = delta.get("index", len(calls))
        index = index if isinstance(index, int) else len(calls)
        call = calls.setdefault(
            index,
            {
                "index": index,
                "id": "",
                "type": "function",
                "function": {"name": "", "arguments": ""},
            },
        )
        if delta.get("id"):
            call["id"] = delta["id"]
        given = delta.get("function")
        function: dict[str, Any] = given if isinstance(given, dict) else {}
        if function.get("name"):
            call["function"]["name"] = function["name"]
        if isinstance(function.get("arguments"), str):
            call["function"]["arguments"] += function["arguments"]


def _split_model(model: str, providers: dict[str, ProviderConfig] | Any) -> tuple[str, str]:
    """`provider/model` names a provider only when the prefix is one (OpenRouter ids have /)."""
    prefix, slash, rest = model.partition("/")
    if slash and prefix in providers and rest:
        return prefix, rest
    return "", model


class Router:
    def __init__(
        self,
        state: GuardianState,
        outbound: Outbound,
        ledger: UsageLedger | None,
        limits: Limits | None = None,
        key_used: Callable[[str], None] | None = None,
    ) -> None:
        self.state = state
        self.outbound = outbound
        self.ledger = ledger
        self.limits = limits
        self.key_used = key_used
        self._keyrings: dict[str, KeyRing] = {}

    async def admit(self, principal: Principal, tool: str) -> None:
        await policy.admit(self.limits, principal, tool)

    def keyring(self, provider: ProviderConfig) -> KeyRing:
        ring = self._keyrings.get(provider.name)
        if ring is None or ring.names != provider.env_keys:
            ring = self._keyrings[provider.name] = KeyRing(provider.env_keys)
        return ring

    def key_status(self) -> dict[str, dict[str, str]]:
        return {name: ring.status() for name, ring in self._keyrings.items()}

    # planning ------------------------------------------------------------------------------
    def _tool(self, snapshot: Snapshot, name: str, kind: str) -> ToolConfig | None:
        """The tool a call is made for, which must be one that makes calls of this kind: a
        role's tool list names what each tool may do, so a sandbox cannot relabel a
        completion as `get_model_info` to pass a role allowed only that."""
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

    def _chain(
        self,
        snapshot: Snapshot,
        providers: dict[str, ProviderConfig] | Any,
        active: tuple[str, ...],
        start: str,
        path: list[dict[str, str]],
    ) -> list[ProviderConfig]:
        if start not in providers:
            raise NotFound(f"provider {start!r} is not configured")
        chain: list[ProviderConfig] = []
        current: ProviderConfig | None = providers[start]
        while current is not None:
            if current.name in active:
                chain.append(current)
            else:
                path.append({"provider": current.name, "error": "skipped: not active (no key)"})
            current = providers.get(current.fallback_to) if current.fallback_to else None
        if not chain:
            raise Unavailable(f"provider {start!r} is not active and has no active fallback")
        return chain

    def plan_llm(
        self,
        snapshot: Snapshot,
        tool: ToolConfig | None,
        params: dict[str, Any],
        path: list[dict[str, str]],
    ) -> list[Attempt]:
        config = snapshot.config
        provider_name = params.get("provider") or ""
        model = params.get("model") or ""
        if model:
            prefix, model = _split_model(model, config.llm_providers)
            if prefix and provider_name and prefix != provider_name:
                raise InvalidParams(
                    f"model names provider {prefix!r} but provider is {provider_name!r}"
                )
            if not prefix and model not in policy.known_models(config):
                raise NotFound(
                    f"model {model!r} is not configured; add a [MODEL.{model}] block, or name its"
                    " provider as 'provider/model'"
                )
            provider_name = provider_name or prefix
            if not provider_name and model in config.models:
                provider_name = config.models[model].provider
            if not provider_name:  # a provider's default or listed model
                provider_name = next(
                    (
                        p.name
                        for p in config.llm_providers.values()
                        if model == p.default_model or model in p.models
                    ),
                    "",
                )
        if not provider_name:
            default = tool.default_provider if tool else ""
            provider_name = default or (snapshot.llm_providers[0] if snapshot.llm_providers else "")
        if not provider_name:
            raise Unavailable("no LLM provider is active: no key is configured")
        try:
            chain = self._chain(
                snapshot, config.llm_providers, snapshot.llm_providers, provider_name, path
            )
        except Unavailable as exc:
            if not model:
                raise
            # A model nobody can serve now is the caller's "no such model" (OpenAI: 404
            # model_not_found), not a server failure to retry.
            raise NotFound(f"model {model!r} is not available: {exc}") from None
        attempts = []
        for index, provider in enumerate(chain):
            pinned = model if index == 0 and provider.name == provider_name else ""
            attempts.append(Attempt(provider, pinned or provider.default_model))
        return attempts

    # llm -----------------------------------------------------------------------------------
    async def complete(
        self, params: dict[str, Any], principal: Principal, emit: Emit | None = None
    ) -> dict[str, Any]:
        started = time.monotonic()
        snapshot = self.state.snapshot
        tool_name = params["tool"]
        tool = self._tool(snapshot, tool_name, "llm")
        await self.admit(principal, tool_name)
        messages = self._messages(params)
        path: list[dict[str, str]] = []
        attempts = self._filter(
            principal, self.plan_llm(snapshot, tool, params, path), params, snapshot, path
        )
        system = (
            (tool.system_prompt if tool and tool.system_prompt else "")
            or params.get("system")
            or ""
        )
        temperature = params.get("temperature")
        if temperature is None and tool is not None:
            temperature = tool.temperature
        # what the input tokens are bounded from: everything of the request that is sent
        payload = {
            "messages": messages,
            "system": system,
            **{
                key: params[key]
                for key in ("tools", "tool_choice", "response_format")
                if params.get(key) is not None
            },
        }
        meter = CallMeter(
            ledger=self.ledger,
            limits=self.limits,
            principal=principal.name,
            tool=tool_name,
            action="llm.stream" if emit is not None else "llm.complete",
            ip=str((params.get("caller") or {}).get("ip", "")),
        )
        meter.reservation = await self._reserve(
            principal, tool_name, tool, params, payload, attempts
        )
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
                temperature,
                started,
                path,
                meter,
                _Emitter(emit) if emit is not None else None,
            ),
        )
        if self.limits is not None and meter.reservation is None and answer["cost_usd"]:
            await self.limits.add_spend(principal.name, answer["cost_usd"])
        return answer

    async def _reserve(
        self,
        principal: Principal,
        tool_name: str,
        tool: ToolConfig | None,
        params: dict[str, Any],
        payload: dict[str, Any],
        attempts: list[Attempt],
    ) -> Reservation | None:
        """Hold the most any attempt of this call can cost against the principal's budget,
        in storage, before anything leaves; None for a principal without a budget."""
        models = self.state.snapshot.config.models
        priced = []
        for attempt in attempts:
            model = models.get(attempt.model)
            bound = input_token_bound(payload, model)
            priced.append(
                (max_cost_usd(model, bound, self._max_tokens(params, tool, model)), attempt)
            )
        return await self._hold(principal, tool_name, priced)

    async def _hold(
        self,
        principal: Principal,
        tool_name: str,
        priced: list[tuple[float | None, Attempt]],
    ) -> Reservation | None:
        budget = principal.role.monthly_budget_usd
        if budget is None or self.limits is None:
            return None
        worst, worst_attempt = 0.0, priced[0][1]
        for amount, attempt in priced:
            if amount is not None and amount >= worst:
                worst, worst_attempt = amount, attempt
        return await self.limits.reserve(
            principal.name,
            budget,
            worst,
            tool=tool_name,
            provider=worst_attempt.provider.name,
            model=worst_attempt.model,
        )

    async def _ending(self, meter: CallMeter, path: list[dict[str, str]], work: Awaitable[T]) -> T:
        """Run a call's work; however it ends, its meter writes the one ledger row."""
        try:
            return await work
        except asyncio.CancelledError as exc:
            reason = cancel_reason(exc)
            meter.fail(reason, path, f"the call ended early: {reason.replace('_', ' ')}")
            raise
        except ConnectionLost:  # a chunk could not be passed on: the sandbox's link is gone
            meter.fail(LINK_LOST, path, "the call ended early: link lost")
            raise
        except RateLimited as exc:  # every model was rationed: nothing was sent
            meter.fail(exc.code.value, path, audited=False)
            raise
        except RPCError as exc:  # redacted whole, then cut: no part of a secret is stored
            meter.fail(exc.code.value, path, self.state.redactor.redact_and_cut(exc.message, 300))
            raise
        except BaseException:
            meter.fail("internal", path, "the guardian hit an internal error")
            raise

    async def _complete_chain(
        self,
        snapshot: Snapshot,
        tool: ToolConfig | None,
        params: dict[str, Any],
        attempts: list[Attempt],
        payload: dict[str, Any],
        temperature: Any,
        started: float,
        path: list[dict[str, str]],
        meter: CallMeter,
        emitter: _Emitter | None,
    ) -> dict[str, Any]:
        """Walk the chain; return the answer (its ending recorded) or raise the error."""
        deadline = started + self._budget(tool, [a.provider for a in attempts])
        last: tuple[Attempt, ProviderFailure] | None = None
        rate_refusal: RateLimited | None = None
        for index, attempt in enumerate(attempts):
            model_config = snapshot.config.models.get(attempt.model)
            if model_config is not None and model_config.requests_per_min and self.limits:
                try:
                    await self.limits.hit(
                        f"model:{attempt.model}",
                        model_config.requests_per_min,
                        f"model {attempt.model}",
                    )
                except RateLimited as refusal:
                    path.append({"provider": attempt.provider.name, "error": refusal.message})
                    rate_refusal = refusal
                    continue
            request = ChatRequest(
                model=attempt.model,
                messages=payload["messages"],
                system=payload["system"],
                max_tokens=self._max_tokens(params, tool, model_config),
                temperature=float(temperature) if temperature is not None else None,
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
                path.append({"provider": attempt.provider.name, "error": self._describe(failure)})
                last = (attempt, failure)
                if (emitter is not None and emitter.sent) or not failure.falls_back:
                    break
                continue
            latency_ms = round((time.monotonic() - started) * 1000, 3)
            meter.succeed(result.input_tokens, result.output_tokens, path)
            return {
                "text": result.text,
                "provider": attempt.provider.name,
                "model": result.model or attempt.model,
                "fallback_path": path,
                "usage": {
                    "input_tokens": result.input_tokens,
                    "output_tokens": result.output_tokens,
                },
                "cost_usd": meter.cost,
                "latency_ms": latency_ms,
                "finish_reason": result.finish_reason,
                "tool_calls": result.tool_calls,
            }
        if last is None and rate_refusal is not None:
            raise rate_refusal
        raise self._final_error(path, last, emitter)

    def _filter(
        self,
        principal: Principal,
        attempts: list[Attempt],
        params: dict[str, Any],
        snapshot: Snapshot,
        path: list[dict[str, str]],
    ) -> list[Attempt]:
        """Drop the attempts the principal's role does not allow; refuse if it named one."""
        kept = []
        for index, attempt in enumerate(attempts):
            pinned = index == 0 and bool(params.get("provider") or params.get("model"))
            reason = policy.refusal(
                principal.role, attempt.provider, attempt.model, pinned, snapshot.config
            )
            if reason:
                path.append({"provider": attempt.provider.name, "error": f"skipped: {reason}"})
            else:
                kept.append(attempt)
        if not kept:
            raise Forbidden(
                f"role {principal.role.name!r} may use none of the providers this call could go to"
            )
        return kept

    @staticmethod
    def _messages(params: dict[str, Any]) -> list[dict[str, Any]]:
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

    def _max_tokens(
        self, params: dict[str, Any], tool: ToolConfig | None, model: ModelConfig | None
    ) -> int:
        return output_token_bound(
            params.get("max_tokens"), tool.max_tokens if tool else None, model
        )

    async def _chat_with_retry(
        self,
        snapshot: Snapshot,
        attempt: Attempt,
        request: ChatRequest,
        deadline: float,
        emitter: _Emitter | None,
        meter: CallMeter,
        *,
        is_last: bool,
    ) -> ChatResult:
        """One provider; the last in the chain may wait out a Retry-After that fits the budget."""
        try:
            return await self._chat(snapshot, attempt, request, deadline, emitter, meter)
        except ProviderFailure as failure:
            wait = failure.retry_after
            remaining = deadline - time.monotonic()
            if not is_last or wait is None or not failure.falls_back or (emitter and emitter.sent):
                raise
            if wait + 1.0 > remaining:
                raise
            await asyncio.sleep(wait)
            return await self._chat(snapshot, attempt, request, deadline, emitter, meter)

    async def _chat(
        self,
        snapshot: Snapshot,
        attempt: Attempt,
        request: ChatRequest,
        deadline: float,
        emitter: _Emitter | None,
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
                    return adapter.parse_chat(body)
                # The call's budget bounds a whole stream, or a provider that trickles (each
                # event inside `timeout`) would hold the call forever.
                with translated(deadline - started_at):
                    async with asyncio.timeout_at(loop_deadline):
                        return await self._stream(provider, adapter, call, timeout, emitter, meter)
            except ProviderFailure as failure:
                # refused with a status, or never reached: nothing was consumed
                if meter.in_flight and failure.kind in ("status", "connection"):
                    meter.answered()
                raise

        # Once text has reached the caller, another key would repeat it: no retry then.
        return await self._with_keys(
            snapshot, provider, deadline, send, may_retry=lambda: not (emitter and emitter.sent)
        )

    async def _with_keys(
        self,
        snapshot: Snapshot,
        provider: ProviderConfig,
        deadline: float,
        send: Callable[[str | None, float], Awaitable[T]],
        may_retry: Callable[[], bool] = lambda: True,
    ) -> T:
        """Call `send(key, timeout)` with the provider's keys in rotation. A key the provider
        refuses (401, 403, 429) is set aside for a while and the next key is tried before the
        chain falls back; any other failure goes straight to the caller."""
        keys: list[tuple[str | None, str | None]] = [(None, None)]
        if provider.requires_key:
            keys = list(self.keyring(provider).order(snapshot.secrets))
            if not keys:
                raise ProviderFailure("config", "no key is configured")
        failure: ProviderFailure | None = None
        for name, key in keys:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ProviderFailure("timeout", "the call's time budget ran out")
            try:
                result = await send(key, min(provider.timeout_sec, remaining))
            except ProviderFailure as exc:
                if name is None or not exc.blames_key or not may_retry():
                    raise
                self.keyring(provider).mark_failing(name, f"HTTP {exc.status}")
                logger.warning(
                    "%s: key %s refused (HTTP %s); trying the next key",
                    provider.name,
                    name,
                    exc.status,
                )
                failure = exc
                continue
            if name is not None:
                self.keyring(provider).mark_ok(name)
                if self.key_used is not None:
                    self.key_used(name)
            return result
        raise failure or ProviderFailure("config", "no key is configured")

    async def _stream(
        self,
        provider: ProviderConfig,
        adapter: LLMAdapter,
        call: Any,
        timeout: float,
        emitter: _Emitter,
        meter: CallMeter,
    ) -> ChatResult:
        result = ChatResult(text="", model="")
        parts: list[str] = []
        calls: dict[int, dict[str, Any]] = {}
        async with self.outbound.stream(
            provider.name, call, timeout=timeout, max_bytes=DEFAULT_MAX_RESPONSE_BYTES
        ) as chunks:
            try:
                async for event, data in events(chunks, MAX_STREAM_EVENT_BYTES):
                    if data.strip() == "[DONE]":
                        break
                    try:
                        parsed = json.loads(data)
                    except ValueError:
                        raise ProviderFailure("malformed", "stream event is not JSON") from None
                    if not meter.answering:
                        meter.streaming()
                    delta = adapter.parse_event(event, parsed)
                    if delta is None:
                        continue
                    meter.usage(delta.input_tokens, delta.output_tokens)
                    if delta.model:
                        result.model = delta.model
                    if delta.input_tokens is not None:
                        result.input_tokens = delta.input_tokens
                    if delta.output_tokens is not None:
                        result.output_tokens = delta.output_tokens
                    if delta.finish_reason:
                        result.finish_reason = delta.finish_reason
                    if delta.tool_calls:
                        merge_tool_calls(calls, delta.tool_calls)
                    if delta.text or delta.tool_calls:
                        parts.append(delta.text)
                        meter.text(
                            delta.text + (json.dumps(delta.tool_calls) if delta.tool_calls else "")
                        )
                        await emitter(delta.text, delta.tool_calls)
            except ValueError as exc:
                raise ProviderFailure("malformed", str(exc)) from None
        result.text = "".join(parts)
        result.tool_calls = [calls[index] for index in sorted(calls)]
        if result.tool_calls and result.finish_reason == "stop":
            result.finish_reason = "tool_calls"
        return result

    # embeddings ----------------------------------------------------------------------------
    async def embed(self, params: dict[str, Any], principal: Principal) -> dict[str, Any]:
        """Embeddings from the model's own provider; no fallback (vectors of another model
        would not be comparable)."""
        started = time.monotonic()
        snapshot = self.state.snapshot
        await self.admit(principal, "embeddings")
        texts = params["input"] if isinstance(params["input"], list) else [params["input"]]
        if not texts:
            raise InvalidParams("input is empty")
        path: list[dict[str, str]] = []
        attempts = self._filter(
            principal,
            self.plan_llm(snapshot, None, {"model": params["model"]}, path),
            {"model": params["model"]},
            snapshot,
            path,
        )
        attempt = attempts[0]
        provider = attempt.provider
        model = snapshot.config.models.get(attempt.model)
        bound = input_token_bound(texts, model)
        meter = CallMeter(
            ledger=self.ledger,
            limits=self.limits,
            principal=principal.name,
            tool="embeddings",
            action="llm.embed",
            ip=str((params.get("caller") or {}).get("ip", "")),
        )
        meter.reservation = await self._hold(
            principal, "embeddings", [(max_cost_usd(model, bound, 0), attempt)]
        )
        meter.begin(provider.name, attempt.model, model, bound, 0)

        async def send(key: str | None, timeout: float) -> tuple[list[list[float]], int]:
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
                vectors, tokens = await self._with_keys(
                    snapshot, provider, started + provider.timeout_sec, send
                )
            except ProviderFailure as failure:
                path.append({"provider": provider.name, "error": self._describe(failure)})
                raise self._final_error(path, (attempt, failure), None) from None
            meter.succeed(tokens, 0, path)
            return {
                "data": vectors,
                "model": attempt.model,
                "provider": provider.name,
                "usage": {"input_tokens": tokens},
            }

        answer = await self._ending(meter, path, work())
        if self.limits is not None and meter.reservation is None and meter.cost:
            await self.limits.add_spend(principal.name, meter.cost)
        return answer

    # search --------------------------------------------------------------------------------
    async def search(self, params: dict[str, Any], principal: Principal) -> dict[str, Any]:
        started = time.monotonic()
        snapshot = self.state.snapshot
        tool_name = params["tool"]
        tool = self._tool(snapshot, tool_name, "search")
        await self.admit(principal, tool_name)
        path: list[dict[str, str]] = []
        start = params.get("provider") or (tool.default_provider if tool else "")
        start = start or (snapshot.search_providers[0] if snapshot.search_providers else "")
        if not start:
            raise Unavailable("no search provider is active: no key is configured")
        chain = self._chain(
            snapshot, snapshot.config.search_providers, snapshot.search_providers, start, path
        )
        role = principal.role
        if params.get("provider") and not policy.allows(role.providers, start):
            raise Forbidden(f"provider {start!r} is not allowed for role {role.name!r}")
        chain = [p for p in chain if policy.allows(role.providers, p.name)]
        if not chain:
            raise Forbidden(f"role {role.name!r} may use no search provider here")
        deadline = started + self._budget(tool, chain)
        request = SearchRequest(query=params["query"], max_results=params.get("max_results") or 5)
        meter = CallMeter(
            ledger=self.ledger,
            limits=self.limits,
            principal=principal.name,
            tool=tool_name,
            action="search.web",
            ip=str((params.get("caller") or {}).get("ip", "")),
        )

        async def work() -> dict[str, Any]:
            last: tuple[Attempt, ProviderFailure] | None = None
            for provider in chain:
                meter.begin(provider.name, "", None, 0, 0)  # searches have no token cost
                try:
                    result = await self._search_one(snapshot, provider, request, deadline)
                except ProviderFailure as failure:
                    path.append({"provider": provider.name, "error": self._describe(failure)})
                    last = (Attempt(provider, ""), failure)
                    if not failure.falls_back:
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
            raise self._final_error(path, last, None)

        return await self._ending(meter, path, work())

    async def _search_one(
        self, snapshot: Snapshot, provider: ProviderConfig, request: SearchRequest, deadline: float
    ) -> Any:
        adapter = search_adapter(provider)

        async def send(key: str | None, timeout: float) -> Any:
            body = await self.outbound.json(
                provider.name,
                adapter.search(key, request),
                timeout=timeout,
                max_bytes=DEFAULT_MAX_RESPONSE_BYTES,
            )
            return adapter.parse(body)

        return await self._with_keys(snapshot, provider, deadline, send)

    # models --------------------------------------------------------------------------------
    def models_info(
        self, params: dict[str, Any], principal: Principal | None = None
    ) -> dict[str, Any]:
        """Configured models (and providers' defaults) the principal may use, or one."""
        snapshot = self.state.snapshot
        config = snapshot.config
        wanted = params.get("model")
        owners = {m.id: m.provider for m in config.models.values()}
        for provider in config.llm_providers.values():
            for model_id in (provider.default_model, *provider.models):
                if model_id:
                    owners.setdefault(model_id, provider.name)
        models = []
        for model_id, owner in owners.items():
            if wanted and model_id != wanted:
                continue
            if principal is not None and not (
                policy.allows(principal.role.models, model_id)
                and policy.allows(principal.role.providers, owner)
            ):
                continue
            entry = config.models.get(model_id)
            models.append(
                {
                    "id": model_id,
                    "provider": owner,
                    "provider_active": owner in snapshot.llm_providers,
                    "max_output_tokens": entry.max_output_tokens if entry else None,
                    "requests_per_min": entry.requests_per_min if entry else None,
                    "cost_input_per_1m": entry.cost_input_per_1m if entry else None,
                    "cost_output_per_1m": entry.cost_output_per_1m if entry else None,
                    "context_window": entry.context_window if entry else None,
                    "capabilities": list(entry.capabilities) if entry else [],
                }
            )
        if wanted and not models:
            raise NotFound(f"model {wanted!r} is not configured")
        return {"models": models}

    # helpers -------------------------------------------------------------------------------
    @staticmethod
    def _budget(tool: ToolConfig | None, chain: list[ProviderConfig]) -> float:
        """The whole call's time: the tool's timeout_sec, else each provider's own, summed."""
        if tool is not None:
            return tool.timeout_sec
        return min(sum(p.timeout_sec for p in chain), MAX_BUDGET_S)

    def _describe(self, failure: ProviderFailure) -> str:
        """A failure as callers, logs and the ledger see it: redacted whole, then cut."""
        return self.state.redactor.redact_and_cut(failure.describe(), MAX_ERROR_TEXT)

    def _final_error(
        self,
        path: list[dict[str, str]],
        last: tuple[Attempt, ProviderFailure] | None,
        emitter: _Emitter | None,
    ) -> RPCError:
        tried = "; ".join(f"{step['provider']}: {step['error']}" for step in path)
        data: dict[str, Any] = {"fallback_path": path}
        if last is None:
            return Unavailable(f"no provider could be tried ({tried})", data)
        attempt, failure = last
        data["provider"] = attempt.provider.name
        data["status"] = failure.status
        if emitter is not None and emitter.sent:
            return ProviderError(
                f"the stream from {attempt.provider.name} broke after {emitter.sent} chunks:"
                f" {self._describe(failure)}",
                data,
            )
        if not failure.falls_back:
            return ProviderError(
                f"{attempt.provider.name} refused the request ({self._describe(failure)});"
                " not retried elsewhere, since the request itself was refused",
                data,
            )
        tried_failures = [step for step in path if not step["error"].startswith("skipped")]
        if tried_failures and all(step["error"].startswith("timed out") for step in tried_failures):
            return Timeout(f"every provider timed out ({tried})", data)
        return ProviderError(f"every provider failed ({tried})", data)
