"""Streamable HTTP session ids any replica can check: self-describing, signed by the guardian.

An id names the principal it was opened for and when, and carries an HMAC-SHA256 over both
made with the deployment's key (one row in the shared database, read by every guardian, never
sent to a sandbox). A sandbox that meets an id it did not open asks its guardian whether the
id is the deployment's, unexpired and the caller's principal's, and only then serves it.
The id authorizes nothing: every sealed call still carries the caller's credential, which
the guardian resolves on its own. So a forged, tampered, expired or another principal's id
gets the answer an unknown one gets ("not found") and nothing else.

    sg1.<base64url of {"p": principal key, "t": issued (epoch s), "n": nonce}>.<base64url MAC>
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable

PREFIX = "sg1"
#: How long an id may be used at all (the SDK also closes a session idle for 30 minutes).
MAX_AGE_S = 24 * 3600
#: Clocks of replicas may differ a little; an id from further in the future is refused.
SKEW_S = 60
#: Ids are bounded on the wire (`protocol.contract.RelaySessionId`); so is what we parse.
MAX_LEN = 512


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionIds:
    """Issue and check session ids with one deployment key."""

    def __init__(self, key: bytes, now: Callable[[], float] = time.time) -> None:
        if len(key) < 32:
            raise ValueError("a session id key has at least 32 bytes")
        self._key = key
        self._now = now

    def _mac(self, body: str) -> str:
        digest = hmac.new(self._key, f"{PREFIX}.{body}".encode("ascii"), hashlib.sha256)
        return _b64(digest.digest())

    def issue(self, principal: str) -> str:
        """A new id for `principal` (its stable key: a user id, or the open mode's name)."""
        payload = {"p": principal, "t": int(self._now()), "n": secrets.token_hex(16)}
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        return f"{PREFIX}.{body}.{self._mac(body)}"

    def principal_of(self, session_id: str) -> str | None:
        """The principal a valid, unexpired id of this deployment names; None otherwise
        (malformed, another key's, tampered, expired or from the future alike)."""
        if len(session_id) > MAX_LEN:
            return None
        parts = session_id.split(".")
        if len(parts) != 3 or parts[0] != PREFIX:
            return None
        _, body, mac = parts
        if not hmac.compare_digest(mac.encode("ascii", "replace"), self._mac(body).encode()):
            return None
        try:
            payload = json.loads(_unb64(body))
        except (ValueError, binascii.Error):
            return None
        if not isinstance(payload, dict):
            return None
        principal, issued = payload.get("p"), payload.get("t")
        if not isinstance(principal, str) or not principal or not isinstance(issued, int):
            return None
        now = self._now()
        if issued > now + SKEW_S or now - issued > MAX_AGE_S:
            return None
        return principal

    def check(self, session_id: str, principal: str) -> bool:
        """Whether `session_id` is valid and `principal`'s."""
        owner = self.principal_of(session_id)
        return owner is not None and hmac.compare_digest(owner.encode(), principal.encode())
