"""Metrics, request limits, stream caps, CORS, and the status page in a real browser."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.e2e.world import KEYS, World, config_for
from tests.helpers import ROOT, Stack

ARTIFACTS = ROOT / "tests" / "artifacts"
ADMIN = "sg_http-surface-bootstrap-0123456789"


def test_metrics_after_some_calls(w: World, stack_factory: Callable[..., Stack]) -> None:
    # /metrics needs an admin even where the gateway is open: a stack of its own with one.
    fakes = {fake.name: fake for fake in w.fakes}
    stack = stack_factory(
        env={**KEYS, "SEALGATE_BOOTSTRAP_TOKEN": ADMIN}, config_text=config_for(fakes)
    )
    as_admin = {"authorization": f"Bearer {ADMIN}"}
    httpx.post(
        f"{stack.url}/v1/chat/completions",
        timeout=30,
        headers=as_admin,
        json={"model": "claude-test", "messages": [{"role": "user", "content": "hi"}]},
    )
    text = httpx.get(f"{stack.url}/metrics", headers=as_admin).text
    assert (
        'sealgate_http_requests_total{method="POST",route="/v1/chat/completions",status="200"}'
        in text
    )
    assert 'sealgate_tokens_total{direction="output",model="claude-test"}' in text
    assert "sealgate_sealed_call_seconds_bucket" in text
    assert "sealgate_open_streams" in text and "sealgate_cost_usd_total" in text
    # the guardian's bounded usage ledger and supervised tasks, as of this scrape
    assert 'sealgate_guardian_queue{figure="usage_ledger_capacity"} 100000.0' in text
    assert 'sealgate_guardian_queue{figure="usage_ledger_dropped"} 0.0' in text
    assert 'sealgate_guardian_queue{figure="task_restarts"} 0.0' in text


def test_oversized_and_slow_bodies(w: World) -> None:
    big = httpx.post(
        f"{w.stack.url}/api",
        content=b"x" * (5 * 1024 * 1024),
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert big.status_code == 413 and big.json()["error"]["code"] == "payload_too_large"
    with socket.create_connection(("127.0.0.1", w.stack.port), timeout=15) as sock:
        sock.sendall(
            b"POST /api HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
            b'\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"too\r\n'
        )  # then nothing
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 408")


def _stack_with(stack_factory: Callable[..., Stack], extra_hub: str) -> Stack:
    config = (ROOT / ".pyfun").read_text().replace("[HUB_END]", f"{extra_hub}\n[HUB_END]", 1)
    return stack_factory(config_text=config)


async def test_open_streams_are_capped_per_principal(stack_factory: Callable[..., Stack]) -> None:
    stack = _stack_with(stack_factory, 'max_streams_per_principal = "2"')
    async with httpx.AsyncClient(timeout=10) as client:
        streams = []
        for _ in range(2):
            request = client.build_request("GET", f"{stack.url}/sse/")
            streams.append(await client.send(request, stream=True))
        assert all(s.status_code == 200 for s in streams)
        refused = await client.get(f"{stack.url}/sse/")
        assert refused.status_code == 429 and "open streams" in refused.text
        for stream in streams:
            await stream.aclose()
        await asyncio.sleep(0.3)
        again = client.build_request("GET", f"{stack.url}/sse/")
        response = await client.send(again, stream=True)
        assert response.status_code == 200
        await response.aclose()


def test_cors_only_for_configured_origins(stack_factory: Callable[..., Stack]) -> None:
    stack = _stack_with(stack_factory, 'cors_origins = "http://app.example"')
    allowed = httpx.options(
        f"{stack.url}/v1/models",
        headers={"origin": "http://app.example", "access-control-request-method": "GET"},
    )
    assert allowed.headers["access-control-allow-origin"] == "http://app.example"
    other = httpx.options(
        f"{stack.url}/v1/models",
        headers={"origin": "http://evil.example", "access-control-request-method": "GET"},
    )
    assert "access-control-allow-origin" not in other.headers


def _chromium(url: str, screenshot: Path) -> str:
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail("chromium is missing: make test installs Debian's chromium")
    with tempfile.TemporaryDirectory() as profile:
        flags = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--window-size=1100,900",
        ]
        subprocess.run(
            [binary, *flags, f"--screenshot={screenshot}", url],
            capture_output=True,
            timeout=120,
            check=True,
        )
        dom = subprocess.run(
            [binary, *flags, "--dump-dom", url],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
    return dom


def test_status_page_and_login_form_in_chromium(
    w: World, stack_factory: Callable[..., Stack]
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    status_png = ARTIFACTS / "status-page.png"
    dom = _chromium(f"{w.stack.url}/", status_png)
    assert status_png.stat().st_size > 5000
    assert 'id="guardian-link">connected' in dom.replace("id=guardian-link", 'id="guardian-link"')
    assert "claude-test" in dom and "anthropic" in dom and "Last hour" in dom
    for secret in ("fake-ant", "fake-aiza", "fake-hf"):
        assert secret not in dom
    locked = stack_factory(env={"SEALGATE_BOOTSTRAP_TOKEN": "bootstrap-chromium-0123456789"})
    login_png = ARTIFACTS / "login-form.png"
    login_dom = _chromium(f"{locked.url}/", login_png)
    assert login_png.stat().st_size > 2000
    assert 'id="login"' in login_dom and 'type="password"' in login_dom
    assert "anthropic" not in login_dom


def test_metrics_need_an_admin(stack_factory: Callable[..., Stack]) -> None:
    stack = stack_factory(env={"SEALGATE_BOOTSTRAP_TOKEN": "bootstrap-metrics-0123456789"})
    admin = {"authorization": "Bearer bootstrap-metrics-0123456789"}
    assert httpx.get(f"{stack.url}/metrics").status_code == 401
    assert httpx.get(f"{stack.url}/metrics", headers=admin).status_code == 200
    subprocess.run(
        [
            sys.executable,
            "-m",
            "guardian.ctl",
            "--socket",
            str(stack.runtime / "guardian" / "admin.sock"),
            "users",
            "add",
            "uma",
        ],
        input="uma's password\n",
        text=True,
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    token = subprocess.run(
        [
            sys.executable,
            "-m",
            "guardian.ctl",
            "--socket",
            str(stack.runtime / "guardian" / "admin.sock"),
            "tokens",
            "issue",
            "--user",
            "uma",
        ],
        text=True,
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.strip()
    user = httpx.get(f"{stack.url}/metrics", headers={"authorization": f"Bearer {token}"})
    assert user.status_code == 403


def test_a_client_that_never_finishes_its_headers_is_dropped(
    stack_factory: Callable[..., Stack],
) -> None:
    stack = _stack_with(stack_factory, 'idle_timeout_s = "2"')
    with socket.create_connection(("127.0.0.1", stack.port), timeout=15) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the blank line
        started = time.monotonic()
        assert sock.recv(100) == b""
        assert 1.5 < time.monotonic() - started < 10
