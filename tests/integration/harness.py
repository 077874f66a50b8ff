"""In-process orchestration for tests that need to steer agents (fail, block, count runs)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

from redis.asyncio import Redis

from app.agents.base import ProgressFn, StepInput, StepOutput, _no_progress
from app.config import Settings
from app.keys import Keys
from app.models import Plan, PlanStep
from app.orchestration.runtime import WorkerRuntime
from app.orchestration.store import TaskStore
from app.redis_client import make_redis

BENCH_PLAN = Plan(
    steps=[
        PlanStep(id="retrieve_1", agent="retriever", instruction="a"),
        PlanStep(id="retrieve_2", agent="retriever", instruction="b"),
        PlanStep(
            id="analyze", agent="analyzer", instruction="c", depends_on=["retrieve_1", "retrieve_2"]
        ),
        PlanStep(id="write", agent="writer", instruction="d", depends_on=["analyze"]),
    ]
)


def command_calls(commandstats: dict[str, Any]) -> Counter[str]:
    """Calls per command in an ``INFO commandstats`` reply (a script's own calls included): the
    difference of two tells what the server ran in between, whatever the timing."""
    return Counter(
        {name.removeprefix("cmdstat_"): int(stats["calls"]) for name, stats in commandstats.items()}
    )


class ScriptedAgent:
    """Counts runs; optionally sleeps, or fails the first ``fail_times`` attempts (or always)."""

    def __init__(
        self,
        name: str,
        delay_s: float = 0.0,
        fail_times: int = 0,
        error: type[Exception] = RuntimeError,
        tokens: int = 0,
        chunks: int = 1,
    ) -> None:
        self.name = name
        self.delay_s = delay_s
        self.fail_times = fail_times
        self.error = error
        self.tokens = tokens
        self.chunks = chunks
        self.budgets: list[int | None] = []
        self.runs: Counter[tuple[str, str]] = Counter()
        self.run_times: list[float] = []

    async def run(self, step: StepInput, progress: ProgressFn = _no_progress) -> StepOutput:
        self.runs[(step.task_id, step.step_id)] += 1
        self.budgets.append(step.budget_tokens_left)
        self.run_times.append(time.monotonic())
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail_times < 0 or self.runs[(step.task_id, step.step_id)] <= self.fail_times:
            raise self.error(f"scripted failure of {step.step_id}")
        for i in range(self.chunks):
            await progress(f"{self.name} did {step.step_id} #{i}\n")
        return StepOutput(
            tokens_out=self.tokens,
            data={
                "step": step.step_id,
                "inputs": sorted(step.inputs),
                "markdown": f"# {step.step_id}",
            },
            summary=f"{step.step_id} ok",
            cost_units=1.0,
        )


def agents(**overrides: ScriptedAgent) -> dict[str, Any]:
    out: dict[str, Any] = {n: ScriptedAgent(n) for n in ("retriever", "analyzer", "writer")}
    out.update(overrides)
    return out


class Harness:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.redis: Redis = make_redis(settings)
        self.keys = Keys(settings.prefix)
        self.store = TaskStore(self.redis, self.keys, ttl_s=settings.task_ttl_s)
        self.runtimes: list[WorkerRuntime] = []

    async def start_worker(
        self, agent_map: dict[str, Any], name: str | None = None
    ) -> WorkerRuntime:
        runtime = WorkerRuntime(self.redis, self.settings, agent_map, name=name)
        await runtime.start()
        self.runtimes.append(runtime)
        return runtime

    async def wait_state(self, task_id: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = await self.redis.hget(self.keys.task(task_id), "state")
            if state and state != "running":
                return str(state)
            await asyncio.sleep(0.02)
        raise TimeoutError(f"task {task_id} still running")

    async def events(self, task_id: str) -> list[dict[str, Any]]:
        import orjson

        entries = await self.redis.xrange(self.keys.events(task_id))
        return [dict(orjson.loads(f["data"]), id=i) for i, f in entries]

    async def close(self) -> None:
        for runtime in self.runtimes:
            await runtime.shutdown()
        await self.redis.aclose()
