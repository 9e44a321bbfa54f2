"""OAuth scopes and what each opens, mapped onto SealGate's roles and tools.

A token never widens a role: its principal keeps the user's role, narrowed to the tools its
scopes name. `admin` is only ever granted to a user whose role is admin and who asked for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from protocol.pyfun import PyfunConfig, RoleConfig

#: scope -> what the consent page and the grants page say it opens, in words a person reads
SCOPES: dict[str, str] = {
    "mcp": "Connect to this hub over MCP (/mcp, /sse, /api) and see which tools and models"
    " exist. On its own it sends no prompt and runs no search.",
    "llm": "Send prompts to the language models configured here, also through the"
    " OpenAI-compatible /v1; every call counts against your limits and budget.",
    "search": "Run web searches through this hub's search providers; every search counts"
    " against your limits and budget.",
    "db_query": "Read (never change) the database tables the operator opened to db_query.",
    "admin": "Act as an administrator: metrics and the status page's details. Granted only"
    " to a user whose role is admin.",
}
#: What a client gets when it asks for no scope.
DEFAULT_SCOPES = ("mcp", "llm", "search")
#: Asked for by some clients (OpenID's name for "give me a refresh token"); refresh tokens
#: are always issued, so it is accepted and dropped rather than refused.
IGNORED = frozenset({"offline_access"})

_BUILTIN = ("health_check", "list_active_tools", "get_model_info")


class ScopeError(ValueError):
    """A requested scope does not exist (RFC 6749 `invalid_scope`)."""


def parse(scope: str | None) -> tuple[str, ...]:
    """Requested scopes in a stable order; no scope means the defaults."""
    names = [s for s in (scope or "").split(" ") if s and s not in IGNORED]
    if not names:
        return DEFAULT_SCOPES
    unknown = sorted(set(names) - set(SCOPES))
    if unknown:
        raise ScopeError(f"unknown scope {unknown[0]!r}; scopes: {', '.join(SCOPES)}")
    return tuple(s for s in SCOPES if s in names)


def words(scopes: Iterable[str]) -> list[str]:
    """What each scope opens, in the order given (an unknown name says so)."""
    return [SCOPES.get(s, f"an unknown scope {s!r}") for s in scopes]


def render(scopes: Iterable[str]) -> str:
    return " ".join(scopes)


def covers(granted: Iterable[str], wanted: Iterable[str]) -> bool:
    return set(wanted) <= set(granted)


def tools_for(scopes: Iterable[str], config: PyfunConfig) -> tuple[str, ...]:
    """Every tool name the scopes open (configured tools by the kind of call they make)."""
    wanted = set(scopes)
    tools: list[str] = []
    if "mcp" in wanted:
        tools.extend(_BUILTIN)
    if "llm" in wanted:
        tools.extend(["llm_complete", "embeddings"])
    if "search" in wanted:
        tools.append("web_search")
    if "db_query" in wanted:
        tools.append("db_query")
    kinds = {"llm": "llm", "search": "search", "db_query": "db"}
    for name, tool in config.tools.items():
        if any(kinds[s] == tool.provider_type for s in wanted if s in kinds):
            tools.append(name)
    return tuple(dict.fromkeys(tools))


def narrow(role: RoleConfig, scopes: Iterable[str], config: PyfunConfig) -> RoleConfig:
    """The role, allowed only the tools the scopes open as well."""
    opened = tools_for(scopes, config)
    if "*" in role.tools:
        return replace(role, tools=opened)
    return replace(role, tools=tuple(t for t in opened if t in role.tools))
