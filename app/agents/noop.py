"""No-op agents (``AGENTIC_EXECUTOR=noop``): sleep ``noop_delay_ms``, then return at once.

They let benchmarks and fault tests measure the orchestration alone. Cost: 0 units.
"""

from __future__ import annotations

import asyncio

from app.agents.base import ProgressFn, StepInput, StepOutput, _no_progress


class NoopAgent:
    def __init__(self, name: str, delay_ms: int = 0) -> None:
        self.name = name
        self.delay_ms = delay_ms

    async def run(self, step: StepInput, progress: ProgressFn = _no_progress) -> StepOutput:
        if self.delay_ms > 0:
            await asyncio.sleep(self.delay_ms / 1000)
        data: dict[str, object] = {"noop": True, "agent": self.name, "step_id": step.step_id}
        if self.name == "writer":  # so a no-op task still has an output to show
            data["markdown"] = f"(noop) {step.instruction}"
        return StepOutput(data=data, summary="noop", cost_units=0.0)
