"""The real Claude Code (`claude -p`, on `/v1/messages`) and Codex CLI (`codex exec`, on
`/v1/responses`) against SealGate in front of the fake providers (issue 27, item 5): each
answer comes from the fake, a tool-call turn round-trips, each dialect reaches both an
Anthropic-format and an OpenAI-format provider, Claude Code's token works as
`ANTHROPIC_AUTH_TOKEN` (Bearer) and as `ANTHROPIC_API_KEY` (x-api-key), and strace shows that
no connection left loopback.

Slow (`make test-slow`, which installs both from npm: tests/setup_machine.sh).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.providers import FakeAnthropic, FakeOpenAI
from tests.helpers import Stack, make_workdir
from tests.node_tools import claude_code, codex, real_clients_missing

pytestmark = pytest.mark.slow

TOKEN = "sg_real-clients-bootstrap-0123456789ab"
ANSWER = {"anthropic": "Hello from the Anthropic fake", "local": "Hello from the OpenAI fake"}
MODELS = {"anthropic": "claude-test", "local": "local-model"}
_ADDRESS = re.compile(r'sin6?_addr=inet(?:_pton\(AF_INET6, |_addr\()"([^"]+)"')


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[Stack, FakeAnthropic, FakeOpenAI]]:
    reason = real_clients_missing()
    if reason:
        pytest.fail(reason)
    anthropic = FakeAnthropic(name="anthropic", reply_text=ANSWER["anthropic"]).start()
    local = FakeOpenAI(name="local", reply_text=ANSWER["local"]).start()
    config = f"""
[LLM_PROVIDER.anthropic]
api = "anthropic"
base_url = "{anthropic.base}/v1"
allow_insecure = "true"
requires_key = "false"
default_model = "claude-test"
[LLM_PROVIDER.anthropic_END]
[LLM_PROVIDER.local]
api = "openai"
base_url = "{local.base}/v1"
allow_insecure = "true"
requires_key = "false"
default_model = "local-model"
[LLM_PROVIDER.local_END]
"""
    stack = Stack(config_text=config, env={"SEALGATE_BOOTSTRAP_TOKEN": TOKEN})
    try:
        stack.start()
        yield stack, anthropic, local
    finally:
        stack.cleanup()
        anthropic.stop()
        local.stop()


def traced(
    command: list[str], env: dict[str, str], cwd: Path, stack: Stack
) -> tuple[str, list[str]]:
    """`command` under strace; (its output, every inet address it connected to)."""
    trace = cwd / "connect.trace"
    strace = ["strace", "-f", "-qq", "-e", "trace=connect", "-o", str(trace)]
    done = subprocess.run(
        [*strace, *command],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-2000:], stack.logs()[-3000:])
    return done.stdout, _ADDRESS.findall(trace.read_text())


def run_claude(stack: Stack, model: str, key_variable: str, home: Path) -> tuple[str, list[str]]:
    """`claude -p` with the variables docs/API.md gives."""
    binary = claude_code()
    assert binary is not None
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": stack.url,
        key_variable: TOKEN,
        "ANTHROPIC_MODEL": model,
        "ANTHROPIC_SMALL_FAST_MODEL": model,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
    }
    return traced([str(binary), "-p", "Say hello", "--model", model], env, home, stack)


#: A scratch Codex configuration naming SealGate as its provider, with everything that would
#: reach elsewhere switched off (plugin marketplace, apps, update checks, analytics, web
#: search, model discovery), and the sub-agent tools off (they come as a `namespace` tool,
#: which this dialect does not carry): what docs/API.md gives.
CODEX_CONFIG = """
model = "{model}"
model_provider = "sealgate"
check_for_update_on_startup = false
web_search = "disabled"

[model_providers.sealgate]
name = "SealGate"
base_url = "{url}/v1"
env_key = "SEALGATE_TOKEN"
wire_api = "responses"

[analytics]
enabled = false

[features]
plugins = false
remote_plugin = false
plugin_sharing = false
apps = false
image_generation = false
api_key_model_discovery = false
skill_mcp_dependency_install = false
goals = false

[agents]
enabled = false
"""


def run_codex(stack: Stack, model: str, home: Path) -> tuple[str, list[str]]:
    binary = codex()
    assert binary is not None
    (home / ".codex").mkdir()
    (home / ".codex" / "config.toml").write_text(CODEX_CONFIG.format(model=model, url=stack.url))
    work = home / "work"
    work.mkdir()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "SEALGATE_TOKEN": TOKEN}
    command = [str(binary), "exec", "--skip-git-repo-check", "Say hello"]
    return traced(command, env, work, stack)


@pytest.mark.parametrize(
    ("provider", "key_variable"),
    [("anthropic", "ANTHROPIC_AUTH_TOKEN"), ("local", "ANTHROPIC_API_KEY")],
)
def test_claude_code_answers_through_sealgate_and_stays_on_loopback(
    world: tuple[Stack, FakeAnthropic, FakeOpenAI], provider: str, key_variable: str
) -> None:
    stack, anthropic, local = world
    fake = anthropic if provider == "anthropic" else local
    fake.requests.clear()
    home = make_workdir("sealgate-claude-home-")
    try:
        output, addresses = run_claude(stack, MODELS[provider], key_variable, home)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    assert ANSWER[provider] in output
    # the fake answered the first turn with a call of Claude Code's first tool; Claude Code
    # ran it (or refused its arguments) and sent the result back through SealGate
    bodies = [json.dumps(r.body) for r in fake.requests]
    assert len(bodies) >= 2 and "tool" in bodies[0]
    result = "tool_result" if provider == "anthropic" else '"role": "tool"'
    assert any(result in body for body in bodies[1:]), bodies[-1][-2000:]
    # Claude Code's own wishes were dropped, not sent: no anthropic-beta header (none is on
    # the provider's allowlist), and an OpenAI-format provider got no Anthropic-only field
    assert all("anthropic-beta" not in r.headers for r in fake.requests)
    if provider == "local":
        assert all("context_management" not in body for body in bodies)
    # every connection Claude Code opened went to loopback (SealGate itself)
    assert addresses and all(a in ("127.0.0.1", "::1") for a in addresses), addresses


@pytest.mark.parametrize("provider", ["local", "anthropic"])
def test_codex_answers_through_sealgate_and_stays_on_loopback(
    world: tuple[Stack, FakeAnthropic, FakeOpenAI], provider: str
) -> None:
    stack, anthropic, local = world
    fake = anthropic if provider == "anthropic" else local
    fake.requests.clear()
    home = make_workdir("sealgate-codex-home-")
    try:
        output, addresses = run_codex(stack, MODELS[provider], home)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    assert ANSWER[provider] in output
    # the fake called Codex's first tool; Codex answered (here: refused its arguments) and
    # the output went back through SealGate to the provider
    bodies = [json.dumps(r.body) for r in fake.requests]
    assert len(bodies) >= 2 and "exec_command" in bodies[0]
    result = "tool_result" if provider == "anthropic" else '"role": "tool"'
    assert any(result in body for body in bodies[1:]), bodies[-1][-2000:]
    assert addresses and all(a in ("127.0.0.1", "::1") for a in addresses), addresses
