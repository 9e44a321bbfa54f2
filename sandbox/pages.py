"""`GET /` (a small status page, or the original hub's JSON health answer for programs) and
`GET /healthz` (for load balancers and Docker)."""

from __future__ import annotations

import html
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from protocol import __version__
from protocol.errors import RPCError
from protocol.printable import printable
from sandbox.caller import caller_of, client_address
from sandbox.guardian_link import GuardianLink
from sandbox.hub_compat import wants_json_status
from sandbox.json_response import JSONResponse
from sandbox.mcp_tools import SealGateTools
from sandbox.protections_page import hide_paths, protections_html

STARTED = time.monotonic()


async def healthz(request: Request) -> Response:
    link: GuardianLink = request.app.state.link
    try:
        guardian = await link.health(timeout=2.0)
    except RPCError as exc:
        return JSONResponse(
            {"status": "unavailable", "version": __version__, "guardian": exc.message},
            status_code=503,
        )
    return JSONResponse(
        {"status": "ok", "version": __version__, "guardian_uptime_s": guardian.uptime_s}
    )


def _shown(text: str) -> str:
    """Text for the page: control and invisible characters shown escaped, then HTML-escaped
    (model names, provider names and the guardian's error text can come from outside)."""
    return html.escape(printable(text))


def _cell(value: object) -> str:
    return "&ndash;" if value is None else _shown(str(value))


async def _models(request: Request) -> list[dict[str, Any]]:
    """The models the caller may use, as `/v1/models` gets them from the guardian (a
    provider's default model included, not only the [MODEL.*] blocks), usable ones first;
    the configured blocks if the guardian cannot say."""
    tools: SealGateTools = request.app.state.tools
    link: GuardianLink = request.app.state.link
    try:
        info = await link.models_info(caller_of(request.scope, request.app.state.proxies))
        models = info.models
    except RPCError:
        active = set(link.active.llm_providers)
        models = [
            {
                "id": m.id,
                "provider": m.provider,
                "provider_active": m.provider in active,
                "max_output_tokens": m.max_output_tokens,
                "requests_per_min": m.requests_per_min,
                "cost_input_per_1m": m.cost_input_per_1m,
                "cost_output_per_1m": m.cost_output_per_1m,
            }
            for m in tools.config.models.values()
        ]
    return sorted(models, key=lambda m: (not m.get("provider_active"), str(m.get("id"))))


def _model_table(models: list[dict[str, Any]]) -> str:
    if not models:
        return "<p><em>no model is configured for you</em></p>"

    def status(model: dict[str, Any]) -> str:
        if model.get("provider_active"):
            return "active"
        return f"inactive: {model.get('provider')} has no key"

    rows = "".join(
        f"<tr class={'active' if m.get('provider_active') else 'inactive'}>"
        f"<td>{_shown(str(m.get('id')))}</td>"
        f"<td>{_shown(str(m.get('provider')))}</td>"
        f"<td>{_shown(status(m))}</td>"
        f"<td>{_cell(m.get('max_output_tokens'))}</td><td>{_cell(m.get('requests_per_min'))}</td>"
        f"<td>{_cell(m.get('cost_input_per_1m'))}</td>"
        f"<td>{_cell(m.get('cost_output_per_1m'))}</td></tr>"
        for m in models
    )
    return (
        "<table id=models><tr><th>Model</th><th>Provider</th><th>Status</th><th>Max output</th>"
        "<th>Requests/min</th><th>USD per 1M in</th><th>USD per 1M out</th></tr>"
        f"{rows}</table>"
    )


def _base_url(request: Request) -> str:
    """The hub's address as this browser reached it (the scheme a trusted proxy reported)."""
    _, scheme = client_address(request.scope, request.app.state.proxies)
    host = request.headers.get("host") or request.url.netloc
    return f"{scheme}://{host}"


def _who(request: Request) -> str:
    """Who the page is shown to, with a Log out; open mode says nobody is signed in."""
    if _open_mode(request):
        return "<p id=signed-in>Nobody is signed in (open mode).</p>"
    name = _shown(str(_principal(request).get("principal", "")))
    role = _shown(str(_principal(request).get("role", "")))
    return (
        f"<p id=signed-in>Signed in as <strong id=user>{name}</strong> (role {role})"
        " <button type=button id=logout>Log out</button>"
        " <a href=/oauth/grants id=grants-link>Applications you allowed (OAuth grants)</a></p>"
        "<script>document.getElementById('logout').addEventListener('click', async () => {"
        "await fetch('/auth/logout', {method: 'POST', body: '{}',"
        " headers: {'content-type': 'application/json'}}); location.reload(); });</script>"
    )


def _auth_mode(request: Request) -> str:
    """Open mode said plainly: any local program may use the tools and keys."""
    principal = request.scope.get("state", {}).get("principal")
    if isinstance(principal, dict) and principal.get("kind") == "anonymous":
        return (
            "<p class=warn id=auth-mode><strong>Open mode</strong>: no user exists, so any"
            " program on this machine may use these tools and provider keys without a"
            " credential (a bearer token is ignored); /metrics and db_query still need a"
            " user. Adding the first user (<code>sealgate-ctl users add NAME</code>) turns"
            " auth on for every client.</p>"
        )
    return "<p id=auth-mode>Auth is on: every client sends a token or a session.</p>"


def _items(names: list[str] | tuple[str, ...]) -> str:
    if not names:
        return "<li><em>none</em></li>"
    return "".join(f"<li>{_shown(name)}</li>" for name in names)


LOGIN_FORM = """<!doctype html>
<html lang=en><head><meta charset=utf-8><title>{name}: log in</title>
<style>body{{font:15px system-ui,sans-serif;margin:2rem;max-width:26rem;color:#222}}
label{{display:block;margin:.6rem 0 .2rem}}input{{width:100%;padding:.4rem}}
button{{margin-top:1rem;padding:.4rem 1.2rem}}#error{{color:#a00}}</style></head><body>
<h1>{name}</h1><form id=login><label for=username>User name</label>
<input id=username name=username autocomplete=username required>
<label for=password>Password</label>
<input id=password name=password type=password autocomplete=current-password required>
<button type=submit>Log in</button><p id=error role=alert></p></form>
<script>
document.getElementById("login").addEventListener("submit", async (event) => {{
  event.preventDefault();
  const body = {{username: username.value, password: password.value}};
  const reply = await fetch("/auth/login", {{method: "POST", body: JSON.stringify(body),
    headers: {{"content-type": "application/json"}}}});
  if (reply.ok) {{ location.reload(); return; }}
  const data = await reply.json().catch(() => ({{}}));
  document.getElementById("error").textContent =
    (data.error && data.error.message) || "login failed";
}});
</script></body></html>"""


def _principal(request: Request) -> dict[str, object]:
    principal = request.scope.get("state", {}).get("principal")
    return principal if isinstance(principal, dict) else {}


def _is_admin(request: Request) -> bool:
    return bool(_principal(request).get("admin"))


def _open_mode(request: Request) -> bool:
    return _principal(request).get("kind") == "anonymous"


def asks_json(request: Request) -> bool:
    """A program asking `GET /` for the hub's state: the original hub's clients (a
    credential header, no HTML wanted), or any client whose Accept names JSON first (the
    desktop app signed in with a session cookie); a browser's navigation asks for HTML."""
    if wants_json_status(request.headers):
        return True
    accept = request.headers.get("accept", "").lower()
    first = accept.split(",")[0].split(";")[0].strip()
    return first == "application/json"


def json_status(request: Request) -> Response:
    """The original hub's answer to its clients' `GET /`; a refused credential is a 401.
    Beside the original's keys: who the hub takes the caller for (`signed_in_as`, None in
    open mode) and whether it is in open mode, so a client can say so."""
    if request.scope.get("state", {}).get("login_required"):
        return JSONResponse(
            {
                "error": {
                    "code": "unauthenticated",
                    "message": "the credential was not accepted: send a valid token in"
                    " Authorization: Bearer or X-API-Key",
                }
            },
            status_code=401,
            headers={"www-authenticate": 'Bearer realm="sealgate"'},
        )
    return JSONResponse(
        {
            "status": "running",
            "service": request.app.state.hub_name,
            "uptime_seconds": int(time.monotonic() - STARTED),
            "signed_in_as": None if _open_mode(request) else _principal(request).get("principal"),
            "role": _principal(request).get("role"),
            "open_mode": _open_mode(request),
        }
    )


async def status_page(request: Request) -> Response:
    if asks_json(request):
        return json_status(request)
    if request.scope.get("state", {}).get("login_required"):
        name = html.escape(request.app.state.hub_name)
        return HTMLResponse(
            LOGIN_FORM.format(name=name),
            status_code=401,
            headers={"www-authenticate": 'Bearer realm="sealgate"'},
        )
    link: GuardianLink = request.app.state.link
    tools: SealGateTools = request.app.state.tools
    hub_name: str = request.app.state.hub_name
    active = link.active
    admin = _is_admin(request) and not _open_mode(request)  # a signed-in admin
    uptime = int(time.monotonic() - STARTED)
    link_text = "connected" if link.connected else f"down ({link.last_error})"
    if not admin:
        link_text = hide_paths(link_text)
    base = _shown(_base_url(request))
    models = await _models(request)
    calls, errors = request.app.state.metrics.last_hour()
    no_keys = ""
    if not active.llm_providers and not active.search_providers:
        no_keys = (
            "<p class=warn>No provider key is configured: only the built-in tools are served."
            " Add keys to the guardian's env file and reload.</p>"
        )
    body = f"""<!doctype html>
<html lang=en><head><meta charset=utf-8><title>{html.escape(hub_name)}</title>
<style>body{{font:15px system-ui,sans-serif;margin:2rem;max-width:50rem;color:#222}}
h1{{margin-bottom:.2rem}}.warn{{background:#fff3cd;padding:.5rem}}
tr.inactive{{color:#888}}
table{{border-collapse:collapse;max-width:100%}}
td,th{{padding:.2rem 1rem .2rem 0;text-align:left;vertical-align:top}}
#models td:first-child{{overflow-wrap:anywhere;word-break:break-word;
min-width:8rem;max-width:22rem}}
code{{overflow-wrap:anywhere}}#signed-in button,#signed-in a{{margin-left:.6rem}}</style>
</head><body>
<h1>{html.escape(hub_name)}</h1>
<p>SealGate {html.escape(__version__)} &middot; up {uptime} s</p>
{_who(request)}
<table>
<tr><td>Guardian link</td><td id=guardian-link>{_shown(link_text)}</td></tr>
<tr><td>OpenAI-compatible API</td><td><code id=base-v1>{base}/v1</code></td></tr>
<tr><td>JSON API</td><td><code id=base-api>{base}/api</code></td></tr>
<tr><td>MCP (Streamable HTTP)</td><td><code>{base}/mcp</code></td></tr>
<tr><td>MCP (legacy SSE)</td><td><code>{base}/sse</code></td></tr>
</table>
{_auth_mode(request)}
{no_keys}
<h2>LLM providers</h2><ul id=llm-providers>{_items(active.llm_providers)}</ul>
<h2>Search providers</h2><ul id=search-providers>{_items(active.search_providers)}</ul>
<h2>Tools</h2><ul id=tools>{_items(sorted(tools.registered))}</ul>
<h2>Models</h2>{_model_table(models)}
{protections_html(getattr(request.app.state, "protections", None), admin=admin)}
<h2>Last hour</h2>
<table id=last-hour><tr><td>Sealed calls</td><td>{calls}</td></tr>
<tr><td>Errors</td><td>{errors}</td></tr></table>
</body></html>"""
    return HTMLResponse(body)
