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
    PlanStep,
    StepMetrics,
    StepPublic,
    StepState,
    TaskMetrics,
    TaskPublic,
    TaskState,
    TaskSummary,
)
from app.orchestration.group_commit import GroupCommit
from app.orchestration.scripts import Scripts, event_head, event_json

if TYPE_CHECKING:
    from collections.abc import Callable

    from redis.asyncio import Redis

    from app.redis_lane import Lane


TASK_ID = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
#: Tasks per submit call: bounds the script's run time (other clients wait while it runs).
MAX_SUBMIT_BATCH = 32
#: An event of a task's log as its stream holds it: (entry id, type, data JSON).
LogEvent = tuple[str, str, str]


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


def submission(task_id: str, user_input: str, plan: Plan, *, chosen: bool = False) -> list[Any]:
    """submit.lua's arguments after the prefix: the new task hash (its field names in one
    argument, then their values), the root steps' entries and plan_created (which names the
    roots it queues). Laid out here rather than in the script because the server is the one
    part that every worker and API replica shares: building these fields in Lua was about half
    of submit's server time. The names go as one argument because each argument costs the
    server an object and a Lua string, and they repeat from task to task (the script keeps
    them split). ``chosen``: the client named the task id (the script then checks that no such
    task exists)."""
    steps = plan.steps
    plan_json = plan.model_dump_json(include={"steps"}).encode()
    dependents: dict[str, list[str]] = {s.id: [] for s in steps}
    for step in steps:
        for dep in dict.fromkeys(step.depends_on):
            dependents[dep].append(step.id)
    fields: list[Any] = [
        "state", "running", "user_input", user_input, "plan", plan_json,
        "planner", plan.planner, "steps", ",".join(s.id for s in steps), "n_steps", len(steps),
        "n_done", 0, "cost_units", 0, "tokens_in", 0, "tokens_out", 0,
        # The sinks, in plan order: their text is the task's output (complete.lua).
        "sinks", ",".join(s.id for s in steps if not dependents[s.id]),
    ]  # fmt: skip
    roots: dict[str, list[PlanStep]] = {}
    for step in steps:
        sid, ndeps = step.id, len(set(step.depends_on))
        fields += [
            f"{sid}|state", "pending" if ndeps else "queued", f"{sid}|attempt", 1,
            f"{sid}|agent", step.agent, f"{sid}|instr", step.instruction,
            f"{sid}|deps", ",".join(step.depends_on), f"{sid}|deps_left", ndeps,
            f"{sid}|dependents", ",".join(dependents[sid]), f"{sid}|sink", int(not dependents[sid]),
        ]  # fmt: skip
        if not ndeps:
            roots.setdefault(step.agent, []).append(step)
    plan_created = {
        "type": "plan_created",
        "planner": plan.planner,
        "task_id": task_id,
        "queued": [
            {"step_id": s.id, "agent": agent, "attempt": 1}
            for agent, batch in roots.items()
            for s in batch
        ],
    }
    head = event_head(plan_created, plan_json)
    args: list[Any] = [task_id, "1" if chosen else "0", head, ",".join(fields[::2]), *fields[1::2]]
    for agent, batch in roots.items():
        # The entry body as enqueue (common.lua) writes it, what its steps need to run: a
        # worker runs them from it before claiming them, and names their dependents (``d``)
        # when it records them. Change both together.
        body = {
            "u": user_input,
            "k": 0,
            "s": {
                s.id: {"a": 1, "i": s.instruction, "in": {}, "d": ",".join(dependents[s.id])}
                for s in batch
            },
        }
        args += [agent, ",".join(s.id for s in batch), orjson.dumps(body)]
    return args


def _int(value: str | None) -> int | None:
    return None if value is None or value == "" else int(float(value))


class TaskStore:
    def __init__(self, redis: Redis, keys: Keys, *, ttl_s: int, lane: Lane | None = None) -> None:
        """``lane``: where the scripts are called (submissions are on each task's critical
        path: the API gives them a connection of their own), else the pool."""
        self.redis = redis
        self.keys = keys
        self.ttl_s = ttl_s
        self.scripts = Scripts(redis, lane)
        self._submit = GroupCommit(self._submit_batch, MAX_SUBMIT_BATCH)

    async def submit(self, user_input: str, plan: Plan, task_id: str | None = None) -> str:
        """Create the task and queue its first steps, atomically; returns its id."""
        return (await self.submit_logged(user_input, plan, task_id))[0]

    async def submit_logged(
        self, user_input: str, plan: Plan, task_id: str | None = None
    ) -> tuple[str, LogEvent | None]:
        """:meth:`submit`, also returning the task's first event (plan_created) as its log
        holds it, when this call created the task: the API's stream hub serves it to the
        task's first watchers without reading the log back.

        Group commit, as the workers record steps: a submission goes at once if no call is in
        flight, else with every other that arrived meanwhile in the next call. Under load the
        server pays one script call and one round trip for a batch; each task is still created
        all or nothing."""
        chosen = task_id is not None
        task_id = task_id or new_task_id()
        args = submission(task_id, user_input, plan, chosen=chosen)
        created_ms, entry_id = await self._submit(args)
        if not created_ms:
            if chosen:
                raise TaskConflict(f"task {task_id!r} exists already")
            # An id generated here (uuid4) names no other task: a retry of a call whose reply
            # was lost (the client retries on connection errors) found the task that call
            # created, and this request is answered as the one that created it. Its
            # plan_created is not known here: the caller reads the log.
            return task_id, None
        return task_id, (entry_id, "plan_created", event_json(args[2], created_ms))

    async def _submit_batch(self, batch: list[list[Any]]) -> list[tuple[int, str]]:
        args: list[Any] = [self.keys.prefix]
        for task_args in batch:
            args += [len(task_args), *task_args]
        replies = await self.scripts.call("submit", *args)
        return [(int(ts), str(entry_id)) for ts, entry_id in replies]

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

    async def goes_on_after(self, task_id: str, failed_id: str) -> bool:
        """Whether the task's log goes on past its task_failed at ``failed_id``: the task was
        redriven since (it is no longer failed, or failed again later in its log). Not its
        state alone: a stream can reach an old task_failed of a task that has completed since.
        False for a task whose keys have expired."""
        state = await self.redis.hget(self.keys.task(task_id), "state")
        if state is None:
            return False
        if str(state) != TaskState.FAILED.value:
            return True
        after = await self.redis.xrange(self.keys.events(task_id), f"({failed_id}", "+", count=1)
        return bool(after)

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


#: What ``<step>|run`` holds, in order (complete.lua writes it when the step completes): the
#: completed attempt's figures, and for a step that ran unclaimed (kind ``f``) the last three
#: too; a claimed step's start, queue wait and runs are fields of their own (start.lua's).
RUN_FIELDS = ("finished_ms", "run_ms", "cost", "tin", "tout", "started_ms", "queue_wait_ms", "runs")


def step_field(fields: dict[str, str], sid: str) -> Callable[[str], str | None]:
    """The step's fields by name, from its ``run`` where that holds them. A step that an older
    release recorded has them as fields of their own, and so does one still running."""
    run = fields.get(f"{sid}|run")
    packed = dict(zip(RUN_FIELDS, run.split(","), strict=False)) if run else {}

    def f(name: str) -> str | None:
        value = packed.get(name)
        return value if value is not None else fields.get(f"{sid}|{name}")

    return f


def _step_public(
    fields: dict[str, str], sid: str, instr: str, deps: list[str], with_result: bool
) -> StepPublic:
    f = step_field(fields, sid)

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
    f = step_field(fields, sid)

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
