"""The HTTP request bodies the sandbox accepts, as msgspec Structs: one declaration that
checks a body (`decode_body`), documents it (`/openapi.json` is generated from these with
`msgspec.json.schema_components`) and, for a chat completion, names what is passed on to
`llm.complete` (the fields `ChatRequest` shares with `protocol.contract.ChatFields`).

A field added to `ChatFields` is accepted on `/v1/chat/completions`, documented, and passed
to the guardian; one added to `ChatRequest` alone is accepted and documented (like `user`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

import msgspec
from msgspec import UNSET, Meta, UnsetType

from protocol.contract import MAX_MESSAGES, ChatFields, MaxTokens, Name, Params, wording
from protocol.errors import InvalidParams

#: One chat message as the document shows it; the guardian checks messages itself (roles,
#: content parts, image URLs), so the body's own check does not narrow them further.
CHAT_MESSAGE: dict[str, Any] = {
    "type": "object",
    "required": ["role"],
    "properties": {
        "role": {"type": "string", "enum": ["system", "user", "assistant", "tool", "developer"]},
        "content": {"type": ["string", "array", "null"], "maxLength": 100_000},
        "name": {"type": "string"},
        "tool_call_id": {"type": "string"},
        "tool_calls": {"type": "array"},
    },
}


ChatMessage = Annotated[dict[str, Any], Meta(extra_json_schema=CHAT_MESSAGE)]


class StreamOptions(msgspec.Struct, frozen=True, kw_only=True):
    """Open like OpenAI's (a newer SDK may send more options; they are ignored)."""

    include_usage: bool | UnsetType | None = UNSET


class ChatRequest(ChatFields, frozen=True, kw_only=True):
    """`POST /v1/chat/completions`: OpenAI's chat request, the fields SealGate honours."""

    model: Annotated[Name, Meta(min_length=1)]
    messages: Annotated[list[ChatMessage], Meta(min_length=1, max_length=MAX_MESSAGES)]
    stream: bool | UnsetType | None = UNSET
    stream_options: StreamOptions | UnsetType | None = UNSET
    #: OpenAI's newer name for `max_tokens`; it wins when both are sent.
    max_completion_tokens: MaxTokens | UnsetType | None = UNSET
    #: Accepted and ignored: the gateway knows its caller from the credential.
    user: str | UnsetType | None = UNSET
    n: Literal[1] | UnsetType | None = UNSET

    def llm_fields(self) -> dict[str, Any]:
        """The fields `llm.complete` takes, as sent (absent and nil ones left out)."""
        fields = {
            name: value
            for name in ChatFields.__struct_fields__
            if (value := getattr(self, name)) is not UNSET and value is not None
        }
        if isinstance(self.max_completion_tokens, int):
            fields["max_tokens"] = self.max_completion_tokens
        return fields


class ToolCall(Params, frozen=True, kw_only=True):
    """`POST /api`: call one active tool by name (the MCP tools, as JSON)."""

    tool: str
    params: dict[str, Any] | UnsetType | None = UNSET


#: The request bodies `/openapi.json` documents from their Structs.
BODIES: tuple[type[Params], ...] = (ChatRequest, ToolCall)

B = TypeVar("B", bound=Params)


def decode_body(kind: type[B], body: Any) -> B:
    """A parsed JSON body as `kind`, or `InvalidParams` in the protocol's words."""
    try:
        return msgspec.convert(body, kind)
    except msgspec.ValidationError as exc:
        raise InvalidParams(wording(kind, str(exc))) from None


def schemas(ref_template: str) -> dict[str, Any]:
    """The component schemas of every documented body (and the Structs they nest)."""
    _, components = msgspec.json.schema_components(BODIES, ref_template=ref_template)
    return components
