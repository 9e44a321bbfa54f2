"""A model's own request limits: `requests_per_min` and `requests_per_day` of its
`[MODEL.<id>]` block, counted in the guardian for every caller together (the provider's
quota is one, whoever asks). The day is a UTC day, as providers count theirs."""

from __future__ import annotations

from guardian.limits import Limits
from protocol.pyfun import ModelConfig


async def admit_model(limits: Limits | None, model_id: str, model: ModelConfig | None) -> None:
    """Count one request to `model_id`; raise `RateLimited` when a limit is passed."""
    if limits is None or model is None:
        return
    if model.requests_per_min:
        await limits.hit(f"model:{model_id}", model.requests_per_min, f"model {model_id}")
    if model.requests_per_day:
        await limits.hit_daily(f"model:{model_id}", model.requests_per_day, f"model {model_id}")
