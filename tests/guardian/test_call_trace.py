"""One sealed completion, traced frame by frame (`sys.setprofile`) on the in-memory outbound:
it goes straight through plan -> run -> meter, and its request body is encoded once per
attempt.

What counts. Every new Python frame of a module of the call path (`guardian.calls.*`) is an
entry into that module, unless one of its callers up the stack is in the same module already
(a module calling its own helpers, or a layer calling down the stack, stays in its module). A
module entered a second time after it was left has been re-entered: the path bounced back.
Leaves are exempt: pure arithmetic and value types (costs, usage figures, the call budget,
the record, the job, the chain's outcomes) may be called from any stage, as the standard
library is; the test checks they never call back into the path. A coroutine resumed after an
await is the same frame, not a new entry.
"""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from guardian.calls.memory_outbound import Reply
from tests.guardian.test_call_matrix import ok, status, world

PATH = "guardian.calls"
LEAVES = {
    f"{PATH}.{name}"
    for name in ("costs", "usage_figures", "call_budget", "record", "job", "outcomes")
}
#: The stages of a completion, and the modules of each, in the order they run.
STAGES = {
    "plan": {f"{PATH}.planning"},
    "run": {
        f"{PATH}.{name}"
        for name in (
            "run",
            "model_rates",
            "retries",
            "keys",
            "provider_slots",
            "exchange",
            "outbound",
            "memory_outbound",
            "streaming",
        )
    },
    "meter": {f"{PATH}.metering"},
}
#: A long prompt, so that its encodings stand out from every other JSON encoded.
PROMPT = "tell me about " + "sealed calls " * 8_000


def module_of(frame: types.FrameType) -> str:
    return str(frame.f_globals.get("__name__", ""))


@dataclass
class Trace:
    entries: list[str] = field(default_factory=list)  # modules, in the order entered
    reentered: list[str] = field(default_factory=list)
    leaf_callbacks: list[str] = field(default_factory=list)
    encodings: list[str] = field(default_factory=list)  # long JSON texts encoded
    _frames: set[int] = field(default_factory=set)
    _keep: list[types.FrameType] = field(default_factory=list)

    def profile(self, frame: types.FrameType, event: str, arg: Any) -> None:
        if event == "return" and frame.f_code is json.dumps.__code__:
            if isinstance(arg, str) and len(arg) > len(PROMPT):
                self.encodings.append(arg)
            return
        if event != "call" or id(frame) in self._frames:
            return  # not a call, or a coroutine resumed after an await
        self._frames.add(id(frame))
        self._keep.append(frame)  # no id is reused while the trace runs
        module = module_of(frame)
        if not module.startswith(PATH):
            return
        callers = []
        caller = frame.f_back
        while caller is not None:
            callers.append(module_of(caller))
            caller = caller.f_back
        path_callers = [m for m in callers if m.startswith(PATH)]
        if module not in LEAVES and path_callers and path_callers[0] in LEAVES:
            self.leaf_callbacks.append(f"{path_callers[0]} -> {module}")
        if module in LEAVES or module in callers:
            return
        if module in self.entries:
            self.reentered.append(module)
        self.entries.append(module)

    def stages(self) -> list[str]:
        """The stage of each entry, repeats folded: plan, run, meter when straight."""
        names = [
            stage for module in self.entries for stage, mods in STAGES.items() if module in mods
        ]
        return [name for i, name in enumerate(names) if i == 0 or names[i - 1] != name]


@contextmanager
def traced() -> Iterator[Trace]:
    trace = Trace()
    sys.setprofile(trace.profile)
    try:
        yield trace
    finally:
        sys.setprofile(None)


async def test_a_completion_goes_straight_through_plan_run_meter() -> None:
    w = world({"p0": [ok()]})
    with traced() as trace:
        answer = await w.complete(prompt=PROMPT)
    assert answer["provider"] == "p0"
    assert trace.reentered == [], f"re-entered {trace.reentered} in {trace.entries}"
    assert trace.leaf_callbacks == []
    assert trace.stages() == ["plan", "run", "meter"]
    # the door, the plan, the run, then the declared layers outermost first, then the meter
    assert trace.entries == [
        f"{PATH}.router",
        f"{PATH}.planning",
        f"{PATH}.run",
        f"{PATH}.model_rates",
        f"{PATH}.retries",
        f"{PATH}.keys",
        f"{PATH}.provider_slots",
        f"{PATH}.exchange",
        f"{PATH}.memory_outbound",
        f"{PATH}.metering",
    ]


def body_encodings(trace: Trace, w: Any) -> int:
    """How many of the long encodings are a body that was sent."""
    bodies = {s.call.body for s in w.outbound.sent}
    return sum(text.encode() in bodies for text in trace.encodings)


async def test_one_body_encoding_per_attempt_on_the_straight_path() -> None:
    w = world({"p0": [ok()]})
    with traced() as trace:
        await w.complete(prompt=PROMPT)
    # one to bound the input tokens, once per call; one body for the one attempt
    assert len(trace.encodings) == 2
    assert body_encodings(trace, w) == 1


async def test_one_body_encoding_per_attempt_along_a_fallback() -> None:
    w = world({"p0": [status(500)], "p1": [status(503)], "p2": [ok()]})
    with traced() as trace:
        answer = await w.complete(prompt=PROMPT)
    assert answer["provider"] == "p2"
    assert len(trace.encodings) == 1 + 3
    assert body_encodings(trace, w) == 3


async def test_retries_and_other_keys_resend_the_attempts_one_encoding() -> None:
    w = world({"p0": [status(503), status(401), Reply(fail="connection"), ok()]}, retry_count=2)
    with traced() as trace:
        answer = await w.complete(prompt=PROMPT)
    assert answer["provider"] == "p0" and len(w.outbound.sent) == 4
    assert len(trace.encodings) == 1 + 1
    assert body_encodings(trace, w) == 1
