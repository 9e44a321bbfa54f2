"""A real SealGate stack with the fake providers, users and tokens, for the desktop tests
and the screenshot script."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

from tests.e2e.world import KEYS, config_for
from tests.fakes.base import Behaviour, FakeServer
from tests.fakes.providers import FakeAnthropic, FakeBrave, FakeGemini, FakeOpenAI, FakeTavily
from tests.helpers import Stack, run_ctl

BOOTSTRAP = "bootstrap-token-desktop-0123456789ab"
PASSWORD = "alice's long password"
ROLES = """
[ROLE.chat_only]
tools = "llm_complete"
[ROLE.chat_only_END]
[MODEL.llama-local]
provider = "local"
cost_input_per_1m = "2"
cost_output_per_1m = "8"
[MODEL.llama-local_END]
[ROLE.budgeted]
monthly_budget_usd = "0.0000001"
[ROLE.budgeted_END]
[TOOL.translate]
provider_type = "llm"
default_provider = "local"
system_prompt = "Translate."
description = "Translate a text."
[TOOL.translate_END]
"""


@dataclass
class DesktopHub:
    stack: Stack
    fakes: dict[str, FakeServer]
    token: str  # alice's API token
    broke_token: str  # a user whose budget is spent
    chat_only_token: str = ""  # a user whose role grants llm_complete only

    @property
    def url(self) -> str:
        return self.stack.url

    def fake(self, name: str) -> Any:
        return self.fakes[name]

    def reset(self) -> None:
        for fake in self.fakes.values():
            fake.requests.clear()
            fake.refuse_keys.clear()
            fake.default = Behaviour()
            fake._queue.clear()

    def ctl(self, *args: str, stdin: str = "") -> str:
        done = run_ctl(self.stack.runtime / "guardian" / "admin.sock", *args, stdin=stdin)
        done.check_returncode()
        return done.stdout.strip()

    def stop(self) -> None:
        self.stack.cleanup()
        for fake in self.fakes.values():
            fake.stop()


def start_hub(users: bool = True) -> DesktopHub:
    """`users=False`: a hub with no user, in open mode."""
    fakes: dict[str, Any] = {
        "anthropic": FakeAnthropic(name="anthropic", reply_text="Claude says **hello** to you"),
        "gemini": FakeGemini(name="gemini", reply_text="Gemini says hello to you"),
        "openrouter": FakeOpenAI(name="openrouter", reply_text="OpenRouter says hello"),
        "huggingface": FakeOpenAI(name="huggingface", reply_text="HuggingFace says hello"),
        "local": FakeOpenAI(name="local", reply_text="Local model says hello"),
        "brave": FakeBrave(name="brave"),
        "tavily": FakeTavily(name="tavily"),
    }
    for fake in fakes.values():
        fake.start()
    stack = Stack(
        env={**KEYS, "SEALGATE_BOOTSTRAP_TOKEN": BOOTSTRAP} if users else dict(KEYS),
        # Every provider's per-chunk timeout at 10 s: the fakes share one process, and its
        # GIL, with the Qt app under test, which can hold the GIL past 1 s while it lays out
        # a long transcript; with each stream's window (the guardian reads a provider only as
        # fast as the app reads), a fake stalled that long would look like a provider timing
        # out. No desktop test is about provider timeouts.
        config_text=config_for(fakes, provider_timeout_s=10) + ROLES,
    )
    hub = DesktopHub(stack=stack, fakes=fakes, token="", broke_token="")
    try:
        stack.start()
        if not users:
            return hub
        hub.ctl("users", "add", "alice", stdin=PASSWORD + "\n")
        hub.token = hub.ctl("tokens", "issue", "--user", "alice")
        hub.ctl("users", "add", "broke", "--role", "budgeted", stdin="a long password\n")
        hub.broke_token = hub.ctl("tokens", "issue", "--user", "broke")
        hub.ctl("users", "add", "carol", "--role", "chat_only", stdin="carol's password\n")
        hub.chat_only_token = hub.ctl("tokens", "issue", "--user", "carol")
    except BaseException:
        hub.stop()
        raise
    return hub


def minimal_pdf(text: str) -> bytes:
    """A one-page PDF with one line of Helvetica text (no PDF writer library needed)."""
    stream = zlib.compress(f"BT /F1 18 Tf 72 720 Td ({text}) Tj ET".encode())
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)
