"""The README works as written (issue 15): its code blocks run against a real stack.

Every `python` and `sh` block runs, with three substitutions a reader makes too: the stack's
URL for `http://127.0.0.1:7860`, a real token for `sg_...`, and the checkout's path for
`./sealgate-ctl`. A block that cannot run here (Docker, systemd, `sudo`, `make run` itself) is
marked with `<!-- not run: why -->` on the line before it. `ini` blocks must parse. The stack
is the README's own "try it without keys" setup: `bench/fake_provider.py` and
`bench/fake.pyfun`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from protocol.pyfun import PyfunError, parse
from tests.helpers import ROOT, Stack, base_env, free_port, make_workdir, run_ctl

README = ROOT / "README.md"
MASTER_KEY = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="  # 32 bytes, base64
PASSWORD = "a long passphrase"
#: Why a block may be left out; anything else must run.
NOT_RUN_REASONS = (
    "docker",
    "sudo",
    "systemd",
    "starts the gateway",
    "writes the checkout's",
    "needs an MCP client app",
    "needs a Hugging Face Space",
)


@dataclass(frozen=True)
class Block:
    lang: str
    body: str
    line: int
    not_run: str | None

    def __str__(self) -> str:
        return f"README.md:{self.line} ({self.lang})"


def blocks(text: str) -> list[Block]:
    found: list[Block] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        opening = re.match(r"^```(\w*)\s*$", lines[index])
        if opening is None:
            index += 1
            continue
        start = index
        index += 1
        body: list[str] = []
        while not lines[index].startswith("```"):
            body.append(lines[index])
            index += 1
        index += 1
        before = next((lines[i] for i in range(start - 1, -1, -1) if lines[i].strip()), "")
        marker = re.match(r"^<!--\s*not run:\s*(.+?)\s*-->$", before.strip())
        found.append(
            Block(opening.group(1), "\n".join(body) + "\n", start + 1, marker and marker.group(1))
        )
    return found


ALL = blocks(README.read_text())
RUNNABLE = [b for b in ALL if b.lang in ("sh", "python") and b.not_run is None]


@dataclass
class Readme:
    stack: Stack
    token: str
    workdir: Path

    def prepare(self, text: str) -> str:
        assert "sg_..." not in text or self.token
        return (
            text.replace("http://127.0.0.1:7860", self.stack.url)
            .replace("sg_...", self.token)
            .replace("./sealgate-ctl", str(ROOT / "sealgate-ctl"))
        )

    @property
    def env(self) -> dict[str, str]:
        return base_env({"HUB_RUNTIME_DIR": str(self.stack.runtime)})


@pytest.fixture(scope="module")
def readme() -> Iterator[Readme]:
    port = free_port()
    fake = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "fake_provider.py"), "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    config = (ROOT / "bench" / "fake.pyfun").read_text().replace("8900", str(port))
    stack = Stack(config_text=config, env={"SEALGATE_MASTER_KEY": MASTER_KEY})
    workdir = make_workdir("sealgate-readme-")
    try:
        assert fake.stdout is not None and int(fake.stdout.readline()) == port
        stack.start()
        admin = stack.runtime / "guardian" / "admin.sock"
        added = run_ctl(admin, "users", "add", "reader", stdin=PASSWORD + "\n")
        assert added.returncode == 0, added.stderr
        issued = run_ctl(admin, "tokens", "issue", "--user", "reader")
        assert issued.returncode == 0, issued.stderr
        yield Readme(stack, issued.stdout.strip(), workdir)
    finally:
        stack.cleanup()
        fake.terminate()
        fake.wait(10)
        if fake.stdout is not None:
            fake.stdout.close()
        shutil.rmtree(workdir, ignore_errors=True)


def test_the_readme_has_blocks_of_every_kind_this_test_runs() -> None:
    assert any(b.lang == "python" and "sse_client" in b.body for b in RUNNABLE)
    assert any(b.lang == "sh" and "curl" in b.body for b in RUNNABLE)
    assert any(b.lang == "sh" and "./sealgate-ctl" in b.body for b in RUNNABLE)
    assert all(b.lang in ("sh", "python", "ini", "text", "json") for b in ALL), [
        str(b) for b in ALL
    ]


def test_blocks_left_out_say_why_and_only_for_what_cannot_run_here() -> None:
    for block in ALL:
        if block.not_run is not None:
            assert any(reason in block.not_run for reason in NOT_RUN_REASONS), str(block)
            assert block.lang in ("sh", "python"), str(block)
    for block in RUNNABLE:
        assert not re.search(r"^\s*(sudo|docker|systemctl)\b", block.body, re.M), str(block)


def run_block(readme: Readme, block: Block, cwd: Path) -> None:
    if block.lang == "python":
        script = cwd / f"block_{block.line}.py"
        script.write_text(readme.prepare(block.body))
        command = [sys.executable, str(script)]
    else:
        command = ["bash", "-c", "set -euo pipefail\n" + readme.prepare(block.body)]
    done = subprocess.run(
        command,
        cwd=cwd,
        env=readme.env,
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{block} failed:\n{output}"
    assert "Traceback" not in output and '"error"' not in done.stdout, f"{block}:\n{output}"


@pytest.mark.parametrize("block", RUNNABLE, ids=str)
def test_a_readme_block_runs_as_written(readme: Readme, block: Block) -> None:
    run_block(readme, block, readme.workdir)


@pytest.mark.parametrize("block", [b for b in ALL if b.lang == "json"], ids=str)
def test_a_readme_json_block_parses(block: Block) -> None:
    """Client configurations; tests/e2e/test_mcp_stdio.py also connects with them."""
    assert isinstance(json.loads(block.body), dict), str(block)


@pytest.mark.parametrize("block", [b for b in ALL if b.lang == "ini"], ids=str)
def test_a_readme_ini_block_parses(block: Block) -> None:
    """An excerpt may name a fallback defined elsewhere: a stub stands in for it."""
    text = block.body
    for _ in range(5):
        try:
            parse(text, f"README.md:{block.line}")
            return
        except PyfunError as exc:
            missing = re.search(r"fallback_to names '([\w.-]+)', which is not a (\w+)", str(exc))
            if missing is None:
                raise
            name, kind = missing.groups()
            section = "LLM_PROVIDER" if kind == "llm" else "SEARCH_PROVIDER"
            text += (
                f'\n[{section}.{name}]\nbase_url = "https://{name}.example/v1"\n'
                f'env_key = "STUB_KEY"\n[{section}.{name}_END]\n'
            )
    raise AssertionError(f"{block} does not parse")


def test_the_env_file_step_leaves_a_file_the_supervisor_accepts(readme: Readme) -> None:
    """Quick start's `.env` step, as root too: the guardian's user can read it, the
    sandbox's cannot (the supervisor's own check)."""
    from supervisor import Identity, check_secret_files, ensure_user

    (step,) = [b for b in RUNNABLE if "chmod 600 .env" in b.body]
    cwd = readme.workdir / "env-step"
    cwd.mkdir()
    run_block(readme, step, cwd)
    env_file = cwd / ".env"
    assert "ANTHROPIC_API_KEY=" in env_file.read_text()
    if os.geteuid() == 0:
        guardian, sandbox = ensure_user("hub-guardian"), ensure_user("hub-sandbox")
    else:
        me = Identity("me", os.getuid(), os.getgid())
        guardian = sandbox = me
    check_secret_files([env_file], guardian, sandbox)  # raises Refusal otherwise


def test_a_root_owned_env_file_is_refused_with_the_fix(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: the refusal concerns a root-owned file and service users")
    from supervisor import Refusal, check_secret_files, ensure_user

    env_file = tmp_path / ".env"
    env_file.write_text("ANTHROPIC_API_KEY=x\n")
    env_file.chmod(0o600)
    with pytest.raises(Refusal, match=r"not readable by the guardian user .*Run: chown"):
        check_secret_files([env_file], ensure_user("hub-guardian"), ensure_user("hub-sandbox"))


def test_the_repository_stands_alone() -> None:
    readme = README.read_text()
    assert "](docs/ARCHITECTURE.md)" in readme and (ROOT / "docs" / "ARCHITECTURE.md").exists()
    outside = "../" + "shared"
    skip = {"var", "__pycache__", "node_modules"}
    for directory, subdirs, files in os.walk(ROOT):
        subdirs[:] = [d for d in subdirs if d not in skip and not d.startswith(".")]
        for name in files:
            path = Path(directory) / name
            if path.suffix not in (".md", ".py", ".toml", ".service", ".socket", ".pyfun", ""):
                continue
            if outside in path.read_text(errors="replace"):
                raise AssertionError(f"{path} refers to {outside}, outside the repository")


def test_the_systemd_install_copies_code_only_and_keeps_the_key_out_of_history() -> None:
    (install,) = [b for b in ALL if "systemctl enable" in b.body]
    assert "git archive" in install.body and "cp -r ." not in install.body
    assert "chmod -R" not in install.body
    key_lines = [line for line in install.body.splitlines() if "credentials/ANTHROPIC" in line]
    assert key_lines and all("systemd-ask-password" in line for line in key_lines)
    assert not re.search(r"echo[^|]*(sk-|KEY=)", install.body)


def test_the_docker_section_says_how_to_give_the_image_its_own_pyfun_and_keys() -> None:
    docker = "\n".join(b.body for b in ALL if "docker run" in b.body)
    assert "-e HUB_CONFIG=" in docker and ".pyfun:/" in docker and "--env-file" in docker


def test_make_run_prints_the_operator_cli() -> None:
    dry = subprocess.run(
        ["make", "-n", "run"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout
    assert "./sealgate-ctl status" in dry
