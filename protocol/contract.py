"""Every RPC method's parameters, declared once as msgspec Structs.

The guardian decodes a permitted call's params straight into its method's Struct
(`decode_params`): one pass that checks every field's type and bounds, refuses unknown and
missing fields, and hands the handler typed values. A refusal is an `InvalidParams` worded as
it always was (`missing parameter 'x'`, `'x' is longer than N`, ...), never msgspec's own text,
and it never echoes the value. `protocol.methods` names the Struct of each method; the sandbox
builds its calls from the same names.
"""

from __future__ import annotations

import re
import typing
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from msgspec import UNSET, Meta, UnsetType

from protocol.errors import InvalidParams

MAX_PROMPT = 1024 * 1024
#: The most stream chunks a client may let the guardian send ahead of what it has read.
MAX_STREAM_WINDOW = 4096


# Bounded strings, by their maximum length (mypy wants names, not calls, in annotations).
Text16 = Annotated[str, Meta(max_length=16)]
Text32 = Annotated[str, Meta(max_length=32)]
Text64 = Annotated[str, Meta(max_length=64)]
Text128 = Annotated[str, Meta(max_length=128)]
Text256 = Annotated[str, Meta(max_length=256)]
Text512 = Annotated[str, Meta(max_length=512)]
Text1024 = Annotated[str, Meta(max_length=1024)]
Text2000 = Annotated[str, Meta(max_length=2000)]
Text4096 = Annotated[str, Meta(max_length=4096)]
Text65536 = Annotated[str, Meta(max_length=65536)]
Sql = Annotated[str, Meta(max_length=100_000)]
Prompt = Annotated[str, Meta(max_length=MAX_PROMPT)]
ConfigText = Annotated[str, Meta(max_length=4 * 1024 * 1024)]
Name = Annotated[str, Meta(max_length=200)]
User = Annotated[str, Meta(max_length=64)]
Url = Annotated[str, Meta(max_length=2048)]

Temperature = Annotated[int, Meta(ge=0, le=2)] | Annotated[float, Meta(ge=0.0, le=2.0)]
TokenLifetime = (
    Annotated[int, Meta(ge=60, le=10 * 365 * 86400)]
    | Annotated[float, Meta(ge=60, le=10 * 365 * 86400)]
)
Since = Annotated[int, Meta(ge=0)] | Annotated[float, Meta(ge=0)]


class Params(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """The params of one call: exactly these fields, each checked on the way in. An optional
    field is `UNSET` when absent and may be sent as nil."""


class NoParams(Params, frozen=True, kw_only=True):
    """A method that takes nothing."""


# the handshake ---------------------------------------------------------------------------
class HelloParams(Params, frozen=True, kw_only=True):
    protocol_version: Annotated[int, Meta(ge=1, le=1_000_000)]
    client: Literal["sandbox", "ctl", "supervisor"]
    #: The sandbox: every address it really listens on (open mode needs all loopback).
    listen: Annotated[list[str], Meta(max_length=16)] | UnsetType | None = UNSET
    #: Chunks a streamed call may have unacknowledged (`stream.ack`); absent: no window.
    stream_window: Annotated[int, Meta(ge=1, le=MAX_STREAM_WINDOW)] | UnsetType | None = UNSET


# sealed calls ----------------------------------------------------------------------------
class CallerParams(Params, frozen=True, kw_only=True):
    """Who the sandbox is calling for: the credential exactly as received (bearer token or
    session id; nil in open mode), the client's address and User-Agent. The guardian
    resolves the principal itself; the sandbox never asserts an identity."""

    credential: Text512 | UnsetType | None = UNSET
    ip: Text64
    user_agent: Text512


#: A W3C trace context's `traceparent`, version 00, lower-case hex (never all zeros: the
#: guardian refuses those too, `guardian.telemetry`).
TraceParent = Annotated[str, Meta(pattern="^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")]


class TraceContext(Params, frozen=True, kw_only=True):
    """The sandbox's span a sealed call runs under: the guardian's spans become its
    children. Sent only while tracing is on (`hello` says so)."""

    traceparent: TraceParent


class Sealed(Params, frozen=True, kw_only=True):
    """A call made for a caller (the admin socket's operator when it comes from there)."""

    caller: CallerParams
    trace: TraceContext | UnsetType | None = UNSET


MAX_MESSAGES = 1000
Messages = Annotated[list[dict[str, Any]], Meta(max_length=MAX_MESSAGES)]
MaxTokens = Annotated[int, Meta(ge=1, le=1_000_000)]


class AnthropicFields(Params, frozen=True, kw_only=True):
    """What a client of Anthropic's dialect asked for that only Anthropic's API takes: sent
    as they are to an Anthropic provider, dropped (and reported) for any other."""

    thinking: Annotated[dict[str, Any], Meta(max_length=8)] | UnsetType | None = UNSET
    context_management: Annotated[dict[str, Any], Meta(max_length=8)] | UnsetType | None = UNSET
    output_config: Annotated[dict[str, Any], Meta(max_length=8)] | UnsetType | None = UNSET


class ChatFields(Params, frozen=True, kw_only=True):
    """The fields of a chat completion in OpenAI's shape, declared once: `llm.complete`
    takes them, and `/v1/chat/completions` (`protocol.contract_http.ChatRequest`) accepts,
    checks, documents and passes them on by name."""

    model: Name | UnsetType | None = UNSET
    messages: Messages | UnsetType | None = UNSET
    tools: Annotated[list[dict[str, Any]], Meta(max_length=256)] | UnsetType | None = UNSET
    tool_choice: str | dict[str, Any] | UnsetType | None = UNSET
    response_format: dict[str, Any] | UnsetType | None = UNSET
    max_tokens: MaxTokens | UnsetType | None = UNSET
    temperature: Temperature | UnsetType | None = UNSET


class LlmParams(ChatFields, frozen=True, kw_only=True):
    """Either a prompt, or messages in OpenAI's chat shape (with tools for function
    calling). A sealed call like `Sealed`'s (msgspec allows one base with fields)."""

    caller: CallerParams
    trace: TraceContext | UnsetType | None = UNSET
    tool: Text64
    prompt: Prompt | UnsetType | None = UNSET
    system: Prompt | UnsetType | None = UNSET
    provider: Name | UnsetType | None = UNSET
    #: Stop sequences (Anthropic's stop_sequences, OpenAI's stop).
    stop: Annotated[list[Text256], Meta(max_length=16)] | UnsetType | None = UNSET
    #: `anthropic-beta` values a client asked for: the guardian sends only those on the
    #: provider's allowlist (invariant 3) and reports the others as dropped.
    betas: Annotated[list[Text128], Meta(max_length=64)] | UnsetType | None = UNSET
    #: Request fields only Anthropic's API has, sent only to an Anthropic provider.
    anthropic: AnthropicFields | UnsetType | None = UNSET


#: Every sealed call's params: each carries `caller`.
SealedCall = Sealed | LlmParams


class EmbedParams(Sealed, frozen=True, kw_only=True):
    model: Name
    input: Url | Annotated[list[str], Meta(max_length=2048)]


class SearchParams(Sealed, frozen=True, kw_only=True):
    tool: Text64
    query: Text2000
    max_results: Annotated[int, Meta(ge=1, le=50)] | UnsetType | None = UNSET
    provider: Name | UnsetType | None = UNSET


class ModelsInfoParams(Sealed, frozen=True, kw_only=True):
    model: Name | UnsetType | None = UNSET


class DbQueryParams(Sealed, frozen=True, kw_only=True):
    sql: Sql
    max_rows: Annotated[int, Meta(ge=1, le=10_000)] | UnsetType | None = UNSET


class LoginParams(Sealed, frozen=True, kw_only=True):
    username: User
    password: Text1024


# operator commands (the admin socket) ----------------------------------------------------
class UserParams(Params, frozen=True, kw_only=True):
    name: User


class UsersAddParams(UserParams, frozen=True, kw_only=True):
    password: Text1024 | UnsetType | None = UNSET
    role: Text64 | UnsetType | None = UNSET


class UsersPasswdParams(UserParams, frozen=True, kw_only=True):
    password: Text1024


class UsersRoleParams(UserParams, frozen=True, kw_only=True):
    role: Text64


class TokensIssueParams(Params, frozen=True, kw_only=True):
    user: User
    expires_s: TokenLifetime | UnsetType | None = UNSET
    label: Name | UnsetType | None = UNSET


class TokensListParams(Params, frozen=True, kw_only=True):
    user: User | UnsetType | None = UNSET


class TokenParams(Params, frozen=True, kw_only=True):
    token: Name


class AuditTailParams(Params, frozen=True, kw_only=True):
    since: Since | UnsetType | None = UNSET
    after_id: Annotated[int, Meta(ge=0)] | UnsetType | None = UNSET
    user: User | UnsetType | None = UNSET
    tool: Text64 | UnsetType | None = UNSET
    limit: Annotated[int, Meta(ge=1, le=10_000)] | UnsetType | None = UNSET


class UsageReportParams(Params, frozen=True, kw_only=True):
    since: Since
    by: Literal["user", "model", "provider", "day", "tool"]


class SecretParams(Params, frozen=True, kw_only=True):
    name: Text128


class SecretsSetParams(SecretParams, frozen=True, kw_only=True):
    value: Text65536


class SecretsRekeyParams(Params, frozen=True, kw_only=True):
    new_key_file: Text4096


class ConfigCheckParams(Params, frozen=True, kw_only=True):
    text: ConfigText
    source: Text4096


class SessionsRevokeParams(Params, frozen=True, kw_only=True):
    user: User | UnsetType | None = UNSET
    id: User | UnsetType | None = UNSET


# OAuth 2.1 -------------------------------------------------------------------------------
# SealGate as its own authorization server: the sandbox serves the endpoints and pages, the
# guardian decides and stores. Every OAuth field the sandbox forwards is user input, so each
# is bounded here and re-checked by the guardian.
class AuthorizeRequest(Params, frozen=True, kw_only=True):
    """The authorization request as received on `/oauth/authorize` (query or form)."""

    response_type: Text32
    client_id: Url
    redirect_uri: Url
    scope: Text512 | UnsetType | None = UNSET
    state: Text1024 | UnsetType | None = UNSET
    code_challenge: Text256 | UnsetType | None = UNSET
    code_challenge_method: Text16 | UnsetType | None = UNSET
    resource: Url | UnsetType | None = UNSET


class OAuthAuthorizeParams(Sealed, frozen=True, kw_only=True):
    request: AuthorizeRequest


class OAuthLoginParams(OAuthAuthorizeParams, frozen=True, kw_only=True):
    username: User
    password: Text1024


class OAuthConsentParams(Sealed, frozen=True, kw_only=True):
    ticket: Text128
    approve: bool


class TokenForm(Params, frozen=True, kw_only=True):
    """The token endpoint's form, as received (RFC 6749 section 4.1.3 and 6)."""

    grant_type: Text64
    code: Text256 | UnsetType | None = UNSET
    redirect_uri: Url | UnsetType | None = UNSET
    client_id: Url | UnsetType | None = UNSET
    client_secret: Text256 | UnsetType | None = UNSET
    code_verifier: Text256 | UnsetType | None = UNSET
    refresh_token: Text256 | UnsetType | None = UNSET
    scope: Text512 | UnsetType | None = UNSET
    resource: Url | UnsetType | None = UNSET


class OAuthTokenParams(Sealed, frozen=True, kw_only=True):
    form: TokenForm


class OAuthRegisterParams(Sealed, frozen=True, kw_only=True):
    metadata: Annotated[dict[str, Any], Meta(max_length=64)]


class OAuthRevokeParams(Sealed, frozen=True, kw_only=True):
    token: Text512
    token_type_hint: Text32 | UnsetType | None = UNSET
    client_id: Url | UnsetType | None = UNSET


class OAuthClientsParams(Params, frozen=True, kw_only=True):
    revoke: Url | UnsetType | None = UNSET


class OAuthGrantsParams(Params, frozen=True, kw_only=True):
    user: User | UnsetType | None = UNSET
    revoke_client: Url | UnsetType | None = UNSET


P = TypeVar("P", bound=Params)


# decoding --------------------------------------------------------------------------------
def decode_params(kind: type[P], params: dict[str, Any]) -> P:
    """`params` (a decoded map) as `kind`, or `InvalidParams` in the protocol's words."""
    try:
        return msgspec.convert(params, kind)
    except msgspec.ValidationError as exc:
        raise InvalidParams(wording(kind, str(exc))) from None


def to_map(value: Params) -> dict[str, Any]:
    """The fields that were sent, as the map they came in (nested params as maps too),
    without copying lists or texts: for code that takes the params map."""
    out: dict[str, Any] = {}
    for name in value.__struct_fields__:
        field = getattr(value, name)
        if field is UNSET:
            continue
        out[name] = to_map(field) if isinstance(field, Params) else field
    return out


_TYPE_NAMES = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "a boolean",
    "array": "a list",
    "object": "a map",
    "null": "nil",
    "bytes": "bytes",
}
_AT = re.compile(r"^(?P<what>.*?)(?: - at `(?P<key>key` in `)?(?P<path>\$[^`]*)`)?$", re.S)
_MISSING = re.compile(r"^Object missing required field `(?P<name>[^`]*)`$")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<name>[^`]*)`$")
_TYPE = re.compile(r"^Expected `(?P<types>[^`]*)`, got `[^`]*`$")
_LENGTH = re.compile(r"^Expected `[^`]*` of length <= (?P<n>\d+)$")
_BOUND = re.compile(r"^Expected `[^`]*` (?P<op>>=|<=|>|<) (?P<n>[-0-9.e+]+)$")
_ENUM = re.compile(r"^Invalid enum value")


def wording(kind: type[Params], message: str) -> str:
    """msgspec's validation message in the protocol's words: `missing parameter 'x'`,
    `unknown parameter 'x'`, `'x' must be a string`, `'x' is longer than N`, `'x' must be
    at least N`, `'x' must be one of: ...`; a nested field says `in 'outer': ...`."""
    at = _AT.match(message)
    what = at.group("what") if at else message
    parts = _path(at.group("path") if at else None)
    if at is not None and at.group("key"):
        if not parts:
            return "bad key"
        return _nested(parts[:-1], f"'{parts[-1]}' has a key that is not a string")
    if not parts:  # the object itself: a field missing or unknown at the top
        outer: list[str] = []
    else:
        outer, name = parts[:-1], parts[-1]
    if match := _MISSING.match(what):
        return _nested(parts, f"missing parameter '{match['name']}'")
    if match := _UNKNOWN.match(what):
        return _nested(parts, f"unknown parameter '{match['name']}'")
    if not parts:
        return what
    if match := _TYPE.match(what):
        names = [_TYPE_NAMES.get(t, t) for t in match["types"].split(" | ") if t != "null"]
        return _nested(outer, f"'{name}' must be {' or '.join(names)}")
    if match := _LENGTH.match(what):
        return _nested(outer, f"'{name}' is longer than {match['n']}")
    if match := _BOUND.match(what):
        side = "at least" if match["op"] in (">=", ">") else "at most"
        return _nested(outer, f"'{name}' must be {side} {match['n']}")
    if _ENUM.match(what):
        allowed = ", ".join(sorted(_choices(kind, parts)))
        return _nested(outer, f"'{name}' must be one of: {allowed}")
    return _nested(outer, f"'{name}': {what}")


def _path(path: str | None) -> list[str]:
    """`$.caller.ip` -> ['caller', 'ip']; `$.messages[3]` -> ['messages[3]']."""
    if not path or path == "$":
        return []
    return [p for p in path[2:].split(".") if p]


def _nested(outer: list[str], message: str) -> str:
    for name in reversed(outer):
        message = f"in '{name}': {message}"
    return message


def _choices(kind: type[Params], parts: list[str]) -> list[str]:
    """The values a Literal field allows (the path leads through nested params)."""
    annotation: Any = kind
    for part in parts:
        if not (isinstance(annotation, type) and issubclass(annotation, Params)):
            return []
        annotation = typing.get_type_hints(annotation).get(part)
        annotation = next(
            (a for a in typing.get_args(annotation) if isinstance(a, type)), annotation
        )
    return [str(a) for a in typing.get_args(annotation)]


# a person's own OAuth grants (the sandbox's grants page) ---------------------------------
# Only the caller's credential says whose grants these are: the guardian resolves it, and no
# field names a user.
class OAuthOwnGrantsParams(Sealed, frozen=True, kw_only=True):
    """List the caller's own consents (and get a form token to withdraw one)."""


class OAuthOwnGrantRevokeParams(Sealed, frozen=True, kw_only=True):
    """Withdraw the caller's consent to one client: the client, and the form token the
    listing gave this person (single use, like the consent page's ticket)."""

    client_id: Url
    form_token: Text128


# the caller's own usage and budget (the MCP resource sealgate://usage/me) ---------------
# Only the caller's credential says whose usage this is: the guardian resolves it, and no
# field names a user.
class UsageMineParams(Sealed, frozen=True, kw_only=True):
    """The caller's own calls, tokens, cost and budget this month."""


# LLM calls as tasks (issue 28 item 5: the MCP tasks extension) --------------------------
# `tasks.start` takes `LlmParams`; a task is named by the id the guardian drew, and only its
# owner (the principal of the credential) may read or cancel it.
TaskId = Annotated[str, Meta(pattern=r"^[0-9a-f]{32}$")]


class TaskRefParams(Sealed, frozen=True, kw_only=True):
    """One of the caller's own tasks."""

    task_id: TaskId


# token counts (issue 27: /v1/messages/count_tokens) ------------------------------------------
class CountTokensParams(LlmParams, frozen=True, kw_only=True):
    """A completion request to count, not send: the caller's tool, model and messages are
    checked like `llm.complete`'s; what only shapes an answer (max_tokens, ...) is ignored."""


# the verifiable audit log (guardian/tlog) --------------------------------------------------
class AuditVerifyParams(Params, frozen=True, kw_only=True):
    """Check the whole log; `checkpoint`: a signed checkpoint note kept outside the
    database, which the tree must still reproduce."""

    checkpoint: Text65536 | UnsetType | None = UNSET


class AuditProveParams(Params, frozen=True, kw_only=True):
    """`id`: a receipt id (a ledger row's key), `audit:<n>` (an audit entry) or a leaf index."""

    id: Name


class ReceiptGetParams(Sealed, frozen=True, kw_only=True):
    """`GET /v1/receipts/ID`: one of the caller's own receipts, by its id."""

    id: Text128


class AuditConsistencyParams(Params, frozen=True, kw_only=True):
    """`size`: the tree size of an older checkpoint, which the latest must extend."""

    size: Annotated[int, Meta(ge=1)]


# tracing: the sandbox's spans, sent to the guardian (which alone exports) ------------------
SpanId = Annotated[str, Meta(pattern="^[0-9a-f]{16}$")]
TraceId = Annotated[str, Meta(pattern="^[0-9a-f]{32}$")]
Nanoseconds = Annotated[int, Meta(ge=0, le=2**63 - 1)]
#: An attribute's value: a bounded text, a number or a flag (never a list or a map).
SpanValue = Text256 | int | float | bool
MAX_SPAN_ATTRIBUTES = 16
MAX_SPANS_PER_NOTIFICATION = 64


class SpanRecord(Params, frozen=True, kw_only=True):
    """One finished span of the sandbox: ids, name, kind, times, a few attributes."""

    trace_id: TraceId
    span_id: SpanId
    parent_span_id: SpanId | UnsetType | None = UNSET
    #: the parent is the client's (a trusted traceparent), not a span of the sandbox
    parent_remote: bool = False
    name: Text128
    kind: Literal["server", "internal"]
    start_ns: Nanoseconds
    end_ns: Nanoseconds
    attributes: Annotated[dict[Text64, SpanValue], Meta(max_length=MAX_SPAN_ATTRIBUTES)]
    error_type: Text64 | UnsetType | None = UNSET


class TraceSpansParams(Params, frozen=True, kw_only=True):
    """The `trace.spans` notification (sandbox -> guardian): finished spans, a bounded batch;
    the guardian also bounds their rate."""

    spans: Annotated[list[SpanRecord], Meta(max_length=MAX_SPANS_PER_NOTIFICATION)]


# sessions and streams across replicas (issue 29: the relay, guardian/relay.py) ------------
#: A Streamable HTTP session id the guardian signed (`guardian/relay_ids.py`): printable
#: ASCII of the id's own alphabet, bounded; any other value is refused before any work.
RelaySessionId = Annotated[str, Meta(min_length=1, max_length=512, pattern=r"^[A-Za-z0-9._-]+$")]
#: A legacy SSE session's id, as the MCP SDK writes it into the message path (a UUID's hex).
SseSessionId = Annotated[str, Meta(pattern=r"^[0-9a-f]{32}$")]
#: One JSON-RPC message POSTed to a legacy SSE session (the SDK's own body limit, 4 MiB).
MAX_RELAY_MESSAGE = 4 * 1024 * 1024


class RelaySessionParams(Sealed, frozen=True, kw_only=True):
    """A Streamable HTTP session id to check against the caller's principal."""

    session_id: RelaySessionId


class RelayListenParams(Sealed, frozen=True, kw_only=True):
    """A legacy SSE session this sandbox holds the stream of, for the caller's principal."""

    session_id: SseSessionId


class RelayPostParams(Sealed, frozen=True, kw_only=True):
    """A message POSTed on one replica for a legacy SSE stream another replica holds."""

    session_id: SseSessionId
    message: Annotated[str, Meta(max_length=MAX_RELAY_MESSAGE)]
