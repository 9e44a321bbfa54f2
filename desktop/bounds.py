"""What a stopped answer can have cost at most, counted as the hub counts its bills.

The desktop client ships without the server, so it cannot import the hub's arithmetic
(`guardian.calls.costs`); this is the same rule, kept in step by
`tests/desktop/test_units.py`: one token per byte of the request as compact UTF-8 JSON plus
the hub's framing allowance, and one token per byte of the text that arrived.
"""

from __future__ import annotations

import json
from typing import Any

#: The hub's per-request framing allowance (role markers, BOS, ...), in tokens.
FRAMING_TOKENS = 16


def input_token_bound(payload: Any) -> int:
    """At most this many input tokens, whatever the tokenizer."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str)
    return len(text.encode("utf-8")) + FRAMING_TOKENS


def text_token_bound(text: str) -> int:
    """At most this many tokens made `text`."""
    return len(text.encode("utf-8"))
