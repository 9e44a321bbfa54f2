"""The authorization server's decisions: every check of a request, every code and token.

Clients are public (PKCE, no secret): a registered one (RFC 7591) gets an `sgc_` id; one
whose `client_id` is an https URL is described by the document at that URL (Client ID
Metadata Documents), fetched by `cimd.fetch`. Codes live `CODE_TTL_S`, access tokens
`ACCESS_TTL_S`, refresh tokens `REFRESH_TTL_S` and are rotated on every use; a code or
refresh token presented twice revokes every token of its authorization (its family).

Errors the client must see in OAuth's shape are `InvalidParams` with `data["oauth_error"]`;
one that must go back to the client's redirect URI also carries `data["redirect_to"]`
(never for a bad client or redirect URI, which would make us an open redirector).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import urlencode, urlsplit

from authlib.oauth2.rfc7591 import ClientMetadataClaims
from joserfc.errors import JoseError

from guardian.identity.accounts import Accounts, locked
from guardian.identity.cache import PrincipalCache
from guardian.identity.principal import Principal
from guardian.identity.principal import credential_hash as _hash
from guardian.limits import Limits
from guardian.liveconfig import LiveConfig
from guardian.oauth import cimd, pkce, redirects, registration, scopes
from guardian.oauth.resource import resource_id, same_resource
from guardian.oauth.store import OAuthStore
from guardian.storage import Storage
from guardian.storage.base import Row
from protocol.errors import InvalidParams, NotFound

logger = logging.getLogger("sealgate.guardian.oauth")
security_log = logging.getLogger("sealgate.security")

ACCESS_PREFIX = "sga_"
REFRESH_PREFIX = "sgr_"
CODE_PREFIX = "sgo_"
CLIENT_PREFIX = "sgc_"
ACCESS_TTL_S = 15 * 60
REFRESH_TTL_S = 30 * 86400
CODE_TTL_S = 120
TICKET_TTL_S = 600
#: A metadata-document client is fetched again when its record is older than this.
CIMD_REFRESH_S = 300
REGISTRATIONS_PER_MIN = 20
#: Metadata-document fetches a client address may cause (each is an outbound request).
FETCHES_PER_MIN = 30


def oauth_error(code: str, message: str, redirect_to: str | None = None) -> InvalidParams:
    data: dict[str, Any] = {"oauth_error": code}
    if redirect_to is not None:
        data["redirect_to"] = redirect_to
    return InvalidParams(message, data)


def with_query(uri: str, params: Mapping[str, str | None]) -> str:
    """`uri` with `params` appended to its query (RFC 6749 section 4.1.2)."""
    extra = urlencode({k: v for k, v in params.items() if v is not None})
    return f"{uri}{'&' if urlsplit(uri).query else '?'}{extra}"


@dataclass(frozen=True, slots=True)
class Pending:
    """A checked authorization request."""

    client_id: str
    client_name: str
    redirect_uri: str
    state: str | None
    challenge: str
    scopes: tuple[str, ...]
    resource: str
    #: "registered" (RFC 7591: the client named itself) or "cimd" (its metadata document
    #: did): either way nobody vouched for the name.
    client_kind: str = "registered"

    def view(self) -> dict[str, Any]:
        return {
            "client_name": self.client_name,
            "client_id": self.client_id,
            "client_kind": self.client_kind,
            "redirect_host": redirects.host_of(self.redirect_uri),
            "scopes": list(self.scopes),
            "scope_words": scopes.words(self.scopes),
            "resource": self.resource,
        }


class OAuthService:
    """Built from storage, limits and live config like every identity service; it checks
    passwords with `Accounts` (one lockout and one rate limit for both sign-in pages)."""

    def __init__(
        self,
        live: LiveConfig,
        storage: Storage,
        environ: Mapping[str, str],
        limits: Limits,
        accounts: Accounts,
        cache: PrincipalCache,
    ) -> None:
        self.live = live
        self.storage = storage
        self.store = OAuthStore(storage)
        self.environ = environ
        self.limits = limits
        self.accounts = accounts
        self.cache = cache

    # what the metadata documents say ---------------------------------------------------------
    @property
    def resource(self) -> str:
        return resource_id(self.live.snapshot.config, self.environ)

    def server_info(self) -> dict[str, Any]:
        return {
            "resource": self.resource,
            "issuer": self.resource,
            "scopes_supported": list(scopes.SCOPES),
            "cimd_loopback_allowed": cimd.loopback_allowed(self.environ),
        }

    # clients ---------------------------------------------------------------------------------
    def _is_document_id(self, client_id: str) -> bool:
        return client_id.startswith("https://") or (
            client_id.startswith("http://") and cimd.loopback_allowed(self.environ)
        )

    async def client(self, client_id: str, refetch: bool, ip: str = "") -> Row:
        """The client record; a metadata-document client is fetched when unknown or stale
        (`refetch`, on the authorization endpoint, for a caller at `ip`). Raises
        `invalid_client`."""
        row = await self.store.get_client(client_id)
        stale = row is None or (
            row["kind"] == "cimd" and time.time() - (row["fetched_at"] or 0) > CIMD_REFRESH_S
        )
        if self._is_document_id(client_id) and refetch and stale:
            if row is not None and row["revoked_at"] is not None:
                raise oauth_error("invalid_client", "this client was revoked by an operator")
            await self.limits.hit(
                f"oauth-fetch:{ip}", FETCHES_PER_MIN, f"client metadata fetches from {ip}"
            )
            await self._fetch_document(client_id)
            row = await self.store.get_client(client_id)
        if row is None:
            raise oauth_error("invalid_client", "unknown client_id")
        if row["revoked_at"] is not None:
            raise oauth_error("invalid_client", "this client was revoked by an operator")
        return row

    async def _fetch_document(self, client_id: str) -> None:
        try:
            document = await cimd.fetch(client_id, self.environ)
        except cimd.MetadataFetchError as exc:
            await self._audit("-", "oauth.client_metadata", "refused", "", f"{client_id}: {exc}")
            raise oauth_error(
                "invalid_client", f"client metadata document refused: {exc}"
            ) from None
        if document.get("client_id") != client_id:
            raise oauth_error(
                "invalid_client", "the client metadata document names another client_id"
            )
        if document.get("client_secret") is not None or document.get(
            "token_endpoint_auth_method", "none"
        ) not in ("none", None):
            raise oauth_error(
                "invalid_client",
                "a metadata-document client is public: token_endpoint_auth_method none",
            )
        uris = self._check_metadata(document)
        name = str(document.get("client_name") or urlsplit(client_id).netloc)[:100]
        await self.store.put_client(client_id, "cimd", name, uris, _kept(document))

    @staticmethod
    def _check_metadata(metadata: Mapping[str, Any]) -> list[str]:
        """RFC 7591 metadata: the shape and types first (Authlib's claims assume them), then
        Authlib's claims, then our redirect rules."""
        problem = registration.shape_problem(metadata)
        if problem is not None:
            raise oauth_error("invalid_client_metadata", f"client metadata: {problem}")
        for key, value in metadata.items():
            expected = _METADATA_TYPES.get(key)
            if expected is None:
                continue
            typed = isinstance(value, expected)
            if not typed or (expected is list and not all(isinstance(v, str) for v in value)):
                raise oauth_error(
                    "invalid_client_metadata", f"client metadata: {key!r} has the wrong type"
                )
        options = ClientMetadataClaims.get_claims_options(
            {
                "scopes_supported": list(scopes.SCOPES),
                "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
            }
        )
        claims = {k: v for k, v in metadata.items() if k != "token_endpoint_auth_method"}
        try:
            ClientMetadataClaims(claims, {}, options).validate()
        except (JoseError, TypeError, ValueError, AttributeError, KeyError) as exc:
            raise oauth_error("invalid_client_metadata", f"client metadata: {exc}") from None
        uris = metadata.get("redirect_uris")
        if not isinstance(uris, list) or not uris or len(uris) > 20:
            raise oauth_error("invalid_redirect_uri", "redirect_uris must list 1-20 URIs")
        for uri in uris:
            why = redirects.acceptable(uri) if isinstance(uri, str) else "is not a string"
            if why is not None or len(uri) > 2048:
                raise oauth_error("invalid_redirect_uri", f"redirect URI {str(uri)[:200]!r} {why}")
        return [str(u) for u in uris]

    async def register(self, ip: str, metadata: dict[str, Any]) -> dict[str, Any]:
        """RFC 7591: a public client; the server sets token_endpoint_auth_method to none."""
        await self.limits.hit(
            f"oauth-register:{ip}", REGISTRATIONS_PER_MIN, f"client registrations from {ip}"
        )
        uris = self._check_metadata(metadata)
        await self.store.expire_unused(time.time() - registration.unused_ttl_s(self.environ))
        cap = registration.max_clients(self.environ)
        if await self.store.count_registered() >= cap:
            security_log.warning(
                "OAuth client registration refused from %s: %d registered clients is the cap (%s)",
                ip,
                cap,
                registration.MAX_CLIENTS_SETTING,
            )
            await self._audit("-", "oauth.register", "refused", ip, f"cap of {cap} clients")
            raise oauth_error(
                "temporarily_unavailable",
                f"this server holds its maximum of {cap} registered clients; unused ones"
                " expire, or an operator may revoke some (sealgate-ctl oauth clients)",
            )
        client_id = CLIENT_PREFIX + secrets.token_urlsafe(16)
        name = str(metadata.get("client_name") or "unnamed client")[:100]
        kept = _kept(metadata)
        await self.store.put_client(client_id, "registered", name, uris, kept)
        await self._audit("-", "oauth.register", "ok", ip, f"{client_id} ({name})")
        return {
            **kept,
            "client_id": client_id,
            "client_id_issued_at": int(time.time()),
            "client_name": name,
            "redirect_uris": uris,
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        }

    # the authorization endpoint --------------------------------------------------------------
    async def check(self, request: Mapping[str, Any], ip: str) -> Pending:
        """Everything about an authorization request that does not need the person."""
        client = await self.client(request["client_id"], refetch=True, ip=ip)
        redirect_uri = request["redirect_uri"]
        if not redirects.matches(client["redirect_uris"], redirect_uri):
            raise oauth_error("invalid_request", "redirect_uri is not registered for this client")
        state = request.get("state")

        def back(code: str, message: str) -> InvalidParams:
            return self._redirect_error(redirect_uri, state, code, message)

        if request["response_type"] != "code":
            raise back("unsupported_response_type", "only response_type=code is supported")
        if not pkce.challenge_ok(
            request.get("code_challenge"), request.get("code_challenge_method")
        ):
            raise back("invalid_request", "PKCE is required: code_challenge with method S256")
        try:
            wanted = scopes.parse(request.get("scope"))
        except scopes.ScopeError as exc:
            raise back("invalid_scope", str(exc)) from None
        if not same_resource(request.get("resource"), self.resource):
            raise back("invalid_target", f"this server issues tokens for {self.resource} only")
        return Pending(
            client_id=client["client_id"],
            client_name=client["name"],
            redirect_uri=redirect_uri,
            state=state,
            challenge=str(request.get("code_challenge")),
            scopes=wanted,
            resource=self.resource,
            client_kind=str(client["kind"]),
        )

    def _redirect_error(
        self, redirect_uri: str, state: str | None, code: str, message: str
    ) -> InvalidParams:
        """An error sent back to a redirect URI already checked against the client's."""
        params = {"error": code, "error_description": message, "state": state}
        return oauth_error(
            code, message, with_query(redirect_uri, {**params, "iss": self.resource})
        )

    def _back(self, pending: Pending, code: str, message: str) -> InvalidParams:
        return self._redirect_error(pending.redirect_uri, pending.state, code, message)

    async def login(
        self, request: Mapping[str, Any], username: str, password: str, ip: str
    ) -> dict[str, Any]:
        pending = await self.check(request, ip)
        user = await self.accounts.authenticate(username, password, ip)
        if "admin" in pending.scopes and user["role"] != "admin":
            await self._audit(
                user["name"], "oauth.consent", "refused", ip, f"admin scope for {pending.client_id}"
            )
            raise self._back(pending, "invalid_scope", "the admin scope is only for administrators")
        granted = await self.store.get_grant(user["id"], pending.client_id)
        if granted is not None and scopes.covers(granted["scope"].split(), pending.scopes):
            await self._audit(
                user["name"], "oauth.consent", "remembered", ip, _grant_detail(pending)
            )
            return {"redirect_to": await self._issue_code(pending, user)}
        ticket = secrets.token_urlsafe(32)
        await self.store.put_ticket(_hash(ticket), user, dict(request), TICKET_TTL_S)
        return {"ticket": ticket, **pending.view()}

    async def consent(self, ticket: str, approve: bool, ip: str) -> dict[str, Any]:
        """The second step after a sign-in, on any replica: the stored request is checked
        again in full (a client revoked or a document changed meanwhile is refused)."""
        taken = await self.store.take_ticket(_hash(ticket))
        if taken is None:
            raise oauth_error("invalid_request", "this sign-in expired or was used; start again")
        user_id, request = taken
        if "purpose" in request:  # another page's form token (guardian/oauth/own.py)
            raise oauth_error("invalid_request", "this sign-in expired or was used; start again")
        pending = await self.check(request, ip)
        row = await self.storage.get_user_by_id(user_id)
        if row is None or locked(row):
            raise oauth_error("access_denied", "the account is locked or gone")
        user = str(row["name"])
        if "admin" in pending.scopes and row["role"] != "admin":
            raise self._back(pending, "invalid_scope", "the admin scope is only for administrators")
        if not approve:
            await self._audit(user, "oauth.consent", "denied", ip, _grant_detail(pending))
            raise self._back(pending, "access_denied", "the person declined")
        old = await self.store.get_grant(user_id, pending.client_id)
        union = set(pending.scopes) | set(old["scope"].split() if old else ())
        await self.store.put_grant(
            user_id, user, pending.client_id, scopes.render(s for s in scopes.SCOPES if s in union)
        )
        await self._audit(user, "oauth.consent", "ok", ip, _grant_detail(pending), user_id)
        return {"redirect_to": await self._issue_code(pending, row)}

    async def _issue_code(self, pending: Pending, user: Row) -> str:
        code = CODE_PREFIX + secrets.token_urlsafe(32)
        family = secrets.token_hex(12)
        await self.store.put_code(
            _hash(code),
            {
                "family": family,
                "client_id": pending.client_id,
                "user_name": user["name"],
                "user_id": user["id"],
                "redirect_uri": pending.redirect_uri,
                "scope": scopes.render(pending.scopes),
                "resource": pending.resource,
                "challenge": pending.challenge,
            },
            CODE_TTL_S,
        )
        return with_query(
            pending.redirect_uri, {"code": code, "state": pending.state, "iss": self.resource}
        )

    # the token endpoint ----------------------------------------------------------------------
    async def token(self, form: Mapping[str, Any], ip: str) -> dict[str, Any]:
        grant_type = form["grant_type"]
        if grant_type not in ("authorization_code", "refresh_token"):
            raise oauth_error(
                "unsupported_grant_type", "grant_type must be authorization_code or refresh_token"
            )
        client_id = form.get("client_id")
        if not client_id:
            raise oauth_error("invalid_client", "client_id is required (public clients)")
        client = await self.client(client_id, refetch=False)
        if grant_type == "authorization_code":
            return await self._exchange_code(form, client, ip)
        return await self._refresh(form, client, ip)

    async def _exchange_code(self, form: Mapping[str, Any], client: Row, ip: str) -> dict[str, Any]:
        code = form.get("code") or ""
        row, spent = await self.store.spend_code(_hash(code))
        if row is None:
            raise oauth_error("invalid_grant", "unknown authorization code")
        if not spent:
            revoked = await self.store.revoke_family(row["family"])
            self.cache.forget()
            await self._audit(
                row["user_name"],
                "oauth.code",
                "refused",
                ip,
                f"code reused by {client['client_id']}; {revoked} token(s) of its family revoked",
            )
            raise oauth_error("invalid_grant", "this authorization code was used already")
        if row["client_id"] != client["client_id"]:
            raise oauth_error("invalid_grant", "this code was issued to another client")
        if row["expires_at"] <= time.time():
            raise oauth_error("invalid_grant", "this authorization code expired")
        if form.get("redirect_uri") != row["redirect_uri"]:
            raise oauth_error(
                "invalid_grant", "redirect_uri differs from the authorization request"
            )
        if not pkce.verifier_matches(form.get("code_verifier"), row["challenge"]):
            await self._audit(
                row["user_name"], "oauth.code", "refused", ip, "PKCE verifier mismatch"
            )
            raise oauth_error("invalid_grant", "code_verifier does not match the code_challenge")
        if not same_resource(form.get("resource"), row["resource"]):
            raise oauth_error("invalid_target", f"this code is for {row['resource']} only")
        return await self._issue_tokens(row, row["scope"].split(), ip, "oauth.token")

    async def _refresh(self, form: Mapping[str, Any], client: Row, ip: str) -> dict[str, Any]:
        """Every check first, then the rotation: a refused refresh (a wider scope, another
        resource, an expired token) leaves the refresh token as it was; only one that
        succeeds spends it, atomically, so of two racing refreshes one is a replay."""
        presented = _hash(form.get("refresh_token") or "")
        row = await self.store.get_token(presented)
        if row is None or row["kind"] != "refresh":
            raise oauth_error("invalid_grant", "unknown refresh token")
        if row["used_at"] is not None:
            await self._replayed(row, ip)
        if row["revoked_at"] is not None:
            raise oauth_error("invalid_grant", "this refresh token was used or revoked")
        if row["client_id"] != client["client_id"]:
            await self.store.revoke_family(row["family"])
            self.cache.forget()
            raise oauth_error("invalid_grant", "this refresh token was issued to another client")
        if row["expires_at"] <= time.time():
            raise oauth_error("invalid_grant", "this refresh token expired")
        wanted = refresh_scope(row["scope"], form.get("scope"))
        if not same_resource(form.get("resource"), row["resource"]):
            raise oauth_error("invalid_target", f"this grant is for {row['resource']} only")
        spent_row, spent = await self.store.spend_refresh(presented)
        if not spent or spent_row is None:
            if spent_row is not None and spent_row["used_at"] is not None:
                await self._replayed(spent_row, ip)
            raise oauth_error("invalid_grant", "this refresh token was used or revoked")
        return await self._issue_tokens(spent_row, wanted, ip, "oauth.refresh")

    async def _replayed(self, row: Row, ip: str) -> NoReturn:
        """A spent refresh token presented again: its whole family is revoked."""
        revoked = await self.store.revoke_family(row["family"])
        self.cache.forget()
        await self._audit(
            row["user_name"],
            "oauth.refresh",
            "refused",
            ip,
            f"refresh token reused ({row['client_id']}); {revoked} token(s) revoked",
        )
        raise oauth_error("invalid_grant", "this refresh token was used or revoked")

    async def _issue_tokens(
        self, grant: Row, granted: list[str], ip: str, action: str
    ) -> dict[str, Any]:
        user = await self.storage.get_user_by_id(grant["user_id"])
        if user is None or locked(user):
            raise oauth_error("invalid_grant", "the account is locked or gone")
        access = ACCESS_PREFIX + secrets.token_urlsafe(32)
        refresh = REFRESH_PREFIX + secrets.token_urlsafe(32)
        values = {
            "family": grant["family"],
            "client_id": grant["client_id"],
            "user_name": user["name"],
            "user_id": user["id"],
            "scope": scopes.render(granted),
            "resource": grant["resource"],
        }
        await self.store.put_token(_hash(access), "access", values, ACCESS_TTL_S)
        await self.store.put_token(_hash(refresh), "refresh", values, REFRESH_TTL_S)
        await self._audit(
            user["name"],
            action,
            "ok",
            ip,
            f"{grant['client_id']}: {values['scope']}",
            user["id"],
        )
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": ACCESS_TTL_S,
            "refresh_token": refresh,
            "scope": values["scope"],
        }

    # revocation ------------------------------------------------------------------------------
    async def revoke(self, token: str, client_id: str | None, ip: str) -> None:
        """RFC 7009: the token's whole family. Unknown tokens are not an error (section 2.2)."""
        row = await self.store.get_token(_hash(token))
        if row is None or (client_id and client_id != row["client_id"]):
            return
        count = await self.store.revoke_family(row["family"])
        self.cache.forget()
        await self._audit(
            row["user_name"], "oauth.revoke", "ok", ip, f"{row['client_id']}: {count} token(s)"
        )

    # the resource server ---------------------------------------------------------------------
    @staticmethod
    def handles(credential: str) -> bool:
        return credential.startswith(ACCESS_PREFIX)

    async def resolve(self, credential: str) -> Principal | None:
        """The principal of an access token issued for this hub, or None. The audience check
        (RFC 8707): a token whose resource is not this hub's identifier is refused."""

        row = await self.store.get_token(_hash(credential))
        if row is None or row["kind"] != "access" or row["revoked_at"] is not None:
            return None
        if row["expires_at"] <= time.time() or row["resource"] != self.resource:
            return None
        user = await self.storage.get_user_by_id(row["user_id"])
        if user is None or locked(user):
            return None
        granted = tuple(row["scope"].split())
        role = scopes.narrow(self.accounts.role(user["role"]), granted, self.live.snapshot.config)
        return self.accounts.principal_of(
            user, credential=f"oauth:{row['family']}", role=role, scopes=granted
        )

    # operators -------------------------------------------------------------------------------
    async def clients(self, revoke: str | None) -> dict[str, Any]:
        revoked = 0
        if revoke:
            revoked = await self.store.revoke_client(revoke)
            if not revoked:
                raise NotFound(f"no active OAuth client {revoke!r}")
            self.cache.forget()
            await self._audit("operator", "oauth.clients.revoke", "ok", "", revoke)
        return {"clients": await self.store.list_clients(), "revoked": revoked}

    async def grants(self, user: str | None, revoke_client: str | None) -> dict[str, Any]:
        revoked = 0
        if revoke_client:
            if not user:
                raise InvalidParams("name the user whose consent to revoke (--user)")
            row = await self.storage.get_user(user)
            revoked = await self.store.revoke_grant(row["id"], revoke_client) if row else 0
            if not revoked:
                raise NotFound(f"{user!r} gave no consent to {revoke_client!r}")
            self.cache.forget()
            await self._audit(
                "operator", "oauth.grants.revoke", "ok", "", f"{user}: {revoke_client}"
            )
        return {"grants": await self.store.list_grants(user), "revoked": revoked}

    async def _audit(
        self, principal: str, action: str, outcome: str, ip: str, detail: str, user_id: str = ""
    ) -> None:
        await self.storage.add_audit(principal, action, outcome, ip, detail, user_id=user_id)


def refresh_scope(granted: str, asked: str | None) -> list[str]:
    """The scopes a refresh may carry: the granted ones, or a subset asked for; never more
    (RFC 6749 section 6). Raises `invalid_scope`."""
    held = granted.split()
    if not asked:
        return held
    try:
        wanted = list(scopes.parse(asked))
    except scopes.ScopeError as exc:
        raise oauth_error("invalid_scope", str(exc)) from None
    if not scopes.covers(held, wanted):
        raise oauth_error("invalid_scope", "a refresh cannot widen the granted scope")
    return wanted


def _grant_detail(pending: Pending) -> str:
    return f"{pending.client_id} ({pending.client_name}): {scopes.render(pending.scopes)}"


#: RFC 7591 section 2: what each field must be (lists are of strings).
_METADATA_TYPES: dict[str, type] = {
    "redirect_uris": list,
    "grant_types": list,
    "response_types": list,
    "contacts": list,
    "token_endpoint_auth_method": str,
    "client_name": str,
    "client_uri": str,
    "logo_uri": str,
    "scope": str,
    "tos_uri": str,
    "policy_uri": str,
    "jwks_uri": str,
    "jwks": dict,
    "software_id": str,
    "software_version": str,
    "client_id": str,
}

_KEPT = ("client_name", "client_uri", "logo_uri", "scope", "software_id", "software_version")


def _kept(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The descriptive fields worth storing (bounded strings only)."""
    return {k: metadata[k][:512] for k in _KEPT if isinstance(metadata.get(k), str)}
