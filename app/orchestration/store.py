"""Task-level operations used by the API: submit, read, cancel, metrics.

The task hash holds task fields and ``<step>|<field>`` step fields (one HGETALL reads a whole
task); the scripts in ``lua/`` are its only writers.
"""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any, cast

import orjson

from app.errors import TaskConflict, TaskNotFound
from app.keys import Keys
from app.models import (
    Plan,
    StepMetrics,
    StepPublic,
    StepState,
    TaskMetrics,
    TaskPublic,
    TaskState,
    TaskSummary,
)
from app.orchestration.scripts import Scripts

if TYPE_CHECKING:
    from redis.asyncio import Redis


TASK_ID = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")


def new_task_id() -> str:
    return uuid.uuid4().hex


def checked(task_id: str) -> str:
    """A task id that cannot name another key (``<id>:events`` would hit the event stream with
    a hash command and fail with WRONGTYPE): anything else is simply not a task."""
    if not TASK_ID.match(task_id):
        raise TaskNotFound(task_id)
    return task_id


def task_state(task_id: str, raw: object) -> TaskState:
    """The task's ``state`` field as read from its hash; None (no hash) is an unknown task."""
    if raw is None:
        raise TaskNotFound(task_id)
    return TaskState(str(raw))


def _int(value: str | None) -> int | None:
    return None if value is None or value == "" else int(float(value))


class TaskStore:
    def __init__(self, redis: Redis, keys: Keys, *, ttl_s: int) -> None:
        self.redis = redis
        self.keys = keys
        self.ttl_s = ttl_s
        self.scripts = Scripts(redis)

    async def submit(self, user_input: str, plan: Plan, task_id: str | None = None) -> str:
        """Create the task and queue its first steps in one atomic script call."""
        task_id = task_id or new_task_id()
        plan_json = plan.model_dump_json(include={"steps"})
        await self.scripts.call(
            "submit", self.keys.prefix, task_id, user_input, plan_json, plan.planner, self.ttl_s
        )
        return task_id

    async def cancel(self, task_id: str, reason: str = "cancelled by request") -> None:
        checked(task_id)
        result = int(
            await self.scripts.call("cancel", self.keys.prefix, task_id, self.ttl_s, reason)
        )
        if result == -1:
            raise TaskNotFound(task_id)
        if result == 0:
            raise TaskConflict(f"task {task_id!r} has already finished")

    async def _load(self, task_id: str) -> dict[str, str]:
        checked(task_id)
        fields: dict[str, str] = cast(
            dict[str, str], await self.redis.hgetall(self.keys.task(task_id))
        )
        if not fields or "state" not in fields:
            raise TaskNotFound(task_id)
        return fields

    async def recent(self, limit: int = 50) -> list[TaskSummary]:
        """Newest first; ids whose keys have expired are dropped from the index on the way."""
        ids = cast(list[str], await self.redis.zrevrange(self.keys.tasks_index, 0, limit - 1))
        fields = ("state", "user_input", "planner", "created_ms", "finished_ms", "n_steps")
        async with self.redis.pipeline(transaction=False) as pipe:
            for task_id in ids:
                pipe.hmget(self.keys.task(task_id), fields)
            rows: list[list[str | None]] = await pipe.execute()
        out: list[TaskSummary] = []
        gone = []
        for task_id, (state, user_input, planner, created, finished, n_steps) in zip(
            ids, rows, strict=True
        ):
            if state is None or created is None:
                gone.append(task_id)
                continue
            out.append(
                TaskSummary(
                    task_id=task_id,
                    state=TaskState(state),
                    user_input=(user_input or "")[:500],
                    planner=planner or "offline",
                    created_at_ms=int(created),
                    finished_at_ms=_int(finished),
                    steps=int(n_steps or 0),
                )
            )
        if gone:
            await self.redis.zrem(self.keys.tasks_index, *gone)
        return out

    async def state(self, task_id: str) -> TaskState:
        checked(task_id)
        return task_state(task_id, await self.redis.hget(self.keys.task(task_id), "state"))

    async def exists(self, task_id: str) -> bool:
        return bool(await self.redis.exists(self.keys.task(task_id)))

    async def get(self, task_id: str, *, with_results: bool = True) -> TaskPublic:
        fields = await self._load(task_id)
        plan = Plan.model_validate_json(fields["plan"])
        plan.planner = fields.get("planner", "offline")
        steps = [
            _step_public(fields, s.id, s.instruction, s.depends_on, with_results)
            for s in plan.steps
        ]
        return TaskPublic(
            task_id=task_id,
            state=TaskState(fields["state"]),
            user_input=fields["user_input"],
            planner=plan.planner,
            created_at_ms=int(fields["created_ms"]),
            finished_at_ms=_int(fields.get("finished_ms")),
            plan=plan,
            steps=steps,
            output=fields.get("output"),
            error=fields.get("error"),
        )

    async def metrics(self, task_id: str) -> TaskMetrics:
        fields = await self._load(task_id)
        plan = Plan.model_validate_json(fields["plan"])
        steps = [_step_metrics(fields, s.id) for s in plan.steps]
        return TaskMetrics(
            task_id=task_id,
            state=TaskState(fields["state"]),
            latency_ms=_int(fields.get("latency_ms")),
            created_at_ms=int(fields["created_ms"]),
            finished_at_ms=_int(fields.get("finished_ms")),
            attempts_total=sum(s.attempts for s in steps),
            retries_total=sum(max(0, s.attempts - 1) for s in steps),
            queue_wait_ms_total=sum(s.queue_wait_ms or 0 for s in steps),
            run_ms_total=sum(s.run_ms or 0 for s in steps),
            cost_units=round(float(fields.get("cost_units", 0)), 6),
            tokens_in=int(fields.get("tokens_in", 0)),
            tokens_out=int(fields.get("tokens_out", 0)),
            steps=steps,
        )


def _step_public(
    fields: dict[str, str], sid: str, instr: str, deps: list[str], with_result: bool
) -> StepPublic:
    def f(name: str) -> str | None:
        return fields.get(f"{sid}|{name}")

    raw = fields.get(f"{sid}|result") if with_result else None
    result: dict[str, Any] | None = orjson.loads(raw) if raw else None
    return StepPublic(
        id=sid,
        agent=f("agent") or "",
        instruction=instr,
        depends_on=deps,
        state=StepState(f("state") or "pending"),
        attempt=int(f("attempt") or 1),
        queued_at_ms=_int(f("queued_ms")),
        started_at_ms=_int(f("started_ms")),
        finished_at_ms=_int(f("finished_ms")),
        error=f("error"),
        result=result,
    )


def _step_metrics(fields: dict[str, str], sid: str) -> StepMetrics:
    def f(name: str) -> str | None:
        return fields.get(f"{sid}|{name}")

    return StepMetrics(
        step_id=sid,
        agent=f("agent") or "",
        state=StepState(f("state") or "pending"),
        attempts=int(f("runs") or 0),
        queue_wait_ms=_int(f("queue_wait_ms")),
        run_ms=_int(f("run_ms")),
        cost_units=float(f("cost") or 0),
        tokens_in=int(f("tin") or 0),
        tokens_out=int(f("tout") or 0),
    )
