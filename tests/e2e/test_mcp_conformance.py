"""The MCP conformance package's server scenarios that apply to a gateway, against a real
stack on /mcp. The others need the package's own fixture tools, resources and prompts
(`test_simple_text`, `test://static-text`, ...), which a gateway does not serve: they are
left out by name below, not by a blanket skip.

Slow (`make test-slow`, which installs the package from npm: tests/setup_machine.sh).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.world import World
from tests.node_tools import conformance, inspector_missing, node_22

pytestmark = pytest.mark.slow

#: The scenarios of conformance 0.1.16 that ask nothing but what every server offers.
APPLY = [
    "server-initialize",
    "ping",
    "logging-set-level",
    "completion-complete",
    "tools-list",
    "prompts-list",
    "resources-list",
    "dns-rebinding-protection",
    "server-sse-multiple-streams",
]
#: Scenarios that call the package's fixture tools (`test_*`), read `test://` resources or
#: get its fixture prompts: a gateway has none of them.
FIXTURE_ONLY = {
    "tools-call-simple-text",
    "tools-call-image",
    "tools-call-audio",
    "tools-call-embedded-resource",
    "tools-call-mixed-content",
    "tools-call-with-logging",
    "tools-call-error",
    "tools-call-with-progress",
    "tools-call-sampling",
    "tools-call-elicitation",
    "json-schema-2020-12",
    "elicitation-sep1034-defaults",
    "elicitation-sep1330-enums",
    "server-sse-polling",
    "resources-read-text",
    "resources-read-binary",
    "resources-templates-read",
    "resources-subscribe",
    "resources-unsubscribe",
    "prompts-get-simple",
    "prompts-get-with-args",
    "prompts-get-embedded-resource",
    "prompts-get-with-image",
}


def run(*args: str, work: Path) -> subprocess.CompletedProcess[str]:
    reason = inspector_missing()
    if reason is not None:
        pytest.fail(reason)
    node, script = node_22(), conformance()
    assert node is not None and script is not None
    return subprocess.run(
        [node, str(script), *args],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=work,
        env={"HOME": str(work), "PATH": "/usr/bin:/bin"},
        check=False,
    )


def test_every_server_scenario_is_run_or_left_out_by_name(
    scratch: Callable[[str], Path],
) -> None:
    listed = run("list", work=scratch("sealgate-conformance-")).stdout
    section = listed.split("Server scenarios", 1)[1].split("Client scenarios", 1)[0]
    scenarios = {line.strip()[2:].split(" ")[0] for line in section.splitlines() if "- " in line}
    assert scenarios == set(APPLY) | FIXTURE_ONLY, scenarios ^ (set(APPLY) | FIXTURE_ONLY)


@pytest.mark.parametrize("scenario", APPLY)
def test_a_gateway_scenario_passes(w: World, scenario: str, scratch: Callable[[str], Path]) -> None:
    work = scratch("sealgate-conformance-")
    done = run("server", "--url", f"{w.stack.url}/mcp", "--scenario", scenario, work=work)
    assert done.returncode == 0 and " 0 failed" in done.stdout, (done.stdout, done.stderr)
