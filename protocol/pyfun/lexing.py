"""Pass 1 of `.pyfun`: the layout. Sections, END markers, quoting and values spanning
lines are checked here and every value is kept with its line number; nothing is typed
yet (`protocol.pyfun.reader` and `sections` do that)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from protocol.pyfun.typed import (
    BLOCK_KINDS,
    GROUPS,
    PLAIN_SECTIONS,
    UNUSED_ORIGINAL_SECTIONS,
    PyfunError,
)

_HEADER = re.compile(r"^\[(?P<name>[^\[\]]+)\]\s*(?:#.*)?$")
_SECTION_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
_BLOCK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]*$")
KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LINE = re.compile(r"^(?P<key>[^=\s]+)\s*=\s*(?P<rest>.*)$")
#: The original hub's identifier line, accepted (and meaning nothing) outside any section.
_IDENTIFIER = re.compile(r"^\[\s*PYFUN_FILE\s*=\s*[^\[\]]*\]\s*(?:#.*)?$", re.IGNORECASE)


@dataclass(slots=True)
class Value:
    text: str
    line: int
    spelled: str = ""  # the key as written, when it differs from the canonical name


@dataclass(slots=True)
class Section:
    kind: str  # HUB, LLM_PROVIDER, ... or an unknown name
    name: str  # the block's name after the dot; "" for plain sections
    line: int
    values: dict[str, Value] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return self.kind + (f".{self.name}" if self.name else "")


@dataclass(slots=True)
class Layout:
    sections: list[Section] = field(default_factory=list)
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


def read_sections(text: str, source: str) -> Layout:
    layout = Layout()
    warnings = layout.warnings
    open_groups: list[tuple[str, int]] = []
    current: Section | None = None
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
            current = Section(kind=kind, name=name, line=number)
            layout.sections.append(current)
            continue
        if line.startswith("["):
            raise PyfunError(source, number, f"malformed section header: {line[:60]!r}")
        match = _LINE.match(line)
        if not match:
            raise PyfunError(source, number, 'expected key = "value", a [SECTION] or a # comment')
        key = match.group("key")
        if not KEY.match(key):
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
        canonical = hub_key(key) if current.kind == "HUB" else key.lower()
        if canonical in current.values:
            raise PyfunError(
                source,
                number,
                f"duplicate key {canonical!r} (first at line {current.values[canonical].line})",
            )
        current.values[canonical] = Value(value, number, key if key != canonical else "")

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


def hub_key(key: str) -> str:
    """[HUB] accepts the original layout's HUB_NAME, HUB_PORT ... for name, port ..."""
    if key.isupper() and key.startswith("HUB_"):
        return key[len("HUB_") :].lower()
    return key.lower()
