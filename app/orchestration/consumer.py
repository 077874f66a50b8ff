"""One agent's consumer: read batches from its stream, run steps, complete them, ACK.

Delivery protocol (docs/system_design.md has the picture):

1. ``XREADGROUP`` (or ``XAUTOCLAIM`` for entries whose holder went silent) hands us an entry
   naming a task and a batch of its step ids.
2. ``start.lua`` claims each step this delivery may run (only the entry that carries a step
   may; a redelivery takes the next attempt, fencing the old holder out) and returns its
   instruction and its dependencies' results.
3. The agent runs; ``complete.lua`` or ``fail.lua`` records the outcome and queues what became
   ready, atomically, and only if the attempt still owns the step.
4. ``XACK`` comes last: a crash anywhere before it leaves the entry pending, so another worker
   reclaims it and the scripts' fences make the replay harmless. A worker fenced out does not
   ACK: the entry belongs to the newer attempt's holder. An entry that carried one step is
   ACKed by the script that records the outcome (same atomic unit, one round trip less).

While a step runs, the lease loop re-claims our in-flight entries (``XCLAIM ... JUSTID``
resets their idle time) so a slow but live step is never stolen.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from redis.exceptions import ResponseError

from app.agents.base import Agent, StepInput, StepOutput
from app.config import Settings
from app.keys import Keys
from app.orchestration import telemetry as m
from app.orchestration.progress import ProgressBatcher
from app.orchestration.retry import RetryPolicy
from app.orchestration.scripts import Scripts

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = structlog.get_logger("agentic.worker")
Entry = tuple[str, dict[str, str]]


def output_text(out: StepOutput) -> str:
    """What a sink step contributes to the task's output: the report if it wrote one."""
    markdown = out.data.get("markdown")
    return markdown if isinstance(markdown, str) else out.summary


class AgentConsumer:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        agent: Agent,
        settings: Settings,
        consumer: str,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.agent = agent
        self.name = agent.name
        self.settings = settings
        self.consumer = consumer
        self.policy = policy or RetryPolicy.from_settings(settings)
        self.scripts = Scripts(redis)
        self.stream = keys.agent_stream(self.name)
        self.group = keys.agent_group(self.name)
        self.inflight: dict[str, asyncio.Task[None]] = {}
        self._slot_freed = asyncio.Event()
        self.visibility_ms = int(settings.visibility_timeout_s * 1000)

    # --- group management ------------------------------------------------------------------
    async def ensure_group(self) -> None:
        """Create the group from id 0 (entries added before any worker started count)."""
        try:
            await self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _with_group(self, call: Callable[[], Awaitable[Any]]) -> Any:
        try:
            return await call()
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            log.warning("group missing, re-creating", agent=self.name, stream=self.stream)
            await self.ensure_group()
            return await call()

    # --- loops -----------------------------------------------------------------------------
    async def read_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            free = await self._wait_for_slots(stop)
            if free == 0:
                continue
            try:
                reply = await self._with_group(
                    lambda n=free: self.redis.xreadgroup(  # type: ignore[misc]
                        self.group,
                        self.consumer,
                        {self.stream: ">"},
                        count=min(n, self.settings.read_count),
                        block=self.settings.block_ms,
                    )
                )
            except Exception:
                log.exception("read failed", agent=self.name)
                await _sleep_or_stop(stop, 0.5)
                continue
            for _stream, entries in reply or []:
                self._dispatch(entries)

    async def reclaim_loop(self, stop: asyncio.Event) -> None:
        """Take over entries whose holder went silent (XAUTOCLAIM, cursor followed)."""
        interval = max(0.05, self.settings.visibility_timeout_s / 4)
        while not await _sleep_or_stop(stop, interval):
            try:
                await self.reclaim_once()
            except Exception:
                log.exception("reclaim failed", agent=self.name)

    async def reclaim_once(self) -> int:
        cursor, claimed = "0-0", 0
        while True:
            free = self.settings.worker_concurrency - len(self.inflight)
            if free <= 0:
                return claimed
            reply = await self._with_group(
                lambda c=cursor, n=free: self.redis.xautoclaim(  # type: ignore[misc]
                    self.stream, self.group, self.consumer, self.visibility_ms, c, count=n
                )
            )
            cursor, entries = reply[0], [e for e in reply[1] if e and e[1] is not None]
            fresh = [e for e in entries if e[0] not in self.inflight]
            if fresh:
                m.RECLAIMED.labels(self.name).inc(len(fresh))
                log.info("reclaimed entries", agent=self.name, count=len(fresh))
                self._dispatch(fresh)
                claimed += len(fresh)
            if cursor in ("0-0", b"0-0"):
                return claimed

    async def lease_loop(self, stop: asyncio.Event) -> None:
        interval = max(0.05, self.settings.visibility_timeout_s / 3)
        while not await _sleep_or_stop(stop, interval):
            await self.renew_leases()

    async def renew_leases(self) -> None:
        ids: list[Any] = list(self.inflight)
        if not ids:
            return
        try:
            await self.redis.xclaim(self.stream, self.group, self.consumer, 0, ids, justid=True)
        except Exception:
            log.exception("lease renewal failed", agent=self.name)

    async def drain(self, grace_s: float) -> None:
        """Let in-flight steps finish for ``grace_s``; hand the rest back for others to reclaim."""
        tasks = list(self.inflight.values())
        if tasks:
            await asyncio.wait(tasks, timeout=grace_s)
        left: list[Any] = list(self.inflight)
        for task in self.inflight.values():
            task.cancel()
        if left:
            # Mark them idle past the visibility timeout so any live worker reclaims them now.
            await self.redis.xclaim(
                self.stream,
                self.group,
                self.consumer,
                0,
                left,
                idle=self.visibility_ms,
                justid=True,
            )
            log.warning("released unfinished entries", agent=self.name, count=len(left))

    # --- processing ------------------------------------------------------------------------
    async def _wait_for_slots(self, stop: asyncio.Event) -> int:
        """Free slots now, or 0 after waiting for one (woken by a finishing entry, not by
        polling; the bounded wait lets the caller see ``stop``)."""
        free = self.settings.worker_concurrency - len(self.inflight)
        if free > 0:
            return free
        self._slot_freed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._slot_freed.wait(), timeout=0.5)
        return 0

    def _dispatch(self, entries: list[Entry]) -> None:
        for entry_id, fields in entries:
            task = asyncio.create_task(self.handle_entry(entry_id, fields))
            self.inflight[entry_id] = task
            m.INFLIGHT.labels(self.name).inc()
            task.add_done_callback(functools.partial(self._done, entry_id))

    def _done(self, entry_id: str, _task: asyncio.Task[None]) -> None:
        self.inflight.pop(entry_id, None)
        m.INFLIGHT.labels(self.name).dec()
        self._slot_freed.set()

    async def handle_entry(self, entry_id: str, fields: dict[str, str]) -> None:
        task_id, steps = fields.get("t"), fields.get("s")
        if not task_id or not steps:
            log.error("malformed entry dead-lettered", agent=self.name, entry_id=entry_id)
            await self.redis.xadd(
                self.keys.dlq, {"agent": self.name, "entry": orjson.dumps(fields)}
            )
            await self.redis.xack(self.stream, self.group, entry_id)
            return
        reply = await self.scripts.call(
            "start",
            self.keys.prefix,
            task_id,
            self.policy.max_attempts,
            self.settings.task_ttl_s,
            entry_id,
            *steps.split(","),
        )
        settled = True
        if reply:
            user_input, budget_left = reply[0], self._budget_left(int(reply[1]))
            runs = [
                StepInput(
                    task_id=task_id,
                    step_id=reply[i],
                    agent=self.name,
                    attempt=int(reply[i + 1]),
                    instruction=reply[i + 2],
                    user_input=user_input,
                    inputs=orjson.loads(reply[i + 3]),
                    budget_tokens_left=budget_left,
                )
                for i in range(2, len(reply), 4)
            ]
            if len(runs) == 1 and "," not in steps:
                # The entry's only step: its script ACKs the entry with the outcome.
                await self.run_step(runs[0], ack_entry=entry_id)
                return
            settled = all(await asyncio.gather(*(self.run_step(step) for step in runs)))
        if settled:
            await self.redis.xack(self.stream, self.group, entry_id)
        # else: a newer attempt took the entry over (we were presumed dead); its holder ACKs it,
        # and if that holder dies, the entry must still be pending to be reclaimed.

    def _budget_left(self, tokens_spent: int) -> int | None:
        limit = self.settings.task_max_tokens
        return max(0, limit - tokens_spent) if limit else None

    async def run_step(self, step: StepInput, ack_entry: str = "") -> bool:
        """Run one step and record its outcome; False if a newer attempt fenced us out.
        With ``ack_entry`` the recording script also ACKs that entry (not when fenced out)."""
        bound = log.bind(
            task_id=step.task_id, step_id=step.step_id, agent=self.name, attempt=step.attempt
        )
        bound.info("step started", status="running")
        started = time.perf_counter()
        progress = self._progress(step)
        try:
            out = await self.agent.run(step, progress)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await progress.close()
            return await self._record_failure(step, exc, time.perf_counter() - started, ack_entry)
        await progress.close()
        elapsed = time.perf_counter() - started
        self._count_usage(out)  # spent even if the result turns out to be fenced out
        m.STEP_SECONDS.labels(self.name).observe(elapsed)
        result = await self.scripts.call(
            "complete",
            self.keys.prefix,
            step.task_id,
            step.step_id,
            step.attempt,
            orjson.dumps(out.data),
            out.summary[:500],
            output_text(out),
            round(elapsed * 1000),
            out.cost_units,
            out.tokens_in,
            out.tokens_out,
            self.settings.task_ttl_s,
            self.settings.task_max_tokens,
            self.settings.task_max_cost_units,
            ack_entry,
        )
        if int(result) == 3:
            bound.warning("task stopped: its budget is spent", status="budget_exhausted")
        if int(result) == 0:
            m.FENCED.labels(self.name).inc()
            bound.warning("result fenced out: a newer attempt owns the step", status="fenced")
            return False
        m.STEPS.labels(self.name, "completed").inc()
        bound.info("step completed", status="completed", run_ms=round(elapsed * 1000))
        return True

    async def _record_failure(
        self, step: StepInput, exc: Exception, elapsed: float, ack_entry: str = ""
    ) -> bool:
        permanent = not self.policy.should_retry(exc)
        delay_s = self.policy.delay_s(step.attempt)
        error = f"{type(exc).__name__}: {exc}"[:1000]
        result = int(
            await self.scripts.call(
                "fail",
                self.keys.prefix,
                step.task_id,
                step.step_id,
                step.attempt,
                error,
                1 if permanent else 0,
                round(delay_s * 1000),
                self.policy.max_attempts,
                self.settings.task_ttl_s,
                ack_entry,
            )
        )
        bound = log.bind(
            task_id=step.task_id, step_id=step.step_id, agent=self.name, attempt=step.attempt
        )
        m.STEP_SECONDS.labels(self.name).observe(elapsed)
        if result == 1:
            m.STEPS.labels(self.name, "retried").inc()
            m.RETRIES.labels(self.name).inc()
            bound.warning(
                "step failed, retry scheduled",
                status="retrying",
                error=error,
                delay_s=round(delay_s, 3),
            )
        elif result == 2:
            m.STEPS.labels(self.name, "failed").inc()
            m.DEAD_LETTERED.labels(self.name).inc()
            bound.error("step failed for good, dead-lettered", status="failed", error=error)
        else:
            m.FENCED.labels(self.name).inc()
            bound.warning("failure fenced out: a newer attempt owns the step", status="fenced")
            return False
        return True

    def _progress(self, step: StepInput) -> ProgressBatcher:
        async def write(text: str) -> None:
            await self.scripts.call(
                "progress", self.keys.prefix, step.task_id, step.step_id, step.attempt, text
            )

        return ProgressBatcher(write)

    def _count_usage(self, out: StepOutput) -> None:
        model = out.model or "none"
        if out.tokens_in:
            m.TOKENS.labels(self.name, model, "in").inc(out.tokens_in)
        if out.tokens_out:
            m.TOKENS.labels(self.name, model, "out").inc(out.tokens_out)
        if out.cost_units:
            m.COST.labels(self.name, model).inc(out.cost_units)


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep up to ``seconds``; True if ``stop`` was set meanwhile."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True
