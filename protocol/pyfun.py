"""The `.pyfun` configuration language: text in, typed configuration out.

    [HUB]
    name = "SealGate"            # a comment
    port = "7860"
    [HUB_END]

    [LLM_PROVIDERS]              # grouping sections are optional
    [LLM_PROVIDER.anthropic]
    base_url = "https://api.anthropic.com/v1"
    env_key  = "ANTHROPIC_API_KEY, ANTHROPIC_API_KEY_2"
    [LLM_PROVIDER.anthropic_END]
    [LLM_PROVIDERS_END]

Parsing is two passes. `_read_sections` checks the layout (sections, END markers, quoting)
and keeps every value with its line number; `_build` turns sections into the dataclasses
below, checking types, URLs and fallback chains. Any error raises `PyfunError` naming
`file:line`; unknown sections and keys only add to `PyfunConfig.warnings`. Nothing here reads
a file or the environment: callers pass the text and, for overrides, a mapping.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from urllib.parse import urlsplit

from protocol.errors import SealGateError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
DEFAULT_TIMEOUT_SEC = 60.0
DEFAULT_MAX_FRAME_SIZE = 8 * 1024 * 1024
DEFAULT_QUERY_MAX_ROWS = 100
HARD_QUERY_MAX_ROWS = 10_000
DEFAULT_QUERY_TIMEOUT_MS = 5000
#: Bytes of rows in one db_query answer, well under the RPC frame.
DEFAULT_QUERY_MAX_RESULT_BYTES = 1024 * 1024
HARD_QUERY_MAX_RESULT_BYTES = 4 * 1024 * 1024
#: Schemas `[DB_QUERY] tables` may never name (the guardian's own, PostgreSQL's catalogs);
#: the same set as `protocol.readonly_sql.NEVER_SCHEMAS`, which a test keeps in step.
RESERVED_QUERY_SCHEMAS = frozenset({"sealgate", "pg_catalog", "information_schema", "pg_toast"})

API_KINDS = frozenset({"anthropic", "gemini", "openai"})
SEARCH_KINDS = frozenset({"brave", "tavily"})
TOOL_KINDS = frozenset({"llm", "search", "db"})

#: Endpoints of providers SealGate knows by name; a block may leave `base_url` out for them.
KNOWN_BASE_URLS = {
    "anthropic": "https://api.anthropic.com/v1",
    "gemini": "https://generativelanguage.googleapis.com/v1beta",
    "openrouter": "https://openrouter.ai/api/v1",
    "huggingface": "https://router.huggingface.co/v1",
    "openai": "https://api.openai.com/v1",
    "mistral": "https://api.mistral.ai/v1",
    "xai": "https://api.x.ai/v1",
    "brave": "https://api.search.brave.com/res/v1/web/search",
    "tavily": "https://api.tavily.com/search",
}

#: Endpoints their providers retired, with the one to use now (a `base_url` there warns and
#: is replaced, so an original hub's file keeps working).
RETIRED_HOSTS = {"api-inference.huggingface.co": "https://router.huggingface.co/v1"}

GROUPS = frozenset({"PROVIDERS", "LLM_PROVIDERS", "SEARCH_PROVIDERS", "MODELS", "TOOLS", "ROLES"})
PLAIN_SECTIONS = frozenset({"HUB", "HUB_LIMITS", "DB_SYNC", "DB_QUERY", "DEBUG"})
#: The original hub's sections SealGate has no use for: skipped whole (blocks and all) up to
#: their END, with one warning per kind.
UNUSED_ORIGINAL_SECTIONS = {
    "WEB_PROVIDERS": "SealGate fetches no web pages for tools",
    "WEB_PROVIDER": "SealGate fetches no web pages for tools",
    "PARSER_PROVIDER": "SealGate parses no documents",
    "PARSER_PROVIDERS": "SealGate parses no documents",
    "FALLBACK": "fallback is set per provider with fallback_to",
}
BLOCK_KINDS = frozenset({"LLM_PROVIDER", "SEARCH_PROVIDER", "MODEL", "TOOL", "ROLE"})

_HEADER = re.compile(r"^\[(?P<name>[^\[\]]+)\]\s*(?:#.*)?$")
_SECTION_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
_BLOCK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]*$")
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LINE = re.compile(r"^(?P<key>[^=\s]+)\s*=\s*(?P<rest>.*)$")
_SQL_NAME = re.compile(r"^[a-z_][a-z0-9_$]*(\.[a-z_][a-z0-9_$]*)?$")
#: The original hub's identifier line, accepted (and meaning nothing) outside any section.
_IDENTIFIER = re.compile(r"^\[\s*PYFUN_FILE\s*=\s*[^\[\]]*\]\s*(?:#.*)?$", re.IGNORECASE)
_VERSION_HEADER = re.compile(r"^[A-Za-z0-9._-]{1,40}$")
LOG_LEVELS = frozenset({"debug", "info", "warning", "error"})


class PyfunError(SealGateError):
    """The configuration cannot be used; the message starts with `file:line:`."""

    def __init__(self, source: str, line: int, problem: str) -> None:
        super().__init__(f"{source}:{line}: {problem}")
        self.source = source
        self.line = line
        self.problem = problem


# -- typed configuration ------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class HubConfig:
    name: str = "SealGate"
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    transport: str = "http"
    auth: str = "auto"  # auto: on when a user exists; required: always on
    log_level: str = "info"
    allowed_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    trusted_proxies: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    master_key_file: str = ""
    max_body_bytes: int = 4 * 1024 * 1024
    body_timeout_s: float = 30.0
    idle_timeout_s: float = 75.0
    max_streams_per_principal: int = 64
    db_connect_wait_s: float = 30.0  # how long the guardian retries an unreachable database
    #: The public address of this hub (the original's HUB_SPACE_URL); OpenRouter's
    #: HTTP-Referer attribution header.
    space_url: str = ""
    #: The hub's public base URL (https://hub.example.org): the OAuth resource and issuer.
    public_url: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class HubLimitsConfig:
    """`[HUB_LIMITS]`: logins and sessions (the guardian enforces them)."""

    max_failed_logins: int = 5
    login_attempts_per_min: int = 20  # per client IP, whatever the user name
    lockout_minutes: float = 15.0
    session_idle_minutes: float = 12 * 60.0
    session_max_hours: float = 7 * 24.0
    #: Provider calls (the original hub's keys). Concurrent requests per provider (None: no
    #: cap); retries of the same provider before the fallback chain moves on, and the pause
    #: between them (a longer Retry-After wins); the time a call may take when neither its
    #: tool nor its provider sets timeout_sec.
    max_parallel_requests: int | None = None
    retry_count: int = 0
    retry_delay_sec: float = 1.0
    request_timeout_sec: float | None = None
    search_timeout_sec: float | None = None
    #: Connections the sandbox's uid may hold open on guardian.sock at once: a sandbox holds
    #: one per worker process, and one more while it reconnects; beyond this a connection
    #: is refused and a security event logged (each costs the guardian memory).
    max_sandbox_connections: int = 16


@dataclass(frozen=True, slots=True, kw_only=True)
class DbSyncConfig:
    """`[DB_SYNC]`: the sandbox's hub state."""

    tool_cache_ttl_sec: float = 3600.0
    #: Most cached tool answers kept (the original's MAX_CACHE_ENTRIES); 0: no cap.
    max_cache_entries: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class DebugConfig:
    """`[DEBUG]`: what provider calls log. Metadata only (tool, provider, model, sizes,
    tokens, status), never prompts, answers or keys."""

    log_requests: bool = False
    log_responses: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class DbQueryConfig:
    """`[DB_QUERY]`: what `db_query` may read."""

    tables: tuple[str, ...] = ()  # schema.table, lower-case (a bare name means public.)
    functions: tuple[str, ...] = ()  # added to the built-in allowlist
    max_rows: int = DEFAULT_QUERY_MAX_ROWS
    statement_timeout_ms: int = DEFAULT_QUERY_TIMEOUT_MS
    max_result_bytes: int = DEFAULT_QUERY_MAX_RESULT_BYTES


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderConfig:
    """An LLM or search provider block. Everything here is guardian policy."""

    name: str
    kind: str  # "llm" or "search"
    api: str  # anthropic | gemini | openai for LLMs; brave | tavily for search
    base_url: str
    env_keys: tuple[str, ...]
    requires_key: bool = True
    active: bool = True
    default_model: str = ""
    models: tuple[str, ...] = ()
    fallback_to: str = ""
    timeout_sec: float = DEFAULT_TIMEOUT_SEC
    allow_insecure: bool = False
    headers: tuple[tuple[str, str], ...] = ()
    #: Anthropic's `anthropic-version` header ("" = the adapter's default).
    api_version_header: str = ""
    #: Search: results when the caller asks for no number, and the most a caller gets.
    default_results: int | None = None
    max_results: int | None = None
    #: Tavily: ask for its generated answer beside the results.
    include_answer: bool = True
    line: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelConfig:
    id: str
    provider: str = ""
    max_output_tokens: int | None = None
    requests_per_min: int | None = None
    requests_per_day: int | None = None
    cost_input_per_1m: float | None = None
    cost_output_per_1m: float | None = None
    context_window: int | None = None
    capabilities: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolConfig:
    name: str
    provider_type: str  # llm | search | db
    description: str = ""
    default_provider: str = ""
    system_prompt: str = ""
    timeout_sec: float = DEFAULT_TIMEOUT_SEC
    max_tokens: int | None = None
    temperature: float | None = None
    active: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class RoleConfig:
    name: str
    tools: tuple[str, ...] = ("*",)
    providers: tuple[str, ...] = ("*",)
    models: tuple[str, ...] = ("*",)
    requests_per_min: int | None = None
    monthly_budget_usd: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PyfunConfig:
    source: str
    sha256: str
    hub: HubConfig = field(default_factory=HubConfig)
    llm_providers: Mapping[str, ProviderConfig] = field(default_factory=dict)
    search_providers: Mapping[str, ProviderConfig] = field(default_factory=dict)
    models: Mapping[str, ModelConfig] = field(default_factory=dict)
    tools: Mapping[str, ToolConfig] = field(default_factory=dict)
    roles: Mapping[str, RoleConfig] = field(default_factory=dict)
    hub_limits: HubLimitsConfig = field(default_factory=HubLimitsConfig)
    db_sync: DbSyncConfig = field(default_factory=DbSyncConfig)
    db_query: DbQueryConfig = field(default_factory=DbQueryConfig)
    debug: DebugConfig = field(default_factory=DebugConfig)
    warnings: tuple[str, ...] = ()
    #: How the original hub's spellings were read (`file:line: KEY -> key ...`), for
    #: `config check`.
    translations: tuple[str, ...] = ()

    def provider(self, name: str) -> ProviderConfig | None:
        return self.llm_providers.get(name) or self.search_providers.get(name)


# -- pass 1: layout -----------------------------------------------------------------------


@dataclass(slots=True)
class _Value:
    text: str
    line: int
    spelled: str = ""  # the key as written, when it differs from the canonical name


@dataclass(slots=True)
class _Section:
    kind: str  # HUB, LLM_PROVIDER, ... or an unknown name
    name: str  # the block's name after the dot; "" for plain sections
    line: int
    values: dict[str, _Value] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return self.kind + (f".{self.name}" if self.name else "")


@dataclass(slots=True)
class _Layout:
    sections: list[_Section] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    translations: list[str] = field(default_factory=list)


def _parse_value(rest: str, lines: list[str], index: int, source: str) -> tuple[str, int]:
    """The string inside the quotes that open `rest` (what follows `=` on line `index`), and
    the index of the line that closes it. A value may span lines: they are joined with
    newlines, each continuation line without its indentation. After the closing quote only
    a comment may follow."""
    number = index + 1
    if not rest.startswith('"'):
        raise PyfunError(source, number, 'values must be quoted: key = "value"')
    chars: list[str] = []
    text, at, position = rest, index, 1
    while True:
        while position < len(text):
            char = text[position]
            if char == "\\" and position + 1 < len(text) and text[position + 1] in '"\\':
                chars.append(text[position + 1])
                position += 2
                continue
            if char == '"':
                tail = text[position + 1 :].strip()
                if tail and not tail.startswith("#"):
                    opened = f" (opened at line {number})" if at > index else ""
                    raise PyfunError(
                        source, at + 1, f"unexpected text after the value{opened}: {tail[:40]!r}"
                    )
                return "".join(chars), at
            chars.append(char)
            position += 1
        at += 1
        if at >= len(lines):
            raise PyfunError(
                source,
                number,
                "unterminated string: a closing quote is missing (the value runs to the end"
                " of the file)",
            )
        chars.append("\n")
        text, position = lines[at].strip(), 0


def _next_is_header(lines: list[str], index: int) -> bool:
    """Whether the first line after `index` that is not blank or a comment is a header."""
    for raw in lines[index + 1 :]:
        line = raw.strip()
        if line and not line.startswith("#"):
            return line.startswith("[")
    return False


def _read_sections(text: str, source: str) -> _Layout:
    layout = _Layout()
    warnings = layout.warnings
    open_groups: list[tuple[str, int]] = []
    current: _Section | None = None
    seen: dict[tuple[str, str], int] = {}
    skipping: tuple[str, int] | None = None  # an unused section of the original: its title
    skipped_kinds: set[str] = set()
    lines = text.splitlines()
    inside_value_to = -1  # the last line of a value spanning lines: read with its key

    for index, raw in enumerate(lines):
        if index <= inside_value_to:
            continue
        number = index + 1
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        header = _HEADER.match(line)
        if skipping is not None:
            if header and header.group("name").strip() == f"{skipping[0]}_END":
                skipping = None
            continue
        if current is None and _IDENTIFIER.match(line):
            layout.translations.append(
                f"{source}:{number}: {line.split('#')[0].strip()}: the original hub's"
                " identifier line (accepted; it sets nothing)"
            )
            continue
        if header:
            title = header.group("name").strip()
            if title.endswith("_END"):
                closing = title[: -len("_END")]
                if current is not None:
                    expected = current.title
                    if closing == expected:
                        current = None
                        continue
                    kind = closing.partition(".")[0]
                    if (
                        current.name
                        and "." in closing
                        and kind == current.kind
                        and _next_is_header(lines, index)
                    ):
                        # The original's parser let this slip through: the END names
                        # another block of the same kind, and a new header follows.
                        warnings.append(
                            f"{source}:{number}: [{title}] closes [{expected}] (opened at line"
                            f" {current.line}); it names another block: write [{expected}_END]"
                        )
                        current = None
                        continue
                    raise PyfunError(
                        source,
                        number,
                        f"[{title}] found while [{expected}] is open"
                        f" (opened at line {current.line}); close it with [{expected}_END]",
                    )
                if open_groups and open_groups[-1][0] == closing:
                    open_groups.pop()
                elif open_groups:
                    name, opened = open_groups[-1]
                    raise PyfunError(
                        source,
                        number,
                        f"[{title}] found while [{name}] is open"
                        f" (opened at line {opened}); close it with [{name}_END]",
                    )
                elif closing.upper() == "PYFUN_FILE":
                    layout.translations.append(
                        f"{source}:{number}: [{title}]: the end of the original hub's file"
                        " (accepted; it sets nothing)"
                    )
                else:
                    raise PyfunError(source, number, f"[{title}] closes a section that is not open")
                continue
            if current is not None:
                raise PyfunError(
                    source,
                    number,
                    f"[{title}] starts inside [{current.title}] (opened at line"
                    f" {current.line}); close it first with [{current.title}_END]",
                )
            kind, _, name = title.partition(".")
            if kind in UNUSED_ORIGINAL_SECTIONS:
                if kind not in skipped_kinds:
                    skipped_kinds.add(kind)
                    warnings.append(
                        f"{source}:{number}: [{kind}] of the original hub is ignored with all it"
                        f" holds: {UNUSED_ORIGINAL_SECTIONS[kind]}"
                    )
                skipping = (title, number)
                continue
            if not _SECTION_NAME.match(kind):
                raise PyfunError(source, number, f"bad section name [{title}]: use UPPER_CASE")
            if kind in GROUPS and not name:
                open_groups.append((kind, number))
                continue
            if kind in BLOCK_KINDS:
                if not name or not _BLOCK_NAME.match(name):
                    raise PyfunError(
                        source,
                        number,
                        f"[{title}] needs a name: [{kind}.name], where a name"
                        " holds letters, digits and . _ - / :",
                    )
            elif name:
                raise PyfunError(
                    source,
                    number,
                    f"[{title}]: only {', '.join(sorted(BLOCK_KINDS))} blocks take a name",
                )
            elif kind not in PLAIN_SECTIONS:
                warnings.append(f"{source}:{number}: unknown section [{title}] (ignored)")
            if (kind, name) in seen:
                raise PyfunError(
                    source,
                    number,
                    f"duplicate section [{title}] (first at line {seen[kind, name]})",
                )
            seen[kind, name] = number
            current = _Section(kind=kind, name=name, line=number)
            layout.sections.append(current)
            continue
        if line.startswith("["):
            raise PyfunError(source, number, f"malformed section header: {line[:60]!r}")
        match = _LINE.match(line)
        if not match:
            raise PyfunError(source, number, 'expected key = "value", a [SECTION] or a # comment')
        key = match.group("key")
        if not _KEY.match(key):
            raise PyfunError(source, number, f"bad key {key!r}: use letters, digits and _")
        value, inside_value_to = _parse_value(match.group("rest").strip(), lines, index, source)
        if inside_value_to > index:
            warnings.append(
                f"{source}:{number}: {key} spans lines {number}-{inside_value_to + 1}; all are"
                " read, joined with newlines (the original hub read only the first line,"
                " with its opening quote)"
            )
        if current is None:
            where = f"[{open_groups[-1][0]}]" if open_groups else "the top level"
            warnings.append(f"{source}:{number}: key {key!r} at {where} ignored (not in a section)")
            continue
        # Keys match in any case (the original hub wrote many in upper case).
        canonical = _hub_key(key) if current.kind == "HUB" else key.lower()
        if canonical in current.values:
            raise PyfunError(
                source,
                number,
                f"duplicate key {canonical!r} (first at line {current.values[canonical].line})",
            )
        current.values[canonical] = _Value(value, number, key if key != canonical else "")

    if skipping is not None:
        raise PyfunError(
            source, skipping[1], f"[{skipping[0]}] is never closed with [{skipping[0]}_END]"
        )
    if current is not None:
        raise PyfunError(
            source, current.line, f"[{current.title}] is never closed with [{current.title}_END]"
        )
    if open_groups:
        name, opened = open_groups[-1]
        raise PyfunError(source, opened, f"[{name}] is never closed with [{name}_END]")
    return layout


def _hub_key(key: str) -> str:
    """[HUB] accepts the original layout's HUB_NAME, HUB_PORT ... for name, port ..."""
    if key.isupper() and key.startswith("HUB_"):
        return key[len("HUB_") :].lower()
    return key.lower()


# -- pass 2: types ------------------------------------------------------------------------


class _Reader:
    """Typed access to one section's values; records which keys were used."""

    def __init__(self, section: _Section, source: str) -> None:
        self.section = section
        self.source = source
        self.used: set[str] = set()
        self.warnings: list[str] = []
        self.translations: list[str] = []

    def _get(self, key: str) -> _Value | None:
        """The value of `key`; None when absent or written `""` (the original's "unset")."""
        self.used.add(key)
        value = self.section.values.get(key)
        if value is None or not value.text.strip():
            return None
        if value.spelled:
            self.translate(key, f"read as {key}")
        return value

    def where(self, key: str) -> str:
        value = self.section.values.get(key)
        return f"{self.source}:{value.line if value else self.section.line}"

    def spelled(self, key: str) -> str:
        value = self.section.values.get(key)
        return value.spelled if value and value.spelled else key

    def has(self, key: str) -> bool:
        value = self.section.values.get(key)
        return value is not None and bool(value.text.strip())

    def translate(self, key: str, what: str) -> None:
        """Record how an original hub's key was read, for `config check`."""
        note = f"{self.where(key)}: [{self.section.title}] {self.spelled(key)}: {what}"
        if note not in self.translations:
            self.translations.append(note)

    def warn(self, key: str, why: str) -> None:
        self.warnings.append(
            f"{self.where(key)}: [{self.section.title}] {self.spelled(key)} ignored: {why}"
        )

    def ignore(self, key: str, why: str) -> None:
        """A key of the original hub that SealGate does without: one warning saying why."""
        self.used.add(key)
        if self.has(key):
            self.warn(key, why)

    def decimal(self, key: str) -> Decimal | None:
        """A non-negative decimal kept exact (costs are converted between units with it)."""
        value = self._get(key)
        if value is None:
            return None
        try:
            number = Decimal(value.text.strip())
        except InvalidOperation:
            raise PyfunError(
                self.source, value.line, f"{self.spelled(key)} must be a number"
            ) from None
        if not number.is_finite() or number < 0 or number > Decimal("1e12"):
            raise PyfunError(
                self.source, value.line, f"{self.spelled(key)} must be between 0 and 1e12"
            )
        return number

    def error(self, key: str, problem: str) -> PyfunError:
        value = self.section.values.get(key)
        return PyfunError(self.source, value.line if value else self.section.line, problem)

    def string(self, key: str, default: str = "") -> str:
        """A one-line value (a name, a URL): one spanning lines is refused here; free text
        (`raw`) and comma lists (`names`) may span lines."""
        value = self._get(key)
        if value is None:
            return default
        text = value.text.strip()
        if "\n" in text:
            raise PyfunError(self.source, value.line, f"{self.spelled(key)} must be one line")
        return text

    def raw(self, key: str, default: str = "") -> str:
        value = self._get(key)
        return value.text if value else default

    def names(self, key: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        value = self._get(key)
        if value is None:
            return default
        return tuple(item.strip() for item in value.text.split(",") if item.strip())

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key)
        if value is None:
            return default
        text = value.text.strip().lower()
        if text in ("true", "yes", "1", "on"):
            return True
        if text in ("false", "no", "0", "off"):
            return False
        raise PyfunError(self.source, value.line, f'{self.spelled(key)} must be "true" or "false"')

    def integer(
        self, key: str, default: int | None, *, low: int = 0, high: int = 2**53
    ) -> int | None:
        value = self._get(key)
        if value is None:
            return default
        try:
            number = int(value.text.strip().replace("_", ""))
        except ValueError:
            raise PyfunError(
                self.source, value.line, f"{self.spelled(key)} must be a whole number"
            ) from None
        if not low <= number <= high:
            raise PyfunError(
                self.source, value.line, f"{self.spelled(key)} must be between {low} and {high}"
            )
        return number

    def number(
        self, key: str, default: float | None, *, low: float = 0.0, high: float = 1e12
    ) -> float | None:
        value = self._get(key)
        if value is None:
            return default
        try:
            number = float(value.text.strip())
        except ValueError:
            raise PyfunError(
                self.source, value.line, f"{self.spelled(key)} must be a number"
            ) from None
        if not low <= number <= high or number != number:
            raise PyfunError(
                self.source, value.line, f"{self.spelled(key)} must be between {low:g} and {high:g}"
            )
        return number

    def choice(self, key: str, choices: frozenset[str], default: str) -> str:
        value = self._get(key)
        if value is None:
            return default
        text = value.text.strip().lower()
        if text not in choices:
            allowed = ", ".join(sorted(choices))
            raise PyfunError(
                self.source, value.line, f"{self.spelled(key)} must be one of: {allowed}"
            )
        return text

    def unused_warnings(self) -> list[str]:
        return [
            *self.warnings,
            *(
                f"{self.source}:{value.line}: unknown key {value.spelled or key!r} in"
                f" [{self.section.kind}] (ignored)"
                for key, value in self.section.values.items()
                if key not in self.used
            ),
        ]


def is_loopback_host(host: str) -> bool:
    """`localhost` or a loopback address (what \"local only\" means everywhere)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_url(reader: _Reader, url: str, allow_insecure: bool) -> None:
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise reader.error("base_url", f"base_url {url!r} is not a valid URL") from None
    if parts.scheme not in ("https", "http") or not host:
        raise reader.error("base_url", f"base_url {url!r} must be an http(s) URL with a host")
    if parts.username or parts.password:
        raise reader.error("base_url", "base_url must not carry credentials; use env_key")
    if parts.query or parts.fragment:
        raise reader.error("base_url", "base_url must not carry a query or fragment")
    if parts.scheme == "http" and not (allow_insecure and is_loopback_host(host)):
        raise reader.error(
            "base_url",
            f"base_url {url!r} must use https (plain http only for a loopback host with"
            ' allow_insecure = "true")',
        )


def _headers(reader: _Reader) -> tuple[tuple[str, str], ...]:
    headers: list[tuple[str, str]] = []
    for key in reader.section.values:
        if key.startswith("header_"):
            name = reader.string(key)
            # header_http_referer = "..." -> HTTP-Referer
            header = "-".join(part.capitalize() for part in key[len("header_") :].split("_"))
            if header.lower() in (
                "authorization",
                "x-api-key",
                "x-goog-api-key",
                "x-subscription-token",
            ):
                raise reader.error(key, f"{header} is set by the guardian from env_key")
            if "\n" in name or "\r" in name:
                raise reader.error(key, "header values must be one line")
            headers.append((header, name))
    return tuple(headers)


def _base_url(reader: _Reader, name: str) -> str:
    base_url = reader.string("base_url", KNOWN_BASE_URLS.get(name, "")).rstrip("/")
    host = (urlsplit(base_url).hostname or "") if base_url else ""
    current = RETIRED_HOSTS.get(host.lower())
    if current:
        reader.warnings.append(
            f"{reader.where('base_url')}: base_url {base_url!r} is a retired endpoint; using"
            f" {current} (write that to silence this warning)"
        )
        return current
    return base_url


def _provider(reader: _Reader, kind: str, limits: HubLimitsConfig) -> ProviderConfig:
    name = reader.section.name
    if kind == "llm":
        inferred = {"anthropic": "anthropic", "gemini": "gemini", "google": "gemini"}.get(
            name, "openai"
        )
        api = reader.choice("api", API_KINDS, inferred)
    else:
        api = reader.choice("api", SEARCH_KINDS, name if name in SEARCH_KINDS else "")
        if not api:
            raise reader.error("api", f'search provider {name!r} needs api = "brave" or "tavily"')
    base_url = _base_url(reader, name)
    if not base_url:
        raise reader.error("base_url", f"provider {name!r} needs a base_url")
    allow_insecure = reader.boolean("allow_insecure", False)
    _check_url(reader, base_url, allow_insecure)
    requires_key = reader.boolean("requires_key", True)
    env_keys = reader.names("env_key")
    for env_key in env_keys:
        if not _KEY.match(env_key):
            raise reader.error("env_key", f"env_key {env_key!r} is not a variable name")
    if requires_key and not env_keys:
        raise reader.error(
            "env_key", f'provider {name!r} needs env_key (or requires_key = "false")'
        )
    default_timeout = (
        limits.request_timeout_sec if kind == "llm" else limits.search_timeout_sec
    ) or DEFAULT_TIMEOUT_SEC
    return ProviderConfig(
        name=name,
        kind=kind,
        api=api,
        base_url=base_url,
        env_keys=env_keys,
        requires_key=requires_key,
        active=reader.boolean("active", True),
        default_model=reader.string("default_model"),
        models=reader.names("models"),
        fallback_to=reader.string("fallback_to"),
        timeout_sec=_number(reader, "timeout_sec", default_timeout, 0.1, 3600),
        allow_insecure=allow_insecure,
        headers=_headers(reader),
        api_version_header=_api_version_header(reader, api),
        default_results=_search_only(reader, api, "default_results"),
        max_results=_search_only(reader, api, "max_results"),
        include_answer=_include_answer(reader, api),
        line=reader.section.line,
    )


def _api_version_header(reader: _Reader, api: str) -> str:
    version = reader.string("api_version_header")
    if not version:
        return ""
    if api != "anthropic":
        reader.warn("api_version_header", "only Anthropic's API takes a version header")
        return ""
    if not _VERSION_HEADER.match(version):
        raise reader.error("api_version_header", f"api_version_header {version!r} is not a version")
    reader.translate("api_version_header", f"sent as anthropic-version: {version}")
    return version


def _search_only(reader: _Reader, api: str, key: str) -> int | None:
    if api in SEARCH_KINDS:
        return reader.integer(key, None, low=1, high=100)
    reader.ignore(key, "it applies to search providers only")
    return None


def _include_answer(reader: _Reader, api: str) -> bool:
    if api == "tavily":
        return reader.boolean("include_answer", True)
    reader.ignore("include_answer", "only Tavily generates an answer")
    return True


def _per_1m(reader: _Reader, side: str) -> float | None:
    """A cost per million tokens, from `cost_<side>_per_1m` or the original's `_per_1k`."""
    per_1k = reader.decimal(f"cost_{side}_per_1k")
    if per_1k is None:
        return reader.number(f"cost_{side}_per_1m", None)
    per_1m = per_1k * 1000  # exact in decimal; rounded to a float once
    reader.translate(f"cost_{side}_per_1k", f"cost_{side}_per_1m = {per_1m.normalize():f}")
    return float(per_1m)


def _model(reader: _Reader) -> ModelConfig | None:
    per_1k = [k for k in ("cost_input_per_1k", "cost_output_per_1k") if reader.has(k)]
    per_1m = [k for k in ("cost_input_per_1m", "cost_output_per_1m") if reader.has(k)]
    if per_1k and per_1m:
        first, second = sorted((per_1k[0], per_1m[0]), key=lambda k: reader.section.values[k].line)
        raise reader.error(
            second,
            f"{second} contradicts {first} ({reader.where(first)}): give costs per 1k or per 1m"
            " tokens, not both",
        )
    if reader.has("context_tokens") and reader.has("context_window"):
        raise reader.error(
            "context_window",
            f"context_window and context_tokens ({reader.where('context_tokens')}) say the same"
            " thing: keep one",
        )
    context = reader.integer("context_window", None, low=1, high=100_000_000)
    if context is None:
        context = reader.integer("context_tokens", None, low=1, high=100_000_000)
        if context is not None:
            reader.translate("context_tokens", "read as context_window")
    config = ModelConfig(
        id=reader.section.name,
        provider=reader.string("provider"),
        max_output_tokens=reader.integer("max_output_tokens", None, low=1, high=10_000_000),
        requests_per_min=reader.integer("requests_per_min", None, low=1, high=10_000_000),
        requests_per_day=reader.integer("requests_per_day", None, low=1, high=10_000_000_000),
        cost_input_per_1m=_per_1m(reader, "input"),
        cost_output_per_1m=_per_1m(reader, "output"),
        context_window=context,
        capabilities=reader.names("capabilities"),
    )
    return config if reader.boolean("active", True) else None


def _tool(reader: _Reader, limits: HubLimitsConfig) -> ToolConfig:
    provider_type = reader.choice("provider_type", TOOL_KINDS, "llm")
    if reader.has("readonly"):
        readonly = reader.boolean("readonly", True)
        if provider_type != "db":
            reader.warn("readonly", "only database tools read")
        elif readonly:
            reader.translate("readonly", "db_query is read-only by construction anyway")
        else:
            reader.warn("readonly", "db_query is read-only by construction; it never writes")
    default_timeout = {
        "llm": limits.request_timeout_sec,
        "search": limits.search_timeout_sec,
    }.get(provider_type) or DEFAULT_TIMEOUT_SEC
    return ToolConfig(
        name=reader.section.name,
        provider_type=provider_type,
        description=reader.raw("description").strip(),
        default_provider=reader.string("default_provider"),
        system_prompt=reader.raw("system_prompt"),
        timeout_sec=_number(reader, "timeout_sec", default_timeout, 0.1, 3600),
        max_tokens=reader.integer("max_tokens", None, low=1, high=10_000_000),
        temperature=reader.number("temperature", None, low=0.0, high=2.0),
        active=reader.boolean("active", True),
    )


def _role(reader: _Reader) -> RoleConfig:
    return RoleConfig(
        name=reader.section.name,
        tools=reader.names("tools", ("*",)),
        providers=reader.names("providers", ("*",)),
        models=reader.names("models", ("*",)),
        requests_per_min=reader.integer("requests_per_min", None, low=1, high=10_000_000),
        monthly_budget_usd=reader.number("monthly_budget_usd", None),
    )


#: The original hub's [HUB] keys SealGate does without, and why.
_HUB_IGNORED = {
    "version": "SealGate reports its own version",
    "description": "the status page and health_check describe SealGate itself",
    "mode": "SealGate has one mode; what runs depends on the keys the guardian finds",
    "stateless": "/mcp serves clients with and without sessions",
}


def _transport(reader: _Reader) -> str:
    transport = reader.string("transport", "http").lower()
    if transport == "stdio":
        reader.warn(
            "transport",
            "SealGate serves HTTP only; for a client that starts local commands run"
            " `sealgate-ctl mcp-stdio --url URL` (the stdio bridge)",
        )
        return "http"
    if transport in ("sse", "streamable-http"):
        reader.translate("transport", "/sse and /mcp (Streamable HTTP) are both served anyway")
    return reader.choice("transport", frozenset({"http", "sse", "streamable-http"}), "http")


def _space_url(reader: _Reader) -> str:
    url = reader.string("space_url")
    if not url:
        return ""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname or any(c in url for c in "\r\n"):
        reader.warn("space_url", f"{url!r} is not an http(s) URL")
        return ""
    reader.translate("space_url", "sent to OpenRouter as its HTTP-Referer attribution header")
    return url


def _hub(reader: _Reader, log_level: str) -> HubConfig:
    for key, why in _HUB_IGNORED.items():
        reader.ignore(key, why)
    return HubConfig(
        name=reader.string("name", "SealGate"),
        host=reader.string("host", DEFAULT_HOST),
        port=reader.integer("port", DEFAULT_PORT, low=0, high=65535) or 0,
        transport=_transport(reader),
        auth=reader.choice("auth", frozenset({"auto", "required"}), "auto"),
        log_level=reader.choice("log_level", LOG_LEVELS, log_level),
        allowed_origins=reader.names("allowed_origins"),
        allowed_hosts=reader.names("allowed_hosts"),
        trusted_proxies=_cidrs(reader, "trusted_proxies"),
        cors_origins=reader.names("cors_origins"),
        max_frame_size=reader.integer(
            "max_frame_size", DEFAULT_MAX_FRAME_SIZE, low=4096, high=256 * 1024 * 1024
        )
        or DEFAULT_MAX_FRAME_SIZE,
        master_key_file=reader.string("master_key_file"),
        max_body_bytes=reader.integer(
            "max_body_bytes", 4 * 1024 * 1024, low=1024, high=1024 * 1024 * 1024
        )
        or 4 * 1024 * 1024,
        body_timeout_s=reader.number("body_timeout_s", 30.0, low=1, high=3600) or 30.0,
        idle_timeout_s=reader.number("idle_timeout_s", 75.0, low=1, high=3600) or 75.0,
        max_streams_per_principal=reader.integer(
            "max_streams_per_principal", 64, low=1, high=100_000
        )
        or 64,
        db_connect_wait_s=_number(reader, "db_connect_wait_s", 30.0, 0, 3600),
        space_url=_space_url(reader),
        public_url=_public_url(reader),
    )


def _public_url(reader: _Reader) -> str:
    """An absolute http(s) URL without query or fragment; stored without a trailing slash."""
    value = reader.string("public_url").strip()
    if not value:
        return ""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise reader.error(
            "public_url", "public_url must be an http(s) URL such as https://hub.example.org"
        )
    return value.rstrip("/")


def _hub_limits(reader: _Reader) -> HubLimitsConfig:
    default = HubLimitsConfig()
    return HubLimitsConfig(
        max_failed_logins=reader.integer(
            "max_failed_logins", default.max_failed_logins, low=1, high=1000
        )
        or default.max_failed_logins,
        login_attempts_per_min=reader.integer(
            "login_attempts_per_min", default.login_attempts_per_min, low=1, high=1_000_000
        )
        or default.login_attempts_per_min,
        lockout_minutes=_number(reader, "lockout_minutes", default.lockout_minutes, 0, 525_600),
        session_idle_minutes=_number(
            reader, "session_idle_minutes", default.session_idle_minutes, 1, 525_600
        ),
        session_max_hours=_number(reader, "session_max_hours", default.session_max_hours, 1, 8760),
        max_parallel_requests=reader.integer("max_parallel_requests", None, low=1, high=100_000),
        retry_count=reader.integer("retry_count", 0, low=0, high=10) or 0,
        retry_delay_sec=_number(reader, "retry_delay_sec", default.retry_delay_sec, 0, 600),
        request_timeout_sec=reader.number("request_timeout_sec", None, low=0.1, high=3600),
        search_timeout_sec=reader.number("search_timeout_sec", None, low=0.1, high=3600),
        max_sandbox_connections=reader.integer(
            "max_sandbox_connections", default.max_sandbox_connections, low=1, high=10_000
        )
        or default.max_sandbox_connections,
    )


def _db_sync(reader: _Reader) -> DbSyncConfig:
    default = DbSyncConfig()
    reader.ignore(
        "sqlite_path", "the sandbox keeps its hub state under HUB_RUNTIME_DIR (var/sandbox/)"
    )
    reader.ignore("sync_interval_sec", "hub state is written as it changes; nothing syncs")
    return DbSyncConfig(
        tool_cache_ttl_sec=_number(
            reader, "tool_cache_ttl_sec", default.tool_cache_ttl_sec, 0, 366 * 86_400
        ),
        max_cache_entries=reader.integer("max_cache_entries", 0, low=0, high=100_000_000) or 0,
    )


def _log_level(reader: _Reader) -> str:
    """[DEBUG] DEBUG / DEBUG_LEVEL as a log level; "" leaves the default."""
    debug = reader.boolean("debug", False)
    level = reader.string("debug_level").lower()
    level = {"warn": "warning", "critical": "error"}.get(level, level)
    if level and level not in LOG_LEVELS:
        reader.warn("debug_level", f"{level!r} is not one of {', '.join(sorted(LOG_LEVELS))}")
        level = ""
    chosen = level or ("debug" if debug else "")
    if chosen:
        reader.translate(
            "debug_level" if level else "debug",
            f'log_level = "{chosen}" (unless [HUB] log_level or HUB_LOG_LEVEL says otherwise)',
        )
    return chosen


def _debug(reader: _Reader) -> DebugConfig:
    reader.ignore("log_file", "logs go to stderr (journald, docker logs, the Space's log view)")
    config = DebugConfig(
        log_requests=reader.boolean("log_requests", False),
        log_responses=reader.boolean("log_responses", False),
    )
    for key, what in (
        ("log_requests", config.log_requests),
        ("log_responses", config.log_responses),
    ):
        if what:
            reader.warnings.append(
                f"{reader.where(key)}: [DEBUG] {reader.spelled(key)} logs metadata only (tool,"
                " provider, model, status, sizes, tokens, time), never prompts, answers or keys"
            )
    return config


def _db_query(reader: _Reader) -> DbQueryConfig:
    tables = tuple(name.lower() for name in reader.names("tables"))
    for table in tables:
        if not _SQL_NAME.match(table):
            raise reader.error("tables", f"tables: {table!r} is not a table or schema.table name")
        if "." in table and table.split(".", 1)[0] in RESERVED_QUERY_SCHEMAS:
            raise reader.error(
                "tables", f"tables: {table!r} is in a schema that can never be allowlisted"
            )
    functions = tuple(name.lower() for name in reader.names("functions"))
    for function in functions:
        if not _SQL_NAME.match(function):
            raise reader.error("functions", f"functions: {function!r} is not a function name")
    return DbQueryConfig(
        tables=tables,
        functions=functions,
        max_rows=reader.integer("max_rows", DEFAULT_QUERY_MAX_ROWS, low=1, high=HARD_QUERY_MAX_ROWS)
        or DEFAULT_QUERY_MAX_ROWS,
        statement_timeout_ms=reader.integer(
            "statement_timeout_ms", DEFAULT_QUERY_TIMEOUT_MS, low=1, high=3_600_000
        )
        or DEFAULT_QUERY_TIMEOUT_MS,
        max_result_bytes=reader.integer(
            "max_result_bytes",
            DEFAULT_QUERY_MAX_RESULT_BYTES,
            low=1024,
            high=HARD_QUERY_MAX_RESULT_BYTES,
        )
        or DEFAULT_QUERY_MAX_RESULT_BYTES,
    )


def _number(reader: _Reader, key: str, default: float, low: float, high: float) -> float:
    value = reader.number(key, default, low=low, high=high)
    return default if value is None else value


def _cidrs(reader: _Reader, key: str) -> tuple[str, ...]:
    networks = reader.names(key)
    for network in networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise reader.error(key, f"{key}: {network!r} is not an address or CIDR") from None
    return networks


def _check_fallbacks(providers: Mapping[str, ProviderConfig], source: str) -> None:
    for provider in providers.values():
        if provider.fallback_to and provider.fallback_to not in providers:
            raise PyfunError(
                source,
                provider.line,
                f"{provider.name}: fallback_to names {provider.fallback_to!r}, which is not a"
                f" {provider.kind} provider here",
            )
    for start in providers.values():
        chain = [start.name]
        current = start
        while current.fallback_to:
            current = providers[current.fallback_to]
            if current.name in chain:
                loop = " -> ".join([*chain, current.name])
                raise PyfunError(source, start.line, f"fallback chain loops: {loop}")
            chain.append(current.name)


def _attribution(
    providers: dict[str, ProviderConfig], hub: HubConfig, name_set: bool
) -> dict[str, ProviderConfig]:
    """OpenRouter's attribution headers from [HUB] (as the original hub sent them), unless
    a provider block sets its own."""
    wanted = []
    if hub.space_url:
        wanted.append(("HTTP-Referer", hub.space_url))
    if name_set and "\n" not in hub.name and "\r" not in hub.name:
        wanted.append(("X-Title", hub.name))
    for name, provider in providers.items():
        host = (urlsplit(provider.base_url).hostname or "").lower()
        if name != "openrouter" and host != "openrouter.ai":
            continue
        present = {header.lower() for header, _ in provider.headers}
        extra = tuple(pair for pair in wanted if pair[0].lower() not in present)
        if extra:
            providers[name] = replace(provider, headers=provider.headers + extra)
    return providers


def parse(text: str, source: str = ".pyfun") -> PyfunConfig:
    """Parse `.pyfun` text; raises `PyfunError` with `source:line` on the first problem."""
    layout = _read_sections(text, source)
    warnings, translations = layout.warnings, layout.translations
    hub = HubConfig()
    hub_name_set = False
    llm: dict[str, ProviderConfig] = {}
    search: dict[str, ProviderConfig] = {}
    models: dict[str, ModelConfig] = {}
    tools: dict[str, ToolConfig] = {}
    roles: dict[str, RoleConfig] = {}
    hub_limits = HubLimitsConfig()
    db_sync = DbSyncConfig()
    db_query = DbQueryConfig()
    debug = DebugConfig()
    log_level = ""

    # [HUB_LIMITS] and [DEBUG] give defaults to the blocks, wherever they stand in the file.
    first = ("HUB_LIMITS", "DEBUG")
    ordered = [s for s in layout.sections if s.kind in first] + [
        s for s in layout.sections if s.kind not in first
    ]
    for section in ordered:
        reader = _Reader(section, source)
        if section.kind == "HUB":
            hub = _hub(reader, log_level or "info")
            hub_name_set = reader.has("name")
        elif section.kind == "LLM_PROVIDER":
            llm[section.name] = _provider(reader, "llm", hub_limits)
        elif section.kind == "SEARCH_PROVIDER":
            search[section.name] = _provider(reader, "search", hub_limits)
        elif section.kind == "MODEL":
            model = _model(reader)
            if model is not None:
                models[section.name] = model
        elif section.kind == "TOOL":
            tools[section.name] = _tool(reader, hub_limits)
        elif section.kind == "ROLE":
            roles[section.name] = _role(reader)
        elif section.kind == "HUB_LIMITS":
            hub_limits = _hub_limits(reader)
        elif section.kind == "DB_SYNC":
            db_sync = _db_sync(reader)
        elif section.kind == "DB_QUERY":
            db_query = _db_query(reader)
        elif section.kind == "DEBUG":
            log_level = _log_level(reader)
            debug = _debug(reader)
        else:
            continue
        warnings.extend(reader.unused_warnings())
        translations.extend(reader.translations)
    if log_level and hub.log_level == "info" and not any(s.kind == "HUB" for s in ordered):
        hub = replace(hub, log_level=log_level)

    overlap = set(llm) & set(search)
    if overlap:
        name = sorted(overlap)[0]
        raise PyfunError(source, search[name].line, f"provider name {name!r} is used twice")
    _check_fallbacks(llm, source)
    _check_fallbacks(search, source)
    llm = _attribution(llm, hub, hub_name_set)

    return PyfunConfig(
        source=source,
        sha256=hashlib.sha256(text.encode()).hexdigest(),
        hub=hub,
        llm_providers=llm,
        search_providers=search,
        models=models,
        tools=tools,
        roles=roles,
        hub_limits=hub_limits,
        db_sync=db_sync,
        db_query=db_query,
        debug=debug,
        warnings=_by_line(warnings, source),
        translations=_by_line(translations, source),
    )


def _by_line(notes: list[str], source: str) -> tuple[str, ...]:
    """`file:line: ...` notes in the order of their lines (stable for equal lines)."""

    def line(note: str) -> int:
        number = note[len(source) + 1 :].split(":", 1)[0] if note.startswith(f"{source}:") else ""
        return int(number) if number.isdigit() else 0

    return tuple(sorted(notes, key=line))


def with_env_overrides(config: PyfunConfig, environ: Mapping[str, str]) -> PyfunConfig:
    """Apply `HUB_HOST` and `HUB_PORT` from `environ`, which win over `[HUB]`."""
    hub = config.hub
    host = environ.get("HUB_HOST", "").strip()
    port_text = environ.get("HUB_PORT", "").strip()
    if host:
        hub = replace(hub, host=host)
    if port_text:
        if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
            raise PyfunError("HUB_PORT", 0, f"HUB_PORT={port_text!r} is not a port number")
        hub = replace(hub, port=int(port_text))
    return replace(config, hub=hub)
