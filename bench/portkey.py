"""Portkey's open-source gateway as a bench peer: one Node process on 127.0.0.1:8787.

    .venv/bin/python bench/portkey.py      # installs it into bench/.portkey-gateway if missing

npm `@portkey-ai/gateway` 1.15.2 lives in its own cache directory (bench/.portkey-gateway),
never a project dependency. It listens on 8787 whatever `--port` says, so the bench checks
that 8787 is free first and skips the row when it is not; bench/loopback.mjs, preloaded with
`node --import`, keeps its listening socket on 127.0.0.1. Requests name the provider and the
fake's base URL in headers (`x-portkey-provider: openai`, `x-portkey-custom-host`).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
VERSION = "1.15.2"
CACHE = ROOT / "bench" / ".portkey-gateway"
PACKAGE = CACHE / "node_modules" / "@portkey-ai" / "gateway"
SERVER = PACKAGE / "build" / "start-server.js"
PRELOAD = ROOT / "bench" / "loopback.mjs"
PORT = 8787


def install() -> str | None:
    """Install the gateway into the cache directory when missing; None, or why not."""
    if SERVER.exists():
        return None
    if shutil.which("npm") is None or shutil.which("node") is None:
        return "node/npm not installed"
    CACHE.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(
            [
                "npm",
                "install",
                "--prefix",
                str(CACHE),
                "--no-audit",
                "--no-fund",
                "--ignore-scripts",
                f"@portkey-ai/gateway@{VERSION}",
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )
    except (subprocess.SubprocessError, OSError) as exc:
        return f"npm install failed: {exc}"
    return None if SERVER.exists() else "npm install left no build/start-server.js"


def port_free(port: int = PORT) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def headers(fake_base: str) -> dict[str, str]:
    """What a caller sends Portkey to reach the fake: the provider and its base URL."""
    return {
        "x-portkey-provider": "openai",
        "x-portkey-custom-host": fake_base,
        "Authorization": "Bearer fake",
    }


def start(fake_base: str) -> tuple[subprocess.Popen[bytes] | None, str, str]:
    """(process, base URL, note); process is None when the row cannot run here."""
    missing = install()
    if missing:
        return None, "", missing
    if not port_free():
        return None, "", f"port {PORT} is in use, row skipped"
    process = subprocess.Popen(
        [
            "node",
            "--import",
            PRELOAD.as_uri(),
            str(SERVER),
            "--headless",
            f"--port={PORT}",
        ],
        cwd=str(CACHE),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={"PATH": "/usr/bin:/bin:/usr/local/bin", "NODE_ENV": "production"},
    )
    url = f"http://127.0.0.1:{PORT}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            reply = httpx.post(
                f"{url}/v1/chat/completions",
                json={"model": "bench-model", "messages": [{"role": "user", "content": "hi"}]},
                headers=headers(fake_base),
                timeout=2,
            )
            if reply.status_code == 200:
                return process, url, f"Portkey gateway {VERSION}, one Node process"
            process.kill()
            process.wait(10)
            return None, "", f"answered {reply.status_code}: {reply.text[:200]}"
        except httpx.HTTPError:
            time.sleep(0.3)
    process.kill()
    process.wait(10)
    return None, "", "did not start within 60 s"


def main() -> None:
    note = install()
    print(note or f"Portkey gateway {VERSION} in {CACHE}")
    sys.exit(1 if note else 0)


if __name__ == "__main__":
    main()
