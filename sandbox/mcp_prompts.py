"""MCP prompts and argument completion.

Every active `[TOOL.*]` LLM tool with a `system_prompt` is also a prompt of the same name, so
clients that show prompts (as slash commands) offer it. MCP prompts carry user and assistant
messages only, so the operator's instruction opens the user message, the text follows. Given a
model or a provider, the message asks instead for the SealGate tool itself with them (the
tool applies the same instruction on the gateway).

`completion/complete` suggests the names a caller can use: models of active providers, and
the active LLM providers, for prompt arguments and for the model resource template.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastmcp.prompts import Message, Prompt
from pydantic import Field

from protocol.pyfun import PyfunConfig, ToolConfig
from sandbox.guardian_link import ActiveNames
from sandbox.mcp_describe import ICONS, title_of

#: How many names one completion answers at most (the specification's cap).
MAX_COMPLETIONS = 100


def prompt_names(config: PyfunConfig, active: ActiveNames) -> list[str]:
    """The prompts to offer now: active LLM tools that carry an instruction."""
    return sorted(
        name
        for name in active.tools
        if (tool := config.tools.get(name)) is not None
        and tool.active
        and tool.provider_type == "llm"
        and tool.system_prompt.strip()
    )


def prompt_text(tool: ToolConfig, text: str, model: str | None, provider: str | None) -> str:
    """The user message of prompt `tool.name`."""
    if model or provider:
        given = ", ".join(
            f"{key} `{value}`" for key, value in (("model", model), ("provider", provider)) if value
        )
        return (
            f"Use SealGate's `{tool.name}` tool ({given}) with the text below as its prompt.\n\n"
            f"{text}"
        )
    return f"{tool.system_prompt.strip()}\n\n{text}"


def build_prompt(tool: ToolConfig) -> Prompt:
    """The prompt for one tool, with typed, described arguments."""

    def render(
        text: Annotated[str, Field(description="The text (or code) to work on.")],
        model: Annotated[
            str | None, Field(description="A model to run it with (optional).")
        ] = None,
        provider: Annotated[
            str | None, Field(description="An LLM provider to run it with (optional).")
        ] = None,
    ) -> list[Message]:
        return [Message(prompt_text(tool, text, model or None, provider or None))]

    return Prompt.from_function(
        render,
        name=tool.name,
        title=title_of(tool.name),
        description=tool.description or f"The {tool.name} instruction, applied to a text.",
        icons=[ICONS["llm"]],
    )


def completer(
    config: Callable[[], PyfunConfig], active: Callable[[], ActiveNames]
) -> Callable[[Any, Any, Any], list[str]]:
    """A `completion/complete` handler over the current configuration and active names."""

    def complete(ref: Any, argument: Any, context: Any) -> list[str]:
        del ref, context  # every prompt and template names models and providers alike
        names = candidates(str(argument.name), config(), active())
        typed = str(argument.value or "").lower()
        return [name for name in names if name.lower().startswith(typed)][:MAX_COMPLETIONS]

    return complete


def candidates(argument: str, config: PyfunConfig, active: ActiveNames) -> list[str]:
    """The usable names for an argument: models of active providers, or active providers."""
    if argument in ("model", "id", "model_name"):
        return sorted(m.id for m in config.models.values() if m.provider in active.llm_providers)
    if argument in ("provider", "provider_name"):
        return sorted(active.llm_providers)
    return []
