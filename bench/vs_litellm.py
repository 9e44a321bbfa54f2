"""SealGate against its peers (LiteLLM proxy, Portkey's gateway) and its limit rows, side by
side in one run, on one fake provider on loopback.

    .venv/bin/python bench/vs_litellm.py [--seconds 5]

Rows at concurrency 1 and 16 (wrk with a Lua body, or a Python load generator when wrk is
missing): the fake directly (the floor), bare hypercorn answering fixed JSON (the server
limit), one hypercorn + Starlette process relaying through aiohttp (the one-process limit of
this design: no split, no auth, no metering), SealGate `/v1/chat/completions` non-streaming,
the same request as Anthropic's `/v1/messages` dialect, LiteLLM proxy and Portkey's gateway
(bench/portkey.py) on the same fake, then
SealGate streaming (time to first chunk) and MCP `llm_complete` over Streamable HTTP. Then
1,000 open streams (legacy /sse sessions, then Streamable HTTP sessions) and the sandbox's
RSS. LiteLLM lives in its own venv, bench/.litellm-venv (`pip install
'litellm[proxy]==1.108.7'`), never a project dependency; without it its row says so.
Everything stays on 127.0.0.1 and every loop is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import portkey
from bench.common import FakeProcess, LimitProcess, Row, machine_line, percentile, wrk
from tests.e2e.mcp_client import mcp_session
from tests.helpers import Stack, free_port

ROOT = Path(__file__).resolve().parent.parent
LITELLM = ROOT / "bench" / ".litellm-venv" / "bin" / "litellm"
BODY = {"model": "bench-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 64}
#: The same request in Anthropic's Messages dialect (`/v1/messages`), to the same fake.
MESSAGES_BODY = {"model": "bench-model", "max_tokens": 64, "messages": BODY["messages"]}


def stack_config(base: str) -> str:
    return f"""[HUB]
max_streams_per_principal = "5000"
[HUB_END]
[LLM_PROVIDER.fake]
api = "openai"
base_url = "{base}"
allow_insecure = "true"
requires_key = "false"
default_model = "bench-model"
[LLM_PROVIDER.fake_END]
"""


async def python_load(
    url: str, concurrency: int, seconds: int, body: dict[str, object], headers: dict[str, str]
) -> Row:
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(
        timeout=30, headers=headers, limits=httpx.Limits(max_connections=concurrency)
    ) as client:

        async def worker() -> None:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                (await client.post(url, json=body)).raise_for_status()
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return Row(
        url,
        concurrency,
        percentile(latencies, 0.5) * 1e3,
        percentile(latencies, 0.99) * 1e3,
        len(latencies) / elapsed,
    )


async def load(
    label: str,
    url: str,
    concurrency: int,
    seconds: int,
    headers: dict[str, str] | None = None,
    body: dict[str, object] | None = None,
) -> Row:
    body = body or BODY
    row = wrk(url, concurrency, seconds, body, headers or {})
    if row is None:
        row = await python_load(url, concurrency, seconds, body, headers or {})
    row.label = label
    return row


async def first_chunk(
    url: str, concurrency: int, calls: int, label: str = "SealGate streaming (time to first chunk)"
) -> Row:
    """Time to the first content chunk of a streaming completion."""
    latencies: list[float] = []
    async with httpx.AsyncClient(timeout=30) as client:

        async def worker() -> None:
            for _ in range(max(1, calls // concurrency)):
                started = time.perf_counter()
                async with client.stream("POST", url, json={**BODY, "stream": True}) as reply:
                    first = True
                    async for line in reply.aiter_lines():  # read to the end, time the first
                        if first and '"content": "' in line and '"content": ""' not in line:
                            latencies.append(time.perf_counter() - started)
                            first = False

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return Row(
        label,
        concurrency,
        percentile(latencies, 0.5) * 1e3,
        percentile(latencies, 0.99) * 1e3,
        len(latencies) / elapsed,
    )


async def mcp_rows(
    url: str, concurrency: int, calls: int, label: str = "MCP llm_complete (Streamable HTTP)"
) -> Row:
    latencies: list[float] = []
    failures: list[str] = []

    async def session(count: int) -> int:
        done = 0
        async with mcp_session(url) as client:
            for index in range(count + 1):
                started = time.perf_counter()
                await client.call_tool("llm_complete", {"prompt": "hi"})
                if index:
                    latencies.append(time.perf_counter() - started)
                    done += 1
        return done

    async def worker() -> None:
        # A session the server drops ends that session, not the whole run: counted, and
        # the worker opens another (at most three times).
        left = max(2, calls // concurrency)
        while left > 0 and len(failures) < 3 * concurrency:
            try:
                left -= await session(left)
            except Exception as exc:  # the row reports it and goes on
                failures.append(type(exc).__name__)
                left -= 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    if failures:
        print(f"    ({len(failures)} MCP session(s) failed in {label!r}: {sorted(set(failures))})")
    if not latencies:
        return Row(label, concurrency, float("nan"), float("nan"), 0.0)
    return Row(
        label,
        concurrency,
        percentile(latencies, 0.5) * 1e3,
        percentile(latencies, 0.99) * 1e3,
        len(latencies) / elapsed,
    )


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def hold_streams(stack: Stack, count: int) -> tuple[float, float, int]:
    """Open `count` legacy SSE streams, then `count` Streamable HTTP sessions with their GET
    streams; the sandbox's RSS with each set open, and how many opened."""
    sandbox = stack.pid_of("sandbox")
    baseline = rss_mb(sandbox)
    writers = []
    for _ in range(count):
        reader, writer = await asyncio.open_connection("127.0.0.1", stack.port)
        writer.write(b"GET /sse/ HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
        await writer.drain()
        await asyncio.wait_for(reader.readuntil(b"event: endpoint"), 30)
        writers.append(writer)
    sse_rss = rss_mb(sandbox)
    for writer in writers:
        writer.close()
    await asyncio.sleep(1.0)
    opened = 0
    init = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "bench", "version": "1"},
            },
        }
    )
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    async with httpx.AsyncClient(
        timeout=30, limits=httpx.Limits(max_connections=count + 10)
    ) as client:
        streams = []
        for _ in range(count):
            reply = await client.post(f"{stack.url}/mcp/", content=init, headers=headers)
            session = reply.headers.get("mcp-session-id", "")
            request = client.build_request(
                "GET",
                f"{stack.url}/mcp/",
                headers={
                    "accept": "text/event-stream",
                    "mcp-session-id": session,
                    "mcp-protocol-version": "2025-11-25",
                },
            )
            streams.append(await client.send(request, stream=True))
            opened += streams[-1].status_code == 200
        http_rss = rss_mb(sandbox)
        for stream in streams:
            await stream.aclose()
    print(f"  sandbox RSS idle {baseline:.0f} MB")
    return sse_rss, http_rss, opened


def start_litellm(base: str) -> tuple[subprocess.Popen[bytes] | None, str, str]:
    if not LITELLM.exists():
        return (
            None,
            "",
            "not installed (pip install 'litellm[proxy]==1.108.7' into bench/.litellm-venv)",
        )
    port = free_port()
    config = Path(tempfile.mkdtemp(prefix="litellm-")) / "config.yaml"
    config.write_text(f"""model_list:
  - model_name: bench-model
    litellm_params:
      model: openai/bench-model
      api_base: {base}
      api_key: fake
""")
    env = {
        **os.environ,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_MASTER_KEY": "sk-bench",
        "LITELLM_LOG": "ERROR",
        "NO_PROXY": "*",
    }
    process = subprocess.Popen(
        [
            str(LITELLM),
            "--config",
            str(config),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--num_workers",
            "2",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health/liveliness", timeout=1).status_code == 200:
                version = subprocess.run(
                    [
                        str(LITELLM.parent / "python"),
                        "-c",
                        "import importlib.metadata as m; print(m.version('litellm'))",
                    ],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                return process, url, f"LiteLLM {version.stdout.strip()}, 2 workers"
        except httpx.HTTPError:
            time.sleep(0.5)
    process.kill()
    return None, "", "did not start within 120 s"


def ratios(
    floor: dict[int, Row],
    limit: dict[int, Row],
    sealgate: dict[int, Row],
    lite: dict[int, Row],
    peer: dict[int, Row],
    one_process: dict[int, Row],
    mcp: dict[int, Row],
) -> None:
    """The figures the performance targets (issue 33) are stated in, from this run's rows."""

    def share(a: Row, b: Row) -> str:
        return f"{a.per_s / b.per_s:.2f}" if b.per_s else "n/a"

    print("\n  Against the targets (this run):")
    if peer:
        print(
            f"    1. /v1 req/s at 16 / Portkey's: {share(sealgate[16], peer[16])}x (>= 1.3);"
            f" p50 at 1: SealGate {sealgate[1].p50_ms:.2f} ms, Portkey {peer[1].p50_ms:.2f} ms"
            " (no worse)"
        )
    else:
        print("    1. Portkey row skipped: no ratio")
    if lite:
        print(f"    1. /v1 req/s at 16 / LiteLLM's: {share(sealgate[16], lite[16])}x (>= 10)")
    print(
        f"    2. /v1 req/s at 16 / one-process relay's: {share(sealgate[16], limit[16])}"
        f" (>= 0.90); added p50 at 1 over it: {sealgate[1].p50_ms - limit[1].p50_ms:+.2f} ms"
        " (<= 0.25)"
    )
    print(
        f"    6. p99/p50 at 16: SealGate {sealgate[16].p99_ms / sealgate[16].p50_ms:.1f},"
        f" floor {floor[16].p99_ms / floor[16].p50_ms:.1f} (no worse);"
        f" MCP added p50 at 1 over one fastmcp process:"
        f" {mcp[1].p50_ms - one_process[1].p50_ms:+.2f} ms (<= 0.5);"
        f" calls/s at 16 / its: {share(mcp[16], one_process[16])} (>= 0.90)"
    )


def show(rows: list[Row], floor: dict[int, Row]) -> None:
    print(f"  {'what':<42} {'c':>3} {'p50 ms':>8} {'p99 ms':>8} {'added p50':>10} {'req/s':>9}")
    for row in rows:
        added = (
            "" if row in floor.values() else f"{row.p50_ms - floor[row.concurrency].p50_ms:+.2f}"
        )
        print(
            f"  {row.label:<42} {row.concurrency:>3} {row.p50_ms:>8.2f} {row.p99_ms:>8.2f}"
            f" {added:>10} {row.per_s:>9,.0f}"
        )


async def run(seconds: int, streams: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 8 * streams)), hard))
    print("SealGate vs LiteLLM, one fake OpenAI-compatible provider on loopback")
    print(machine_line() + f"; load generator: {'wrk' if shutil.which('wrk') else 'python'}")
    with (
        FakeProcess() as fake,
        LimitProcess("bare") as bare,
        LimitProcess("relay", "--upstream", fake.base) as one_relay,
        LimitProcess("fastmcp", "--upstream", fake.base) as relay,
    ):
        stack = Stack(config_text=stack_config(fake.base), single_uid=True)
        stack.start()
        litellm, litellm_url, litellm_note = start_litellm(fake.base)
        print(f"  LiteLLM: {litellm_note}")
        gateway, gateway_url, gateway_note = portkey.start(fake.base)
        print(f"  Portkey: {gateway_note}")
        try:
            floor = {
                c: await load(
                    "fake provider directly (floor)", f"{fake.base}/chat/completions", c, seconds
                )
                for c in (1, 16)
            }
            rows = list(floor.values())
            server = {
                c: await load(
                    "bare hypercorn app (server limit)", f"{bare.base}/chat/completions", c, seconds
                )
                for c in (1, 16)
            }
            rows += server.values()
            limit = {
                c: await load(
                    "one process relaying via aiohttp (limit)",
                    f"{one_relay.base}/chat/completions",
                    c,
                    seconds,
                )
                for c in (1, 16)
            }
            rows += limit.values()
            sealgate = {
                c: await load(
                    "SealGate /v1/chat/completions", f"{stack.url}/v1/chat/completions", c, seconds
                )
                for c in (1, 16)
            }
            rows += sealgate.values()
            rows += [
                await load(
                    "SealGate /v1/messages (Anthropic dialect)",
                    f"{stack.url}/v1/messages",
                    c,
                    seconds,
                    body=MESSAGES_BODY,
                )
                for c in (1, 16)
            ]
            lite: dict[int, Row] = {}
            if litellm is not None:
                lite = {
                    c: await load(
                        "LiteLLM proxy /v1/chat/completions",
                        f"{litellm_url}/v1/chat/completions",
                        c,
                        seconds,
                        {"Authorization": "Bearer sk-bench"},
                    )
                    for c in (1, 16)
                }
                rows += lite.values()
            peer: dict[int, Row] = {}
            if gateway is not None:
                peer = {
                    c: await load(
                        "Portkey gateway /v1/chat/completions",
                        f"{gateway_url}/v1/chat/completions",
                        c,
                        seconds,
                        portkey.headers(fake.base),
                    )
                    for c in (1, 16)
                }
                rows += peer.values()
            floor_chunk = "fake provider streaming (floor, time to first chunk)"
            for c in (1, 16):
                rows.append(await first_chunk(f"{fake.base}/chat/completions", c, 400, floor_chunk))
                rows.append(await first_chunk(f"{stack.url}/v1/chat/completions", c, 400))
            one_process = {
                c: await mcp_rows(relay.url, c, 400, "one fastmcp process relaying (MCP limit)")
                for c in (1, 16)
            }
            mcp = {c: await mcp_rows(stack.url, c, 400) for c in (1, 16)}
            rows += [*one_process.values(), *mcp.values()]
            show(rows, floor)
            ratios(floor, limit, sealgate, lite, peer, one_process, mcp)
            sse_rss, http_rss, opened = await hold_streams(stack, streams)
            print(f"  sandbox RSS with {streams} legacy /sse streams open: {sse_rss:.0f} MB")
            print(f"  sandbox RSS with {opened} Streamable HTTP streams open: {http_rss:.0f} MB")
            most = max(sse_rss, http_rss)
            print(f"    6. {streams:,} open streams: {most:.0f} MB (<= 250 for 1,000)")
        finally:
            if litellm is not None:
                litellm.terminate()
                litellm.wait(20)
            if gateway is not None:
                gateway.terminate()
                gateway.wait(20)
            stack.stop()
            stack.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="per row (max 60)")
    parser.add_argument("--streams", type=int, default=1000, help="streams to hold (max 2000)")
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(run(max(1, min(args.seconds, 60)), max(1, min(args.streams, 2000))))


if __name__ == "__main__":
    main()
