"""The sandbox's only way to the guardian: one thin typed stub per sealed RPC.

Each stub is named like the guardian handler it reaches, builds its call from the same
params Struct the guardian decodes it into (`protocol.contract`), and decodes the answer into
the method's result Struct (`protocol.contract_results`), so callers read typed fields and an
answer outside the contract is an `Internal` error here, not a KeyError later. The link
keeps one multiplexed connection, reconnects on its own when the guardian restarts, and
raises `Unavailable` at once while it is down, so no request hangs on a missing guardian.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from msgspec import UNSET

from protocol.channel import open_unix_channel
from protocol.client import ClientState, RPCStream
from protocol.contract import (
    CallerParams,
    DbQueryParams,
    EmbedParams,
    LlmParams,
    LoginParams,
    ModelsInfoParams,
    OAuthOwnGrantRevokeParams,
    OAuthOwnGrantsParams,
    Sealed,
    SearchParams,
    TaskRefParams,
    UsageMineParams,
    to_map,
)
from protocol.contract_results import (
    ConsentView,
    CountTokensResult,
    DbQueryResult,
    EmbedResult,
    HealthResult,
    LlmResult,
    LoginResult,
    ModelsInfoResult,
    OAuthConsentResult,
    OAuthLoginResult,
    OAuthOwnGrantRevokeResult,
    OAuthOwnGrantsResult,
    OAuthRegisterResult,
    OAuthServerInfoResult,
    OAuthTokenResult,
    Ok,
    SearchResult,
    TaskInfo,
    UsageMineResult,
    VerifyResult,
    decode_result,
)
from protocol.errors import InvalidParams
from sandbox.tracing import TracedClient

logger = logging.getLogger("sealgate.sandbox.link")

DEFAULT_CALL_TIMEOUT = 120.0
#: Stream chunks the guardian may send ahead of what a stream's HTTP reader has taken: a
#: slow reader holds at most this many here, and the rest of the answer waits upstream.
STREAM_WINDOW = 32

R = TypeVar("R", LlmResult, EmbedResult, SearchResult)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a sealed call is for, exactly as the HTTP layer saw it; the guardian decides who
    that is. `credential` is the bearer token or session id as received, None in open mode."""

    ip: str
    user_agent: str
    credential: str | None = None

    def to_params(self) -> CallerParams:
        credential = self.credential[:512] if self.credential is not None else UNSET
        return CallerParams(
            ip=self.ip[:64], user_agent=self.user_agent[:512], credential=credential
        )

    def to_wire(self) -> dict[str, Any]:
        return to_map(self.to_params())


def _optional(**params: Any) -> dict[str, Any]:
    return {key: value for key, value in params.items() if value is not None}


_PROMPT_OPTIONS = frozenset({"system", "provider", "model", "max_tokens", "temperature"})


def _prompt_params(
    caller: Caller, tool: str, prompt: str, options: dict[str, Any]
) -> dict[str, Any]:
    unknown = set(options) - _PROMPT_OPTIONS
    if unknown:
        raise RuntimeError(f"llm options {sorted(unknown)} do not exist.")
    return _llm_params(caller, tool, {"prompt": prompt, **_optional(**options)})


def _llm_params(caller: Caller, tool: str, fields: dict[str, Any]) -> dict[str, Any]:
    """An llm.complete / llm.stream call as `LlmParams` declares it (the guardian checks the
    values; a field it does not declare is refused here, as the guardian would)."""
    try:
        params = LlmParams(caller=caller.to_params(), tool=tool, **fields)
    except TypeError:
        unknown = sorted(set(fields) - set(LlmParams.__struct_fields__))
        raise InvalidParams(f"unknown parameter '{unknown[0] if unknown else '?'}'") from None
    return to_map(params)


@dataclass(frozen=True, slots=True)
class ActiveNames:
    """What the guardian says is usable now: names only, never a key or an endpoint."""

    llm_providers: tuple[str, ...] = ()
    search_providers: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> ActiveNames:
        def names(key: str) -> tuple[str, ...]:
            value = data.get(key)
            return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()

        return cls(names("llm_providers"), names("search_providers"), names("tools"))


ActiveListener = Callable[[ActiveNames], None]
#: What a sealed provider call answers.
SealedResult = LlmResult | EmbedResult | SearchResult
#: (method, seconds, result or None, failed) after every sealed provider call.
CallObserver = Callable[[str, float, SealedResult | None, bool], None]


def stream_result(stream: RPCStream) -> LlmResult | None:
    """The typed end of an `llm.stream` (None until the stream has ended)."""
    return None if stream.result is None else decode_result(LlmResult, stream.result)


class GuardianLink:
    def __init__(
        self, socket_path: Path, *, max_frame_size: int, listen_hosts: Sequence[str]
    ) -> None:
        """`listen_hosts`: the addresses this sandbox really listens on, stated in `hello`
        so the guardian decides open mode from where the gateway is reachable."""
        self.socket_path = socket_path
        self.active = ActiveNames()
        self._listeners: list[ActiveListener] = []
        self._upstream_listeners: list[Callable[[list[str]], None]] = []
        self.observer: CallObserver | None = None

        async def connect() -> Any:
            return await open_unix_channel(str(socket_path), max_frame_size)

        self._client = TracedClient(  # sandbox.tracing: trace context and spans
            connect,
            client_name="sandbox",
            max_frame_size=max_frame_size,
            hello_params={"listen": [h[:64] for h in listen_hosts][:16]},
            call_timeout=DEFAULT_CALL_TIMEOUT,
            on_connect=self._connected,
            on_notification=self._notified,
            stream_window=STREAM_WINDOW,
        )

    def on_active_change(self, listener: ActiveListener) -> None:
        self._listeners.append(listener)

    def on_upstream_change(self, listener: Callable[[list[str]], None]) -> None:
        """Called with server names when the upstream tools they serve change
        (`mcp.changed`: an approval, a pin hiding a tool, a server gone or back)."""
        self._upstream_listeners.append(listener)

    def start(self) -> None:
        """Begin connecting; a second call (the app's lifespan after `main`) does nothing."""
        if self._client.state is ClientState.NEW:
            self._client.start()

    async def wait_connected(self, timeout: float) -> bool:
        """True once the guardian has answered `hello`; False after `timeout` seconds."""
        return await self._client.wait_connected(timeout)

    async def close(self) -> None:
        await self._client.close()

    @property
    def connected(self) -> bool:
        return self._client.connected

    @property
    def last_error(self) -> str:
        return self._client.last_error

    # sealed calls ------------------------------------------------------------------------
    async def health(self, timeout: float | None = None) -> HealthResult:
        return decode_result(HealthResult, await self._client.call("health", {}, timeout=timeout))

    async def llm_complete(
        self, caller: Caller, tool: str, prompt: str, **options: Any
    ) -> LlmResult:
        """A prompt through the tool's chain; options: system, provider, model, max_tokens,
        temperature (None means unset)."""
        call = self._client.call("llm.complete", _prompt_params(caller, tool, prompt, options))
        return await self._observed("llm.complete", LlmResult, call)

    def llm_stream(self, caller: Caller, tool: str, prompt: str, **options: Any) -> RPCStream:
        """Chunks `{"text": delta}` as the provider sends them; `.result` after the last."""
        return self._client.stream("llm.stream", _prompt_params(caller, tool, prompt, options))

    async def llm_complete_params(
        self, caller: Caller, tool: str, params: dict[str, Any]
    ) -> LlmResult:
        """llm.complete with OpenAI-shaped params (messages, tools, ...) as they are."""
        call = self._client.call("llm.complete", _llm_params(caller, tool, params))
        return await self._observed("llm.complete", LlmResult, call)

    def llm_stream_params(self, caller: Caller, tool: str, params: dict[str, Any]) -> RPCStream:
        return self._client.stream("llm.stream", _llm_params(caller, tool, params))

    async def llm_embed(self, caller: Caller, model: str, texts: str | list[str]) -> EmbedResult:
        params = to_map(EmbedParams(caller=caller.to_params(), model=model, input=texts))
        return await self._observed(
            "llm.embed", EmbedResult, self._client.call("llm.embed", params)
        )

    async def _observed(self, method: str, kind: type[R], call: Any) -> R:
        started = time.perf_counter()
        try:
            result = decode_result(kind, await call)
        except Exception:
            if self.observer is not None:
                self.observer(method, time.perf_counter() - started, None, True)
            raise
        if self.observer is not None:
            self.observer(method, time.perf_counter() - started, result, False)
        return result

    def observe_stream(self, seconds: float, result: LlmResult | None, failed: bool) -> None:
        if self.observer is not None:
            self.observer("llm.stream", seconds, result, failed)

    async def search_web(
        self,
        caller: Caller,
        tool: str,
        query: str,
        *,
        max_results: int | None = None,
        provider: str | None = None,
    ) -> SearchResult:
        search = SearchParams(
            caller=caller.to_params(),
            tool=tool,
            query=query,
            **_optional(max_results=max_results, provider=provider),
        )
        call = self._client.call("search.web", to_map(search))
        return await self._observed("search.web", SearchResult, call)

    async def db_query(self, caller: Caller, sql: str, max_rows: int | None) -> DbQueryResult:
        params = DbQueryParams(caller=caller.to_params(), sql=sql, **_optional(max_rows=max_rows))
        return decode_result(DbQueryResult, await self._client.call("db.query", to_map(params)))

    async def auth_verify(self, caller: Caller) -> VerifyResult:
        params = to_map(Sealed(caller=caller.to_params()))
        answer = await self._client.call("auth.verify", params, timeout=10)
        return decode_result(VerifyResult, answer)

    async def auth_login(self, caller: Caller, username: str, password: str) -> LoginResult:
        login = LoginParams(caller=caller.to_params(), username=username, password=password)
        answer = await self._client.call("auth.login", to_map(login), timeout=30)
        return decode_result(LoginResult, answer)

    async def auth_logout(self, caller: Caller) -> Ok:
        params = to_map(Sealed(caller=caller.to_params()))
        return decode_result(Ok, await self._client.call("auth.logout", params, timeout=10))

    # OAuth: SealGate's own authorization server (the guardian decides) ------------------
    async def oauth_server_info(self) -> OAuthServerInfoResult:
        answer = await self._client.call("oauth.server_info", {}, timeout=10)
        return decode_result(OAuthServerInfoResult, answer)

    async def oauth_authorize(self, caller: Caller, request: dict[str, Any]) -> ConsentView:
        params = {"caller": caller.to_wire(), "request": request}
        return decode_result(
            ConsentView, await self._client.call("oauth.authorize", params, timeout=15)
        )

    async def oauth_login(
        self, caller: Caller, request: dict[str, Any], username: str, password: str
    ) -> OAuthLoginResult:
        params = {
            "caller": caller.to_wire(),
            "request": request,
            "username": username,
            "password": password,
        }
        answer = await self._client.call("oauth.login", params, timeout=30)
        return decode_result(OAuthLoginResult, answer)

    async def oauth_consent(self, caller: Caller, ticket: str, approve: bool) -> OAuthConsentResult:
        params = {"caller": caller.to_wire(), "ticket": ticket, "approve": approve}
        answer = await self._client.call("oauth.consent", params, timeout=15)
        return decode_result(OAuthConsentResult, answer)

    async def oauth_token(self, caller: Caller, form: dict[str, str]) -> OAuthTokenResult:
        params = {"caller": caller.to_wire(), "form": form}
        answer = await self._client.call("oauth.token", params, timeout=15)
        return decode_result(OAuthTokenResult, answer)

    async def oauth_register(self, caller: Caller, metadata: dict[str, Any]) -> OAuthRegisterResult:
        params = {"caller": caller.to_wire(), "metadata": metadata}
        answer = await self._client.call("oauth.register", params, timeout=15)
        return decode_result(OAuthRegisterResult, answer)

    async def oauth_revoke(
        self, caller: Caller, token: str, hint: str | None, client_id: str | None
    ) -> Ok:
        params = {
            "caller": caller.to_wire(),
            "token": token,
            **_optional(token_type_hint=hint, client_id=client_id),
        }
        return decode_result(Ok, await self._client.call("oauth.revoke", params, timeout=15))

    async def oauth_own_grants(self, caller: Caller) -> OAuthOwnGrantsResult:
        """The caller's own consents; the guardian resolves whose from the credential."""
        params = to_map(OAuthOwnGrantsParams(caller=caller.to_params()))
        answer = await self._client.call("oauth.own_grants", params, timeout=15)
        return decode_result(OAuthOwnGrantsResult, answer)

    async def oauth_own_grant_revoke(
        self, caller: Caller, client_id: str, form_token: str
    ) -> OAuthOwnGrantRevokeResult:
        params = OAuthOwnGrantRevokeParams(
            caller=caller.to_params(), client_id=client_id, form_token=form_token
        )
        answer = await self._client.call("oauth.own_grant_revoke", to_map(params), timeout=15)
        return decode_result(OAuthOwnGrantRevokeResult, answer)

    async def models_info(self, caller: Caller, model: str | None = None) -> ModelsInfoResult:
        params = ModelsInfoParams(caller=caller.to_params(), **_optional(model=model))
        answer = await self._client.call("models.info", to_map(params))
        return decode_result(ModelsInfoResult, answer)

    # guardian events ---------------------------------------------------------------------
    def _connected(self, hello: dict[str, Any]) -> None:
        self._set_active(ActiveNames.from_wire(hello))

    def _notified(self, method: str, params: dict[str, Any]) -> None:
        if method == "config.changed":
            self._set_active(ActiveNames.from_wire(params))
        elif method == "mcp.changed":
            servers = params.get("servers")
            names = [s for s in servers if isinstance(s, str)] if isinstance(servers, list) else []
            for upstream_listener in self._upstream_listeners:
                upstream_listener(names)
        else:
            logger.warning("ignored an unknown notification from the guardian: %.64s", method)

    def _set_active(self, active: ActiveNames) -> None:
        changed = active != self.active
        self.active = active
        if changed:
            for listener in self._listeners:
                listener(active)

    # the caller's own usage and budget (issue 28) ----------------------------------------
    async def usage_mine(self, caller: Caller) -> UsageMineResult:
        """The caller's own usage this month; the guardian resolves whose from the
        credential."""
        params = to_map(UsageMineParams(caller=caller.to_params()))
        answer = await self._client.call("usage.mine", params, timeout=15)
        return decode_result(UsageMineResult, answer)

    # LLM calls as tasks (issue 28 item 5) -------------------------------------------------
    async def tasks_start(self, caller: Caller, tool: str, prompt: str, **options: Any) -> TaskInfo:
        """Start a prompt through the tool's chain as a task of the caller's (options as for
        `llm_complete`); answers the task's first state."""
        params = _prompt_params(caller, tool, prompt, options)
        return decode_result(TaskInfo, await self._client.call("tasks.start", params, timeout=15))

    async def tasks_get(self, caller: Caller, task_id: str) -> TaskInfo:
        params = to_map(TaskRefParams(caller=caller.to_params(), task_id=task_id))
        return decode_result(TaskInfo, await self._client.call("tasks.get", params, timeout=15))

    async def tasks_cancel(self, caller: Caller, task_id: str) -> TaskInfo:
        params = to_map(TaskRefParams(caller=caller.to_params(), task_id=task_id))
        answer = await self._client.call("tasks.cancel", params, timeout=30)
        return decode_result(TaskInfo, answer)

    # token counts (issue 27: /v1/messages/count_tokens) --------------------------------
    async def llm_count_tokens(
        self, caller: Caller, tool: str, params: dict[str, Any]
    ) -> CountTokensResult:
        """A completion request's input tokens (the provider's count or the guardian's
        estimate, marked); checked like llm.complete, sent nowhere else."""
        answer = await self._client.call("llm.count_tokens", _llm_params(caller, tool, params))
        return decode_result(CountTokensResult, answer)


# a caller's own receipts (GET /v1/receipts/ID; docs/AUDIT.md) --------------------------------
from protocol.contract import ReceiptGetParams  # noqa: E402
from protocol.contract_results import ReceiptResult  # noqa: E402


async def receipts_get(link: GuardianLink, caller: Caller, receipt_id: str) -> ReceiptResult:
    """One of the caller's own receipts; the guardian resolves whose from the credential."""
    params = to_map(ReceiptGetParams(caller=caller.to_params(), id=receipt_id))
    answer = await link._client.call("receipts.get", params, timeout=30)
    return decode_result(ReceiptResult, answer)


# any replica answers (issue 29; guardian/relay.py) --------------------------------------------
from protocol.contract import (  # noqa: E402
    RelayListenParams,
    RelayPostParams,
    RelaySessionParams,
)
from protocol.contract_results import RelaySessionResult  # noqa: E402

#: A held SSE stream may hear nothing for as long as its client stays: no per-chunk bound.
RELAY_LISTEN_TIMEOUT_S = 10 * 24 * 3600.0


async def relay_session_open(link: GuardianLink, caller: Caller) -> str:
    """A new Streamable HTTP session id, signed by the guardian for the caller's principal."""
    params = to_map(Sealed(caller=caller.to_params()))
    answer = await link._client.call("relay.session_open", params, timeout=15)
    return decode_result(RelaySessionResult, answer).session_id


async def relay_session_check(link: GuardianLink, caller: Caller, session_id: str) -> None:
    """Returns when the id is the deployment's and the caller's; raises `NotFound` else."""
    params = to_map(RelaySessionParams(caller=caller.to_params(), session_id=session_id))
    decode_result(Ok, await link._client.call("relay.session_check", params, timeout=15))


def relay_listen(link: GuardianLink, caller: Caller, session_id: str) -> RPCStream:
    """The messages other replicas relay to this legacy SSE stream, as chunks `{message}`."""
    params = to_map(RelayListenParams(caller=caller.to_params(), session_id=session_id))
    return link._client.stream("relay.listen", params, timeout=RELAY_LISTEN_TIMEOUT_S)


async def relay_post(link: GuardianLink, caller: Caller, session_id: str, message: str) -> None:
    """Relay one POSTed message to the replica holding the stream; `NotFound` when there is
    none for the caller's principal."""
    params = to_map(
        RelayPostParams(caller=caller.to_params(), session_id=session_id, message=message)
    )
    decode_result(Ok, await link._client.call("relay.post", params, timeout=15))
