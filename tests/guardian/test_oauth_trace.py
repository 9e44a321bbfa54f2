"""One OAuth token exchange goes straight through (issue 25): traced with `sys.setprofile`,
every guardian module it enters is called from a layer above it, and no module is entered
again while it is still waiting below (no bounce like auth -> OAuth -> auth)."""

from __future__ import annotations

import base64
import hashlib
import sys
import types
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from guardian.identity.accounts import Accounts
from guardian.identity.cache import PrincipalCache
from guardian.identity.passwords import ROUNDS_SETTING, Passwords
from guardian.limits import Limits
from guardian.liveconfig import LiveConfig
from guardian.oauth import handlers
from guardian.oauth.service import OAuthService
from guardian.redact import Redactor
from guardian.secrets import Secrets
from guardian.snapshot import Snapshot
from guardian.storage import Storage, open_storage
from protocol.methods import Surface
from protocol.pyfun import parse

ENVIRON = {ROUNDS_SETTING: "1000"}
PASSWORD = "correct horse battery"
REDIRECT = "http://127.0.0.1:9/cb"
VERIFIER = "v" * 64
IP = "127.0.0.1"

#: Top to bottom: a module may call only into a lower layer (the storage backends and
#: repositories count as one module, `guardian.storage`).
LAYERS: list[set[str]] = [
    {"guardian.oauth.handlers"},
    {"guardian.oauth.service"},
    {
        "guardian.oauth.store",
        "guardian.oauth.pkce",
        "guardian.oauth.resource",
        "guardian.oauth.scopes",
        "guardian.identity.accounts",
    },
    {"guardian.storage", "guardian.identity.principal"},
    # the audit log's pure encoding and hashing, under the storage that appends leaves
    {"guardian.tlog.canonical", "guardian.tlog.merkle"},
]
LAYER_OF = {module: n for n, layer in enumerate(LAYERS) for module in layer}


def challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def module_of(frame: types.FrameType) -> str:
    name = str(frame.f_globals.get("__name__", ""))
    return "guardian.storage" if name.startswith("guardian.storage.") else name


@dataclass
class Trace:
    """Guardian modules entered, and who called whom, from the frames themselves (a
    resumed coroutine's caller is the coroutine awaiting it)."""

    entered: list[str] = field(default_factory=list)
    edges: set[tuple[str, str]] = field(default_factory=set)
    bounces: list[str] = field(default_factory=list)

    def __call__(self, frame: types.FrameType, event: str, arg: object) -> None:
        if event != "call":
            return
        module = module_of(frame)
        if not module.startswith("guardian"):
            return
        callers = []
        back = frame.f_back
        while back is not None:
            name = module_of(back)
            if name.startswith("guardian") and (not callers or callers[-1] != name):
                callers.append(name)
            back = back.f_back
        if not callers:
            self._enter(module)
            return
        if callers[0] == module:
            return  # a stay in the same module
        self._enter(module)
        self.edges.add((callers[0], module))
        if module in callers[1:]:
            self.bounces.append(" -> ".join([*reversed(callers), module]))

    def _enter(self, module: str) -> None:
        if module not in self.entered:
            self.entered.append(module)


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[Storage]:
    store = await open_storage(None, tmp_path / "guardian.db")
    yield store
    await store.close()


async def identity(storage: Storage, tmp_path: Path) -> tuple[Accounts, OAuthService]:
    """The identity services as `guardian.main` builds them, on a real SQLite database."""
    live = LiveConfig(
        path=tmp_path / ".pyfun",
        environ=ENVIRON,
        snapshot=Snapshot.build(parse(""), Secrets({})),
        redactor=Redactor(),
        store_values=dict,
        announce=lambda names: None,
    )
    limits = Limits(storage)
    await limits.start()
    cache = PrincipalCache()
    accounts = Accounts(live, storage, ENVIRON, limits, cache, Passwords(ENVIRON))
    await accounts.start()
    return accounts, OAuthService(live, storage, ENVIRON, limits, accounts, cache)


async def a_code(accounts: Accounts, oauth: OAuthService) -> tuple[str, str]:
    """A registered client and an authorization code a person approved for it."""
    await accounts.add_user("ada", PASSWORD, "user")
    client = await oauth.register(IP, {"redirect_uris": [REDIRECT], "client_name": "trace"})
    request = {
        "client_id": client["client_id"],
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "code_challenge": challenge(VERIFIER),
        "code_challenge_method": "S256",
        "scope": "mcp",
        "state": "s1",
    }
    signed_in = await oauth.login(request, "ada", PASSWORD, IP)
    approved = await oauth.consent(signed_in["ticket"], True, IP)
    code = parse_qs(urlsplit(approved["redirect_to"]).query)["code"][0]
    return client["client_id"], code


async def test_a_token_exchange_goes_straight_through(storage: Storage, tmp_path: Path) -> None:
    accounts, oauth = await identity(storage, tmp_path)
    client_id, code = await a_code(accounts, oauth)
    ctx: Any = types.SimpleNamespace(
        services=types.SimpleNamespace(oauth=oauth), surface=Surface.SANDBOX
    )
    params = {
        "form": {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": client_id,
            "code_verifier": VERIFIER,
        },
        "caller": {"ip": IP, "user_agent": "trace"},
    }
    trace = Trace()
    sys.setprofile(trace)
    try:
        tokens = await handlers.token(ctx, params)
    finally:
        sys.setprofile(None)

    assert tokens["access_token"].startswith("sga_")
    assert trace.bounces == []
    assert trace.entered[:2] == ["guardian.oauth.handlers", "guardian.oauth.service"]
    assert set(trace.entered) <= set(LAYER_OF), set(trace.entered) - set(LAYER_OF)
    upward = sorted(e for e in trace.edges if LAYER_OF[e[0]] >= LAYER_OF[e[1]])
    assert upward == []
    # and the token it issued resolves, through the same wing, to the person who approved
    principal = await oauth.resolve(tokens["access_token"])
    assert principal is not None
    assert principal.name == "ada"
    assert principal.scopes == ("mcp",)


def test_the_tracer_sees_a_bounce() -> None:
    """A module called again while it waits below (the shape of auth -> OAuth -> auth)."""
    outer = types.ModuleType("guardian.fake_auth")
    inner = types.ModuleType("guardian.fake_oauth")
    exec("def start(): return other()\ndef back(): return 1", outer.__dict__)
    exec("def other(): return back()", inner.__dict__)
    outer.__dict__["other"] = inner.__dict__["other"]
    inner.__dict__["back"] = outer.__dict__["back"]
    trace = Trace()
    sys.setprofile(trace)
    try:
        outer.__dict__["start"]()
    finally:
        sys.setprofile(None)
    assert trace.bounces == ["guardian.fake_auth -> guardian.fake_oauth -> guardian.fake_auth"]
    assert trace.edges == {
        ("guardian.fake_auth", "guardian.fake_oauth"),
        ("guardian.fake_oauth", "guardian.fake_auth"),
    }
