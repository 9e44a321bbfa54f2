"""The limit rows of `make bench`: what our own stack can do with none of SealGate in it.

    python bench/limit_servers.py bare     [--upstream URL]   # hypercorn answering fixed JSON
    python bench/limit_servers.py relay    --upstream URL     # Starlette relaying via aiohttp
    python bench/limit_servers.py fastmcp  --upstream URL     # one fastmcp process relaying

`bare` is a plain ASGI app on hypercorn (uvloop), answering `POST /v1/chat/completions` with
the JSON the fake provider answers: the HTTP server's own ceiling. `relay` is the one-process
limit of this design: hypercorn and Starlette relaying `POST /v1/chat/completions` to the fake
through one aiohttp session, with no split, no auth and no metering. `fastmcp` is one fastmcp 4
process on hypercorn serving an `llm_complete(prompt)` tool at `/mcp` that relays to the fake
with the guardian's own outbound client (`guardian.calls.outbound.HttpOutbound`): MCP with no
privilege split, no auth, no RPC. Each prints its port on the first line and serves on
127.0.0.1 until stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import uvloop
from hypercorn.asyncio import serve
from hypercorn.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ANSWER = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 0,
        "model": "bench-model",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "The quick brown fox jumps over the lazy dog.",
                },
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 9, "total_tokens": 12},
    }
).encode()


async def bare_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The least an ASGI app can do for a chat completion: read the body, answer JSON."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": ANSWER})


def relay_app(upstream: str) -> Any:
    """Starlette on hypercorn relaying the request body to the fake with aiohttp, as is."""
    import aiohttp
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    session: dict[str, aiohttp.ClientSession] = {}
    target = f"{upstream.rstrip('/')}/chat/completions"

    async def completions(request: Request) -> Response:
        body = await request.body()
        async with session["client"].post(
            target, data=body, headers={"content-type": "application/json"}
        ) as reply:
            content = await reply.read()
            return Response(content, reply.status, media_type="application/json")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        session["client"] = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=30)
        )
        try:
            yield
        finally:
            await session["client"].close()

    return Starlette(
        routes=[Route("/v1/chat/completions", completions, methods=["POST"])], lifespan=lifespan
    )


def fastmcp_app(upstream: str) -> Any:
    from fastmcp import FastMCP
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from guardian.calls.outbound import DEFAULT_MAX_RESPONSE_BYTES, HttpOutbound
    from guardian.providers.adapters import OpenAIAdapter
    from guardian.providers.types import ChatRequest
    from protocol.pyfun import ProviderConfig

    provider = ProviderConfig(
        name="fake", kind="llm", api="openai", base_url=upstream, env_keys=(), requires_key=False
    )
    adapter = OpenAIAdapter(provider)
    outbound = HttpOutbound()
    mcp = FastMCP("limit")

    @mcp.tool
    async def llm_complete(prompt: str) -> dict[str, Any]:
        """Relay a prompt to the fake provider, as SealGate's guardian would."""
        request = ChatRequest(model="bench-model", messages=[{"role": "user", "content": prompt}])
        body = await outbound.json(
            "fake",
            adapter.chat(None, request, stream=False),
            timeout=30,
            max_bytes=DEFAULT_MAX_RESPONSE_BYTES,
        )
        return {"text": adapter.parse_chat(body).text}

    http_app = mcp.http_app(path="/")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        async with http_app.lifespan(app):
            yield
        await outbound.aclose()

    return Starlette(routes=[Mount("/mcp", http_app)], lifespan=lifespan)


async def run(kind: str, upstream: str) -> None:
    app = {"bare": lambda _: bare_app, "relay": relay_app, "fastmcp": fastmcp_app}[kind](upstream)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    sock.set_inheritable(True)
    config = Config()
    config.bind = [f"fd://{sock.fileno()}"]
    config.accesslog = None
    print(sock.getsockname()[1], flush=True)
    await serve(app, config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=("bare", "relay", "fastmcp"))
    parser.add_argument("--upstream", default="http://127.0.0.1:9/v1")
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(run(args.kind, args.upstream))


if __name__ == "__main__":
    main()
