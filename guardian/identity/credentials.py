"""A sealed call's credential -> its principal: an OAuth access token, an API token or a
session, or `ANONYMOUS` in open mode. Raises `Unauthenticated`.

The sandbox passes every credential exactly as it received it, with the client's IP and
User-Agent; only this module decides whose it is. Positive answers are cached (see
`guardian.identity.cache`) per credential, IP and User-Agent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from guardian.identity.accounts import Accounts
from guardian.identity.cache import PrincipalCache
from guardian.identity.principal import ANONYMOUS, Principal, credential_hash
from guardian.identity.sessions import Sessions
from guardian.identity.tokens import Tokens
from guardian.oauth.service import OAuthService
from protocol.errors import Unauthenticated


class Credentials:
    def __init__(
        self,
        accounts: Accounts,
        tokens: Tokens,
        sessions: Sessions,
        oauth: OAuthService,
        cache: PrincipalCache,
    ) -> None:
        self.accounts = accounts
        self.tokens = tokens
        self.sessions = sessions
        self.oauth = oauth
        self.cache = cache

    async def resolve(self, caller: Mapping[str, Any], listens_on_loopback: bool) -> Principal:
        """The principal behind a sealed call's caller.

        `listens_on_loopback`: the calling sandbox stated in `hello` that every address it
        listens on is loopback. Open mode needs that and a loopback configured host.
        """
        credential = caller.get("credential")
        if not await self.accounts.refresh():
            # Open mode: nobody to resolve a credential to. SDKs always send some key, so
            # one is ignored rather than refused.
            if not (listens_on_loopback and self.accounts.open_possible()):
                raise Unauthenticated(
                    "no user exists and this gateway is reachable beyond loopback: create one"
                    " with `sealgate-ctl users add NAME`, or set SEALGATE_BOOTSTRAP_TOKEN"
                )
            return ANONYMOUS
        if not credential:
            raise Unauthenticated(
                "a credential is required: send Authorization: Bearer <token>, or log in at"
                " /auth/login"
            )
        key = credential_hash(credential)
        cache_key = f"{key}|{caller.get('ip', '')}|{caller.get('user_agent', '')}"
        cached = self.cache.get(cache_key)
        if cached is not None:
            return cached
        if self.oauth.handles(credential):
            principal = await self.oauth.resolve(credential)
        else:
            principal = await self.tokens.resolve(key) or await self.sessions.resolve(key, caller)
        if principal is None:
            raise Unauthenticated("invalid, expired or revoked credential")
        self.cache.put(cache_key, principal)
        return principal
