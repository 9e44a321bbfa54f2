"""The hub's HTTP API, as the app uses it: blocking calls, run off the GUI thread.

Chat streams over `/v1/chat/completions`; the config tools, search and `db_query` go over
`POST /api`. Every failure leaves here as a `desktop.errors.HubError`.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from desktop import __version__
from desktop.errors import (
    CredentialRefused,
    HubError,
    HubUnreachable,
    RequestRefused,
    from_response,
    from_stream_event,
)

USER_AGENT = f"SealGate-Desktop/{__version__}"
#: The hub binds a session to the client's User-Agent: keep it stable.
DEFAULT_TIMEOUT = httpx.Timeout(10.0, read=120.0)
SESSION_COOKIE = "sg_session"
#: Tools the Connect tab uses itself; the chat offers the others.
BUILTIN_TOOLS = frozenset({"health_check", "list_active_tools", "get_model_info"})


@dataclass(frozen=True, kw_only=True)
class Credential:
    """An API token, or a session id from `/auth/login`; never a password."""

    kind: str  # "token" | "session" | "none"
    value: str = ""

    def __repr__(self) -> str:
        return f"Credential(kind={self.kind!r}, value=<hidden>)"


@dataclass(kw_only=True)
class HubInfo:
    """What the Connect tab loads once connected."""

    health: dict[str, Any]
    tools: list[str]
    tool_params: dict[str, list[str]]
    llm_providers: list[str]
    search_providers: list[str]
    models: list[dict[str, str]] = field(default_factory=list)  # {"id", "provider"}
    #: USD per million input and output tokens, by model, where the hub has a cost entry.
    prices: dict[str, tuple[float, float]] = field(default_factory=dict)
    user: str | None = None  # who the hub takes this credential for
    role: str | None = None
    open_mode: bool = False  # the hub has no users: anyone on its machine may use it


@dataclass(kw_only=True)
class Answer:
    """A finished answer and what the hub reported about it."""

    text: str
    meta: dict[str, Any] = field(default_factory=dict)
    cancelled: bool = False


class Cancel:
    """Stop for a running stream: shuts the socket down, which wakes a blocked read at once
    and closes the connection, so the hub cancels the provider request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self.requested = False

    def attach(self, sock: socket.socket | None) -> None:
        with self._lock:
            self._socket = sock
            if self.requested:
                self._shutdown()

    def __call__(self) -> None:
        with self._lock:
            self.requested = True
            self._shutdown()

    def _shutdown(self) -> None:
        if self._socket is not None:
            try:
                self._socket.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class HubClient:
    """One hub, one credential. `log` receives every request and response line."""

    def __init__(
        self,
        url: str,
        credential: Credential,
        log: Callable[[str, str], None] | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    ) -> None:
        self.url = url.rstrip("/")
        self.credential = credential
        self._log = log or (lambda direction, text: None)
        self._http = httpx.Client(timeout=timeout, headers={"user-agent": USER_AGENT})

    def close(self) -> None:
        self._http.close()

    # plumbing --------------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        if self.credential.kind == "token":
            return {"authorization": f"Bearer {self.credential.value}"}
        if self.credential.kind == "session":
            return {"cookie": f"{SESSION_COOKIE}={self.credential.value}"}
        return {}

    def _request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> Any:
        self._log(">", f"{method} {path} {_clip(body)}")
        try:
            response = self._http.request(
                method, self.url + path, json=body, headers={**self._headers(), **(headers or {})}
            )
        except httpx.HTTPError as exc:
            self._log("<", f"{path}: {type(exc).__name__}: {exc}")
            raise HubUnreachable(f"cannot reach the hub at {self.url}: {exc}") from exc
        self._log("<", f"{response.status_code} {path} {_clip(response.text)}")
        if response.status_code >= 400:
            raise from_response(response.status_code, response.text, response.headers)
        try:
            return response.json()
        except ValueError as exc:
            raise RequestRefused(f"{self.url}{path} did not answer JSON: is it a hub?") from exc

    # calls -----------------------------------------------------------------------------------
    def healthz(self) -> dict[str, Any]:
        return self._request("GET", "/healthz")

    def login(self, username: str, password: str) -> Credential:
        """Sign in; the password goes to the hub once and is not kept."""
        self._log(">", f"POST /auth/login {{'username': {username!r}, 'password': <hidden>}}")
        try:
            response = self._http.post(
                self.url + "/auth/login", json={"username": username, "password": password}
            )
        except httpx.HTTPError as exc:
            raise HubUnreachable(f"cannot reach the hub at {self.url}: {exc}") from exc
        self._log("<", f"{response.status_code} /auth/login")
        if response.status_code >= 400:
            raise from_response(response.status_code, response.text, response.headers)
        session = response.cookies.get(SESSION_COOKIE)
        if not session:
            raise RequestRefused("The hub accepted the login but sent no session")
        self.credential = Credential(kind="session", value=session)
        return self.credential

    @staticmethod
    def _optional(call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """What the app can do without (who is signed in, the prices): an older hub, or
        a role that may not ask, leaves it out instead of failing the connection."""
        try:
            return call()
        except (HubUnreachable, CredentialRefused):
            raise
        except HubError:
            return {}

    def whoami(self) -> dict[str, Any]:
        """`GET /` as JSON: who the hub takes this credential for, and whether it is in open
        mode (a hub too old to say answers without these keys)."""
        reply = self._request("GET", "/", headers={"accept": "application/json"})
        return reply if isinstance(reply, dict) else {}

    def logout(self) -> None:
        if self.credential.kind == "session":
            self._request("POST", "/auth/logout", {})

    def tool(self, name: str, params: dict[str, Any]) -> dict[str, Any]:
        """The tool's whole map: an LLM or search tool answers its text as `result` (as the
        original hub did) and the map (text, provider, usage, ...) as `meta`."""
        reply = self._request("POST", "/api", {"tool": name, "params": params})
        meta = reply.get("meta")
        return meta if isinstance(meta, dict) else reply["result"]

    def info(self) -> HubInfo:
        """Health, tools, providers and models: everything the Connect tab shows."""
        health = self.tool("health_check", {})
        active = self.tool("list_active_tools", {})
        models = [
            {"id": m["id"], "provider": m.get("owned_by", "")}
            for m in self._request("GET", "/v1/models")["data"]
        ]
        who = self._optional(self.whoami)
        prices: dict[str, tuple[float, float]] = {}
        for entry in self._optional(lambda: self.tool("get_model_info", {})).get("models") or []:
            cost_in, cost_out = entry.get("cost_input_per_1m"), entry.get("cost_output_per_1m")
            if isinstance(cost_in, int | float) and isinstance(cost_out, int | float):
                prices[str(entry.get("id"))] = (float(cost_in), float(cost_out))
        return HubInfo(
            prices=prices,
            user=who.get("signed_in_as") if isinstance(who.get("signed_in_as"), str) else None,
            role=who.get("role") if isinstance(who.get("role"), str) else None,
            open_mode=who.get("open_mode") is True,
            health=health,
            tools=[t for t in active.get("tools", []) if t not in BUILTIN_TOOLS],
            tool_params=active.get("tool_params") or {},
            llm_providers=list(active.get("llm_providers", [])),
            search_providers=list(active.get("search_providers", [])),
            models=models,
        )

    def chat_stream(
        self,
        model: str,
        messages: list[dict[str, Any]],
        cancel: Cancel,
        options: dict[str, Any] | None = None,
    ) -> Iterator[str | Answer]:
        """Text deltas as they arrive, then the `Answer` with the hub's report. `options`:
        more of the request's fields (`max_tokens`)."""
        body = {"model": model, "messages": messages, "stream": True, **(options or {})}
        self._log(">", f"POST /v1/chat/completions {_clip(body)}")
        parts: list[str] = []
        meta: dict[str, Any] = {}
        try:
            with self._http.stream(
                "POST", self.url + "/v1/chat/completions", json=body, headers=self._headers()
            ) as response:
                stream = response.extensions.get("network_stream")
                cancel.attach(stream.get_extra_info("socket") if stream is not None else None)
                if response.status_code >= 400:
                    text = response.read().decode(errors="replace")
                    self._log("<", f"{response.status_code} /v1/chat/completions {_clip(text)}")
                    raise from_response(response.status_code, text, response.headers)
                self._log("<", f"{response.status_code} /v1/chat/completions (stream)")
                for line in response.iter_lines():
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    event = json.loads(line[6:])
                    if "error" in event:
                        raise from_stream_event(event)
                    meta.update(event.get("sealgate") or {})
                    for choice in event.get("choices") or []:
                        delta = (choice.get("delta") or {}).get("content")
                        if delta:
                            parts.append(delta)
                            yield delta
        except (httpx.HTTPError, OSError) as exc:
            if cancel.requested:
                self._log("<", "stream stopped by the user")
                yield Answer(text="".join(parts), meta=meta, cancelled=True)
                return
            raise HubUnreachable(f"the connection to the hub broke: {exc}") from exc
        except ValueError as exc:
            raise RequestRefused(f"The hub sent a malformed stream event: {exc}") from exc
        if cancel.requested:
            yield Answer(text="".join(parts), meta=meta, cancelled=True)
            return
        self._log("<", f"stream done {_clip(meta)}")
        yield Answer(text="".join(parts), meta=meta)


def _clip(value: Any, limit: int = 2000) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


__all__ = ["Answer", "Cancel", "Credential", "HubClient", "HubError", "HubInfo"]
