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

from protocol.errors import RPCError
from sandbox.caller import caller_of
from sandbox.errors import http_status
from sandbox.guardian_link import GuardianLink
from sandbox.oauth import GRANTS_PATH, GRANTS_REVOKE_PATH, client_label, form_of, page, scope_items


def _when(value: Any) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "not known"
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(value))


def _grant_row(grant: dict[str, Any], form_token: str) -> str:
    client_id = str(grant.get("client_id", ""))
    label = client_label(
        str(grant.get("client_name", "")), str(grant.get("client_kind", "")), client_id
    )
    scopes = scope_items(list(grant.get("scopes") or []), list(grant.get("scope_words") or []))
    return (
        "<tr class=grant>"
        f"<td>{label}<br><code class=client-id>{html.escape(client_id)}</code></td>"
        f"<td><ul class=scopes>{scopes}</ul></td>"
        f"<td class=granted>{_when(grant.get('granted_at'))}</td>"
        f"<td class=last-active>{_when(grant.get('last_token_at'))}</td>"
        f"<td><form method=post action={GRANTS_REVOKE_PATH}>"
        f"<input type=hidden name=form_token value='{html.escape(form_token)}'>"
        f"<input type=hidden name=client_id value='{html.escape(client_id)}'>"
        "<button type=submit class=secondary>Withdraw</button></form></td></tr>"
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
    grants = [g for g in listing.get("grants", []) if isinstance(g, dict)]
    form_token = str(listing.get("form_token", ""))
    done = ""
    if request.query_params.get("withdrawn") == "1":
        done = (
            "<p id=withdrawn class=done>Withdrawn: that application's tokens stopped working,"
            " and it must ask you again to get new ones.</p>"
        )
    if grants:
        rows = "".join(_grant_row(g, form_token) for g in grants)
        table = (
            "<table id=grants><tr><th>Application</th><th>May</th><th>Allowed on</th>"
            "<th>Last active</th><th></th></tr>"
            f"{rows}</table>"
            "<p class=note>Last active: when the application last got a token (at sign-in,"
            " and about every 15 minutes while it is in use).</p>"
        )
    else:
        table = "<p id=no-grants>You have not allowed any application.</p>"
    who = html.escape(str(listing.get("user", "")))
    return page(
        "Your grants",
        f"<h1>Your OAuth grants</h1><p>Signed in as <strong id=user>{who}</strong>."
        " These applications may act for you; withdraw any you no longer use.</p>"
        f"{done}{table}<p><a href=/>Back to the hub</a></p>",
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
