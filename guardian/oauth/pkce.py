"""PKCE (RFC 7636), S256 only: OAuth 2.1 drops `plain`, and so do we."""

from __future__ import annotations

import hmac
import re

from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oauth2.rfc7636.challenge import CODE_VERIFIER_PATTERN

#: A S256 challenge is the base64url of 32 bytes, without padding.
_CHALLENGE = re.compile(r"[A-Za-z0-9\-_]{43}")


def challenge_ok(challenge: str | None, method: str | None) -> bool:
    """An authorization request's challenge: present, S256, well formed."""
    return method == "S256" and bool(_CHALLENGE.fullmatch(challenge or ""))


def verifier_matches(verifier: str | None, challenge: str) -> bool:
    """The token request's verifier hashes to the stored challenge. Authlib computes the
    hash; the comparison is constant-time here (Authlib's own compare is `==`)."""
    if not verifier or not CODE_VERIFIER_PATTERN.match(verifier):
        return False
    computed = str(create_s256_code_challenge(verifier))
    return hmac.compare_digest(computed.encode(), challenge.encode())
