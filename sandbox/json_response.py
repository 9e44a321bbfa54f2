"""The sandbox's JSON responses, rendered by msgspec.

Starlette's `JSONResponse` renders with `json.dumps`: about 10 us for a chat answer's body
with its receipt, against about 1 us for msgspec (already the RPC contract's codec), on every
answer. The JSON is the same but for a float with no JSON form (NaN, infinity), which
msgspec writes as `null` where `json.dumps` raised (a 500 for the caller), and exponents
written without a `+` or leading zero (`1e-7`, both valid JSON).
"""

from __future__ import annotations

from typing import Any

import msgspec
from starlette import responses


class JSONResponse(responses.JSONResponse):
    def render(self, content: Any) -> bytes:
        return msgspec.json.encode(content)
