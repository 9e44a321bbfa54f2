"""Text that came from outside, made safe to show to a person: on a terminal, a status page
or in a log line.

A user name, an OAuth `client_name` or a provider's error text can carry ESC, CR, LF and OSC
sequences: on the operator's terminal they forge or erase lines, move the cursor, or write
the clipboard (OSC 52); in a log they forge records. `printable` shows every control and
format character (C0, DEL, C1, the Unicode line and paragraph separators, bidi overrides,
zero-width characters) as a visible escape such as `\\x1b` or `\\u202e`, and leaves every
other character as it is. Machine output (`--json`) keeps the exact text.
"""

from __future__ import annotations

import unicodedata

#: Unicode categories never shown as themselves: controls, format characters (bidi
#: overrides, zero-width joiners), line and paragraph separators, unassigned and surrogates.
_HIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp", "Cn", "Cs", "Co"})


def _escape(char: str) -> str:
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(text: str, *, keep_newlines: bool = False) -> str:
    """`text` with every control or invisible character shown as an escape; with
    `keep_newlines`, LF stays a line break (for text the project assembled itself from
    pieces that were escaped already)."""
    if text.isprintable():
        return text  # the common case, at C speed
    out = []
    for char in text:
        if keep_newlines and char == "\n":
            out.append(char)
        elif char == " " or unicodedata.category(char) not in _HIDDEN:
            out.append(char)
        else:
            out.append(_escape(char))
    return "".join(out)
