"""What `get_model_info` shows of one model: SealGate's keys and the original hub's names
for the same facts (`context_tokens`, costs per 1k tokens), so either kind of client reads it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from protocol.pyfun import ModelConfig


def _per_1k(per_1m: float | None) -> float | None:
    # through the float's decimal text: 1.1 per 1m shows as 0.0011, not 0.0011000000000000001
    return None if per_1m is None else float(Decimal(repr(per_1m)) / 1000)


def model_entry(
    model_id: str, owner: str, active: bool, entry: ModelConfig | None
) -> dict[str, Any]:
    return {
        "id": model_id,
        "provider": owner,
        "provider_active": active,
        "max_output_tokens": entry.max_output_tokens if entry else None,
        "requests_per_min": entry.requests_per_min if entry else None,
        "requests_per_day": entry.requests_per_day if entry else None,
        "cost_input_per_1m": entry.cost_input_per_1m if entry else None,
        "cost_output_per_1m": entry.cost_output_per_1m if entry else None,
        "cost_input_per_1k": _per_1k(entry.cost_input_per_1m) if entry else None,
        "cost_output_per_1k": _per_1k(entry.cost_output_per_1m) if entry else None,
        "context_window": entry.context_window if entry else None,
        "context_tokens": entry.context_window if entry else None,
        "capabilities": list(entry.capabilities) if entry else [],
    }
