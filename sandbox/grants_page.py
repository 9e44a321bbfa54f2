"""`GET /oauth/grants` and `POST /oauth/grants/revoke`: a signed-in person's own OAuth
consents, and a way to withdraw one without an operator.

The guardian decides whose consents these are, from the credential the request carries (the
session cookie, or an API token); nothing here names a user. The withdraw form is guarded
like the consent form: the request guard refuses a foreign `Origin`, and the form carries a
single-use form token that the guardian handed out with the listing, bound to the user.
The page loads no script and cannot be framed (the OAuth pages' headers).
"""

from __future__ import annotations

import html
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from protocol.contract_results import OwnGrant
from protocol.errors import RPCError
from sandbox.caller import caller_of
from sandbox.errors import http_status
from sandbox.guardian_link import GuardianLink
from sandbox.oauth import GRANTS_PATH, GRANTS_REVOKE_PATH, client_label, form_of, page, scope_items


def _when(value: Any) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "not yet"
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(value))


#: The grants page: wider than the sign-in pages, one card per application.
_STYLE = (
    "body{max-width:46rem}.grant{border:1px solid #ccc;border-radius:.4rem;"
    "padding:.6rem 1rem;margin:1rem 0}.grant h2{font-size:1.15rem;margin:.2rem 0}"
    ".grant h2 .note{font-weight:normal;font-size:.85rem}.grant .when{margin:.4rem 0}"
    ".grant ul{margin:.4rem 0}"
)


def _grant_card(grant: OwnGrant, form_token: str) -> str:
    client_id = grant.client_id
    label = client_label(grant.client_name, grant.client_kind, client_id)
    scopes = scope_items(list(grant.scopes), list(grant.scope_words))
    return (
        f"<section class=grant><h2>{label}</h2>"
        f"<p class=note>Client id <code class=client-id>{html.escape(client_id)}</code></p>"
        f"<p class=when>Allowed on <span class=granted>{_when(grant.granted_at)}</span>"
        f" &middot; last active <span class=last-active>{_when(grant.last_token_at)}"
        "</span></p>"
        f"<p>It may:</p><ul class=scopes>{scopes}</ul>"
        f"<form method=post action={GRANTS_REVOKE_PATH}>"
        f"<input type=hidden name=form_token value='{html.escape(form_token)}'>"
        f"<input type=hidden name=client_id value='{html.escape(client_id)}'>"
        "<button type=submit class=secondary>Withdraw</button></form></section>"
    )


def _problem(message: str, status: int) -> Response:
    return page(
        "Your grants",
        "<h1>Your OAuth grants</h1>"
        f"<p class=err id=error>{html.escape(message)}</p><p><a href=/>Back to the hub</a></p>",
        status,
    )


async def grants_page(request: Request) -> Response:
    """The signed-in person's consents, each with a Withdraw button."""
    if request.scope.get("state", {}).get("login_required"):
        return _problem("Sign in first: log in on the status page, then come back here.", 401)
    link: GuardianLink = request.app.state.link
    caller = caller_of(request.scope, request.app.state.proxies)
    try:
        listing = await link.oauth_own_grants(caller)
    except RPCError as exc:
        return _problem(exc.message, http_status(exc.code.value))
    grants, form_token = listing.grants, listing.form_token
    done = ""
    if request.query_params.get("withdrawn") == "1":
        done = (
            "<p id=withdrawn class=done>Withdrawn: that application's tokens stopped working,"
            " and it must ask you again to get new ones.</p>"
        )
    if grants:
        cards = "".join(_grant_card(g, form_token) for g in grants)
        table = (
            f"<div id=grants>{cards}</div>"
            "<p class=note>Last active: when the application last got a token (when you"
            " allowed it, and about every 15 minutes while it is in use).</p>"
        )
    else:
        table = "<p id=no-grants>You have not allowed any application.</p>"
    who = html.escape(listing.user)
    return page(
        "Your grants",
        f"<h1>Your OAuth grants</h1><p>Signed in as <strong id=user>{who}</strong>."
        " These applications may act for you; withdraw any you no longer use.</p>"
        f"{done}{table}<p><a href=/>Back to the hub</a></p>",
        extra_style=_STYLE,
    )


async def revoke_grant(request: Request) -> Response:
    """Withdraw one consent; back to the page on success."""
    form = await form_of(request)
    if form is None or not form.get("client_id") or not form.get("form_token"):
        return _problem("send the withdraw form from your grants page", 400)
    link: GuardianLink = request.app.state.link
    caller = caller_of(request.scope, request.app.state.proxies)
    try:
        await link.oauth_own_grant_revoke(
            caller, form["client_id"][:2048], form["form_token"][:128]
        )
    except RPCError as exc:
        return _problem(exc.message, http_status(exc.code.value))
    return RedirectResponse(
        f"{GRANTS_PATH}?withdrawn=1", status_code=303, headers={"cache-control": "no-store"}
    )


ROUTES = [
    Route(GRANTS_PATH, grants_page, methods=["GET"]),
    Route(GRANTS_REVOKE_PATH, revoke_grant, methods=["POST"]),
]
