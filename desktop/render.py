"""A chat as Markdown (Qt renders it, code blocks included), with the hub's report per answer."""

from __future__ import annotations

import json
import time
from typing import Any

from desktop.store import Chat, Message


def meta_line(meta: dict[str, Any]) -> str:
    """Model, provider, fallback path, tokens and cost, as the hub reported them."""
    if not meta:
        return ""
    parts = []
    if meta.get("model"):
        parts.append(f"model {meta['model']}")
    if meta.get("provider"):
        parts.append(f"provider {meta['provider']}")
    path = meta.get("fallback_path") or []
    if path:
        steps = " → ".join(f"{s.get('provider')} ({s.get('error')})" for s in path)
        parts.append(f"fallback {steps} → {meta.get('provider', '?')}")
    if meta.get("input_tokens") is not None or meta.get("output_tokens") is not None:
        parts.append(
            f"{meta.get('input_tokens', 0)} in / {meta.get('output_tokens', 0)} out tokens"
        )
    if meta.get("cost_usd") is not None:
        parts.append(f"${float(meta['cost_usd']):.6f}")
    if meta.get("stopped"):
        parts.append("stopped")
        if meta.get("cost_usd") is None:
            parts.append(stopped_cost(meta))
    return " · ".join(parts)


def stopped_cost(meta: dict[str, Any]) -> str:
    """A stopped stream ends before the hub's report, and the hub bills what was used: say
    what it can have cost at most, bounded as the hub bounds it (a token per byte)."""
    bound = meta.get("cost_bound_usd")
    if bound is None:
        return "cost not reported (stopped before the hub's report; no price known)"
    return (
        f"at most ${float(bound):.6f} (≤ {meta.get('input_bound', '?')} in / "
        f"≤ {meta.get('output_bound', '?')} out tokens; stopped before the hub's report)"
    )


def _clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at))


def message_markdown(message: Message) -> str:
    if message.role == "user":
        head = f"**You** · {_clock(message.at)}"
        if message.tool and message.tool != "llm_complete":
            head += f" · {message.tool}"
        files = "".join(f"\n\n📎 {name}" for name in message.attachments)
        return f"{head}{files}\n\n{message.text}"
    if message.role == "error":
        return f"**⚠ {message.text}**"
    head = f"**Assistant** · {_clock(message.at)}"
    line = meta_line(message.meta)
    return f"{head}\n\n{message.text}" + (f"\n\n*{line}*" if line else "")


def chat_markdown(chat: Chat | None, pending: str | None = None) -> str:
    """The whole transcript; `pending` is an answer still streaming in."""
    if chat is None:
        return "*No chat yet: press New.*"
    blocks = [message_markdown(m) for m in chat.messages]
    if pending is not None:
        blocks.append(f"**Assistant** · streaming…\n\n{pending}")
    return "\n\n---\n\n".join(blocks)


def tool_result_markdown(result: dict[str, Any]) -> str:
    """`/api` results: a completion's text, search results, or query rows."""
    if isinstance(result.get("text"), str):
        return result["text"]
    if isinstance(result.get("results"), list):
        lines = [result["answer"], ""] if result.get("answer") else []
        for r in result["results"]:
            lines.append(f"- [{r.get('title', '')}]({r.get('url', '')}): {r.get('snippet', '')}")
        return "\n".join(lines) or "no results"
    if isinstance(result.get("rows"), list):
        columns = result.get("columns") or (list(result["rows"][0]) if result["rows"] else [])
        names = [c if isinstance(c, str) else str(c) for c in columns]
        lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
        for row in result["rows"]:
            values = row.values() if isinstance(row, dict) else row
            lines.append("| " + " | ".join(str(v) for v in values) + " |")
        return "\n".join(lines)
    return "```json\n" + json.dumps(result, indent=1) + "\n```"
