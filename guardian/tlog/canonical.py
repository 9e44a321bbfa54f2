"""RFC 8785 (JSON Canonicalization Scheme): the one encoding of a leaf.

Object members sorted by their UTF-16 code units, no whitespace, strings escaped as
ECMAScript's JSON.stringify does, numbers in ECMAScript's shortest form (`1` for 1.0,
`1e+21`, `1e-7`). Two encoders that follow the RFC produce the same bytes, so an auditor
can re-encode a record and compare digests.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any


class NotCanonical(ValueError):
    """A value RFC 8785 cannot encode (NaN, infinity, a lone surrogate, a non-JSON type)."""


def number(value: float) -> str:
    """ECMAScript Number::toString for a finite double."""
    if not math.isfinite(value):
        raise NotCanonical(f"{value!r} has no JSON form")
    if value == 0:
        return "0"
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    shortest = repr(value)
    if "e" not in shortest:  # 1e-4 <= |value| < 1e16: Python's and ECMAScript's forms agree
        return shortest
    sign = "-" if value < 0 else ""
    digits_tuple = Decimal(repr(abs(value))).normalize().as_tuple()
    digits = "".join(str(d) for d in digits_tuple.digits)
    exponent = int(digits_tuple.exponent)
    k = len(digits)
    n = k + exponent  # value = 0.digits * 10**n
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        text = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
        text = f"{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"
    return sign + text


#: what json.dumps(ensure_ascii=False) uses: RFC 8785's escapes for a string of ASCII
escape = json.encoder.encode_basestring


def _string(value: str) -> str:
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise NotCanonical("a string holds a lone surrogate") from None
    return escape(value)


def _key(item: tuple[str, Any]) -> bytes:
    return item[0].encode("utf-16-be", "surrogatepass")


def encode(value: Any) -> str:
    """The canonical text of a JSON value (dict keys must be strings)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        if abs(value) > 2**53:
            raise NotCanonical(f"{value} is beyond the integers a double holds exactly")
        return str(value)
    if isinstance(value, float):
        return number(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(encode(v) for v in value) + "]"
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise NotCanonical(f"an object key must be a string, not {type(key).__name__}")
        # ASCII names sort the same by UTF-16 code units as by code points (Python's own
        # order), so only a name beyond ASCII needs the UTF-16 key
        ascii_names = all(key.isascii() for key in value)
        items = sorted(value.items()) if ascii_names else sorted(value.items(), key=_key)
        members = [_string(k) + ":" + encode(v) for k, v in items]
        return "{" + ",".join(members) + "}"
    raise NotCanonical(f"{type(value).__name__} is not a JSON value")


def encode_bytes(value: Any) -> bytes:
    return encode(value).encode("utf-8")
