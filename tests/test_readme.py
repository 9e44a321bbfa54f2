"""The README and docs/*.md work as written (issues 15, 24): their code blocks run against a
real stack.

Every `python` and `sh` block of `README.md` and of each `docs/*.md` runs, with three
substitutions a reader makes too: the stack's URL for `http://127.0.0.1:7860`, a real token for
`sg_...`, and the checkout's path for `./sealgate-ctl` (and `python tools/`). A block that cannot run here (Docker,
systemd, `sudo`, `make run` itself) is marked with `<!-- not run: why -->` on the line before
it. `ini` and `json` blocks must parse. The stack is the README's own "try it without keys"
setup: `bench/fake_provider.py` and `bench/fake.pyfun`, plus the `[ROLE.*]` blocks the docs
define (a reader adds those to their `.pyfun` before using them). The README stays short and
links every file in docs/.
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

from bench.fake_provider import pyfun_for
from protocol.pyfun import PyfunError, parse
from tests.helpers import ROOT, Stack, base_env, free_port, make_workdir, run_ctl

README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
#: The README's length stays near 400 lines; detail belongs in docs/.
README_MAX_LINES = 450
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
    file: str = "README.md"

    def __str__(self) -> str:
        return f"{self.file}:{self.line} ({self.lang})"


def blocks(text: str, file: str = "README.md") -> list[Block]:
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
            Block(
                opening.group(1),
                "\n".join(body) + "\n",
                start + 1,
                marker and marker.group(1),
                file,
            )
        )
    return found


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


ALL = [b for path in (README, *DOCS) for b in blocks(path.read_text(), relative(path))]
RUNNABLE = [b for b in ALL if b.lang in ("sh", "python") and b.not_run is None]
#: `[ROLE.x]` blocks the docs define, once each; their commands (`users add --role x`) need them.
ROLES = {
    match.group(1): match.group(0)
    for block in ALL
    if block.lang == "ini"
    for match in re.finditer(r"(?ms)^\[ROLE\.([\w-]+)\]$.*?^\[ROLE\.\1_END\]$", block.body)
}


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
            .replace("python tools/", f"{sys.executable} {ROOT}/tools/")
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
    config = pyfun_for(port)
    config += "\n" + "\n\n".join(ROLES.values()) + "\n"
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
    mine = [b for b in RUNNABLE if b.file == "README.md"]
    assert any(b.lang == "python" and "sse_client" in b.body for b in mine)
    assert any(b.lang == "sh" and "curl" in b.body for b in mine)
    assert any(b.lang == "sh" and "./sealgate-ctl" in b.body for b in mine)
    assert {b.file for b in RUNNABLE} > {"README.md"}, "no docs/*.md block runs"
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
            parse(text, str(block))
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
    from supervise.users import Identity, check_secret_files, ensure_user

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
    from supervise.outcomes import Refusal
    from supervise.users import check_secret_files, ensure_user

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


# -- the README's shape (issue 24) ----------------------------------------------------------


def section(text: str, heading: str) -> str:
    """The body of the `##`/`###` section named `heading`, up to the next heading of its level."""
    match = re.search(rf"^(#+) {re.escape(heading)}\s*$", text, re.M)
    assert match is not None, f"no section {heading!r}"
    level = len(match.group(1))
    rest = text[match.end() :]
    end = re.search(rf"^#{{1,{level}}} ", rest, re.M)
    return rest[: end.start()] if end else rest


def test_the_readme_stays_short_and_links_every_document() -> None:
    text = README.read_text()
    assert len(text.splitlines()) < README_MAX_LINES, "put the detail in docs/ and link it"
    missing = [p.name for p in DOCS if f"](docs/{p.name})" not in text]
    assert not missing, f"README.md does not link {missing}"


def test_the_readme_leads_with_what_a_newcomer_needs() -> None:
    text = README.read_text()
    headings = re.findall(r"^## (.+)$", text, re.M)
    wanted = ["Requirements", "Quick start", "Connect a client", "Users and tokens", "Deploy"]
    assert [h for h in headings if h in wanted] == wanted, headings
    assert headings.index("Requirements") == 0, headings
    quick = section(text, "Quick start")
    assert quick.index("make run") < quick.index("make test") < quick.index("sealgate-ctl")
    clients = section(text, "Connect a client")
    for name in ("Claude Desktop", "Claude Code", "Cursor", "VS Code", "OpenAI SDK", "/api"):
        assert re.search(rf"^### .*{re.escape(name)}", clients, re.M), name
    requirements = section(text, "Requirements")
    for fact in ("Linux", "Python >= 3.11", "make", "hub-guardian", "hub-sandbox"):
        assert fact in requirements, fact
    deploy = section(text, "Deploy")
    assert re.findall(r"^### (.+)$", deploy, re.M) == ["Docker", "Hugging Face Spaces", "systemd"]


def table_rows(text: str) -> list[list[str]]:
    """Markdown tables as runs of `|` lines; a run is one table."""
    runs: list[list[str]] = []
    previous = ""
    for line in text.splitlines():
        if line.startswith("|"):
            if previous.startswith("|"):
                runs[-1].append(line)
            else:
                runs.append([previous, line])  # the line before: must be blank
        previous = line
    return runs


@pytest.mark.parametrize("path", [README, *DOCS], ids=relative)
def test_every_table_is_whole(path: Path) -> None:
    """A row cut off from its table (the `health_check` row once was) renders as text."""
    for before, header, *rows in table_rows(path.read_text()):
        where = f"{relative(path)}: table {header[:40]!r}"
        assert not before.strip(), f"{where}: a table starts after a blank line"
        assert rows and re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", rows[0]), f"{where}: no separator"
        cells = len(re.findall(r"(?<!\\)\|", header))
        for row in rows:
            assert len(re.findall(r"(?<!\\)\|", row)) == cells, f"{where}: {row[:60]!r}"


def test_the_mcp_tools_table_names_every_built_in_tool() -> None:
    tools = section(README.read_text(), "MCP tools")
    for tool in ("llm_complete", "web_search", "get_model_info", "list_active_tools"):
        assert re.search(rf"^\| `{tool}`", tools, re.M), tool
    assert re.search(r"^\| `health_check` \| \| .+ \|$", tools, re.M)


def test_the_mcp_snippet_prints_what_the_gateway_refused(readme: Readme) -> None:
    """The SDK says only `MCPError: Server returned an error response`: the README's script
    must show the status and the gateway's reason instead of a traceback."""
    (snippet,) = [b for b in RUNNABLE if b.lang == "python" and "sse_client" in b.body]
    script = readme.workdir / "refused.py"
    script.write_text(readme.prepare(snippet.body.replace("sg_...", "sg_not-a-real-token")))
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=readme.workdir,
        env=readme.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "Traceback" not in output and "ExceptionGroup" not in output, output
    assert "HTTP 401" in output and "unauthenticated" in output, output


def test_the_stdio_bridge_says_what_it_needs() -> None:
    desktop = section(README.read_text(), "Claude Desktop")
    assert "make .venv/.runtime" in desktop and "mcp-stdio" in desktop


def test_the_tests_section_says_make_test_downloads_from_npm() -> None:
    tests = section(README.read_text(), "Tests")
    assert "Node 22" in tests and "mcp-remote" in tests and "npm" in tests


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("path", [README, *DOCS], ids=relative)
def test_links_between_the_documents_reach_their_target(path: Path) -> None:
    """Sections moved between files (issue 24): a link must still land on a heading."""
    for target, anchor in re.findall(
        r"\]\(((?:\.\./|docs/)?[\w.]*\.md|)(?:#([\w-]+))?\)", path.read_text()
    ):
        linked = (path.parent / target).resolve() if target else path
        assert linked.exists(), f"{relative(path)} links {target}, which does not exist"
        if anchor:
            headings = re.findall(r"^#+ (.+)$", linked.read_text(), re.M)
            assert anchor in {slug(h) for h in headings}, f"{relative(path)}: {target}#{anchor}"
