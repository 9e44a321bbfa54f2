"""A person's own OAuth consents: what the grants page lists and withdraws.

Whose consents they are comes only from the caller's credential, which the guardian resolves
(the sandbox names no user). A browser session or an API token of a user may list and
withdraw that user's consents; an OAuth access token may not (a client must neither see the
person's other clients nor take their consents back), and open mode has no user to speak of.

Withdrawing is a form post from a page that carries the session cookie, so besides the
Origin rule it needs a form token, handed out with the listing and stored like the consent
page's ticket: hashed, bound to the user, spent once, `FORM_TTL_S` long. Its hash is taken
in a domain of its own, so a form token is never a consent ticket and back.
"""

from __future__ import annotations

import secrets
from typing import Any

from guardian.identity.principal import Principal
from guardian.identity.principal import credential_hash as _hash
from guardian.oauth import scopes
from guardian.oauth.service import OAuthService
from protocol.errors import Forbidden, InvalidParams, NotFound

FORM_TTL_S = 1800
#: What a form token's stored request says, and the prefix of its hash.
PURPOSE = "own-grants"
_DOMAIN = PURPOSE + ":"


def form_hash(token: str) -> str:
    return _hash(_DOMAIN + token)


def refusal(principal: Principal) -> str | None:
    """Why this principal may not manage consents, or None when it may."""
    if principal.kind != "user" or not principal.user_id:
        return (
            "nobody is signed in (open mode, or the operator): there are no consents of"
            " yours to show; sign in as a user"
        )
    if principal.scopes is not None:
        return (
            "an OAuth client's token cannot list or withdraw consents; sign in on the"
            " status page with your user name and password"
        )
    return None


async def _checked(service: OAuthService, principal: Principal, action: str, ip: str) -> None:
    why = refusal(principal)
    if why is not None:
        await service.storage.add_audit(
            principal.name, action, "forbidden", ip, why, user_id=principal.user_id
        )
        raise Forbidden(why)


async def list_own(service: OAuthService, principal: Principal, ip: str) -> dict[str, Any]:
    """The caller's consents, each with its client, scopes in words, when granted and when
    a token was last issued under it; and a form token when there is one to withdraw."""
    await _checked(service, principal, "oauth.own_grants", ip)
    rows = await service.store.list_user_grants(principal.user_id)
    grants = []
    for row in rows:
        granted = str(row["scope"]).split()
        grants.append(
            {
                "client_id": str(row["client_id"]),
                "client_name": str(row["client_name"] or row["client_id"]),
                "client_kind": str(row["client_kind"] or "registered"),
                "scopes": granted,
                "scope_words": scopes.words(granted),
                "granted_at": float(row["created_at"]),
                "updated_at": float(row["updated_at"]),
                "last_token_at": (
                    float(row["last_token_at"]) if row["last_token_at"] is not None else None
                ),
                "live_tokens": int(row["live_tokens"]),
            }
        )
    form_token = ""
    if grants:
        form_token = secrets.token_urlsafe(32)
        owner = {"id": principal.user_id, "name": principal.name}
        await service.store.put_ticket(
            form_hash(form_token), owner, {"purpose": PURPOSE}, FORM_TTL_S
        )
    return {"user": principal.name, "grants": grants, "form_token": form_token}


async def revoke_own(
    service: OAuthService, principal: Principal, client_id: str, form_token: str, ip: str
) -> dict[str, Any]:
    """Withdraw the caller's consent to `client_id` with every token issued under it. The
    form token must be one this user's listing gave out, unspent."""
    await _checked(service, principal, "oauth.own_grant_revoke", ip)
    taken = await service.store.take_ticket(form_hash(form_token)) if form_token else None
    if taken is None or taken[0] != principal.user_id or taken[1].get("purpose") != PURPOSE:
        await service.storage.add_audit(
            principal.name,
            "oauth.own_grant_revoke",
            "refused",
            ip,
            f"{client_id}: no valid form token",
            user_id=principal.user_id,
        )
        raise InvalidParams(
            "this form expired or was used already: open your grants page again and retry"
        )
    client = await service.store.get_client(client_id)
    revoked = await service.store.revoke_grant(principal.user_id, client_id)
    if not revoked:
        raise NotFound("you gave no consent to this client (or it was withdrawn already)")
    service.cache.forget()
    await service.storage.add_audit(
        principal.name,
        "oauth.own_grant_revoke",
        "ok",
        ip,
        client_id,
        user_id=principal.user_id,
    )
    name = str(client["name"]) if client is not None else client_id
    return {"revoked": revoked, "client_name": name[:256]}
