"""One agent's consumer: read batches from its stream, run steps, complete them, ACK.

Delivery protocol (docs/system_design.md has the picture):

1. ``XREADGROUP`` (or ``XAUTOCLAIM`` for entries whose holder went silent) hands us an entry
   naming a task and a batch of its step ids, with what they need to run (field ``x``).
2. A step is claimed with ``start.lua``, which decides whether this delivery may run it (only
   the entry that carries a step may; a redelivery takes the next attempt, fencing the old
   holder out) and emits ``step_started``. On a first delivery the step starts at once and is
   claimed only if it is still running after ``claim_after_ms`` (or streams progress, or
   fails); a step that ends sooner is started and completed by one call (kind ``'f'``, fenced
   on its carrier entry). Redeliveries are claimed first, so every one counts as an attempt.
3. ``complete.lua`` (through :class:`~app.orchestration.recorder.Recorder`, which batches the
   outcomes of concurrent steps) or ``fail.lua`` records the outcome and queues what became
   ready, atomically, and only if the attempt still owns the step.
4. ``XACK`` comes last: a crash anywhere before it leaves the entry pending, so another worker
   reclaims it and the scripts' fences make the replay harmless. A worker fenced out does not
   ACK: the entry belongs to the newer attempt's holder. An entry's ACK goes in the same script
   call as its last outcome, or with the next batch.

While a step runs, the lease loop re-claims our in-flight entries (``XCLAIM ... JUSTID``
resets their idle time) so a slow but live step is never stolen.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson
import structlog
from redis.exceptions import ResponseError

from app.agents.base import Agent, StepInput, StepOutput
from app.config import Settings
from app.keys import Keys
from app.orchestration import telemetry as m
from app.orchestration.progress import ProgressBatcher
from app.orchestration.recorder import (
    BUDGET_STOP,
    FENCED,
    NOT_CARRIED,
    TASK_NOT_RUNNING,
    Entry,
    Outcome,
    Recorder,
)
from app.orchestration.retry import RetryPolicy
from app.orchestration.scripts import Scripts
from app.redis_lane import Lane, field_dict, stream_replies

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = structlog.get_logger("agentic.worker")


def output_text(out: StepOutput) -> str:
    """What a sink step contributes to the task's output: the report if it wrote one."""
    markdown = out.data.get("markdown")
    return markdown if isinstance(markdown, str) else out.summary


def budget_left(max_tokens: int, tokens_spent: int) -> int | None:
    """Tokens a task may still spend under ``max_tokens`` (0: no limit, None)."""
    return max(0, max_tokens - tokens_spent) if max_tokens else None


class EntryStep(NamedTuple):
    step: StepInput
    #: Its dependents as the entry names them ("a,b"), or "?" (an entry from before ``d``):
    #: handed back with its result so complete.lua reads them with the step.
    dependents: str


def steps_in_entry(
    task_id: str, agent: str, sids: list[str], raw: str, max_tokens: int
) -> list[EntryStep]:
    """The steps an entry carries, from its ``x`` body (laid out by ``enqueue`` in common.lua
    and ``store.submission``). Raises on a body that does not cover them all."""
    spec = orjson.loads(raw)
    left = budget_left(max_tokens, int(spec["k"]))
    return [
        EntryStep(
            StepInput(
                task_id=task_id,
                step_id=sid,
                agent=agent,
                attempt=int(spec["s"][sid]["a"]),
                instruction=spec["s"][sid]["i"],
                user_input=spec["u"],
                inputs=spec["s"][sid]["in"],
                budget_tokens_left=left,
            ),
            str(spec["s"][sid].get("d", "?")),
        )
        for sid in sids
    ]


class AgentConsumer:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        agent: Agent,
        settings: Settings,
        consumer: str,
        policy: RetryPolicy | None = None,
        recorder: Recorder | None = None,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.agent = agent
        self.name = agent.name
        self.settings = settings
        self.consumer = consumer
        self.policy = policy or RetryPolicy.from_settings(settings)
        self.scripts = Scripts(redis)
        self.recorder = recorder or Recorder(self.scripts, keys.prefix, settings)
        self.claim_after_s = settings.claim_after_ms / 1000
        self.stream = keys.agent_stream(self.name)
        self.group = keys.agent_group(self.name)
        self.inflight: dict[str, asyncio.Task[None]] = {}
        self._slot_freed = asyncio.Event()
        self.visibility_ms = int(settings.visibility_timeout_s * 1000)
        self._stop: asyncio.Event | None = None  # the read loop's: hand-offs only while it runs
        self._reading = 0  # entries the read in flight may return
        self._offered = 0  # slots offered to script calls in flight (hand-offs may fill them)
        # The blocking read on a connection of its own, read as a lane (app.redis_lane): its
        # raw reply is turned into entries here. A lost connection fails the read, which the
        # read loop retries; the lane reconnects then.
        self._read_lane = Lane(redis, fallback=False)
        # The per-step metrics' children, looked up once: labels() takes a lock and builds a
        # key at every call, several times a step.
        self._m_inflight = m.INFLIGHT.labels(self.name)
        self._m_handed = m.HANDED_OFF.labels(self.name)
        self._m_seconds = m.STEP_SECONDS.labels(self.name)
        self._m_completed = m.STEPS.labels(self.name, "completed")

    # --- group management ------------------------------------------------------------------
    async def ensure_group(self) -> None:
        """Create the group from id 0 (entries added before any worker started count), and
        this process's consumer in it: it is listed (``XINFO CONSUMERS``) from the start, on
        every server (Redis 7.0 creates a consumer only at a read that returns entries)."""
        try:
            await self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        await self.redis.xgroup_createconsumer(self.stream, self.group, self.consumer)

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
        self._stop = stop
        try:
            await self._read_until(stop)
        finally:
            self._read_lane.close()

    async def _read_until(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            free = await self._wait_for_slots(stop)
            if free == 0:
                continue
            # One slot stays out of a read that would fill them all: while the read blocks, a
            # hand-off (see Recorder) can still deliver the next step of a chain to us.
            count = min(free - 1 if free > 1 else free, self.settings.read_count)
            self._reading = count
            try:
                reply = await self._with_group(lambda n=count: self._read(n))  # type: ignore[misc]
                batches = [
                    [(entry_id, field_dict(flat)) for entry_id, flat in entries]
                    for _, entries in stream_replies(reply)
                ]
            except Exception:  # the loop must outlive any reply: it is this agent's only reader
                log.exception("read failed", agent=self.name)
                await _sleep_or_stop(stop, 0.5)
                continue
            finally:
                self._reading = 0
            for entries in batches:
                self._dispatch(entries)

    async def _read(self, count: int) -> Any:
        """XREADGROUP for new entries, blocking up to ``block_ms``; its raw reply."""
        args = ("XREADGROUP", "GROUP", self.group, self.consumer, "COUNT", count)
        return await self._read_lane.execute(
            *args, "BLOCK", self.settings.block_ms, "STREAMS", self.stream, ">"
        )

    def _free(self) -> int:
        """Slots neither in use nor promised (to the read in flight, to hand-off offers)."""
        used = len(self.inflight) + self._reading + self._offered
        return max(0, self.settings.worker_concurrency - used)

    def offer_slots(self) -> int:
        """Reserve the slots a script call may fill with hand-offs (0 unless the read loop
        runs); the caller gives them back with :meth:`withdraw` once the reply is handled."""
        if self._stop is None or self._stop.is_set():
            return 0
        n = self._free()
        self._offered += n
        return n

    def withdraw(self, n: int) -> None:
        """Give back slots reserved by :meth:`offer_slots` (after dispatching what came)."""
        self._offered -= n
        if n:
            self._slot_freed.set()

    async def take(self, entries: list[Entry]) -> None:
        """Entries handed to us by a script call (first deliveries, pending under us); at
        most what :meth:`offer_slots` reserved for it."""
        if self._stop is not None and self._stop.is_set():
            # Asked for before the stop: give them back at once rather than at our lease's end.
            try:
                await self._release([e for e, _ in entries])
            except Exception:  # they stay pending under us: reclaimed after the timeout
                log.exception("handing back entries failed", agent=self.name)
            return
        self._m_handed.inc(len(entries))
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
            free = self._free()
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
                self._dispatch(fresh, redelivered=True)
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
            await self._release(left)
            log.warning("released unfinished entries", agent=self.name, count=len(left))

    async def _release(self, entry_ids: list[Any]) -> None:
        """Mark entries idle past the visibility timeout so any live worker reclaims them now."""
        await self.redis.xclaim(
            self.stream,
            self.group,
            self.consumer,
            0,
            entry_ids,
            idle=self.visibility_ms,
            justid=True,
        )

    # --- processing ------------------------------------------------------------------------
    async def _wait_for_slots(self, stop: asyncio.Event) -> int:
        """Free slots now, or 0 after waiting for one (woken by a finishing entry, not by
        polling; the bounded wait lets the caller see ``stop``)."""
        free = self._free()
        if free > 0:
            return free
        self._slot_freed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._slot_freed.wait(), timeout=0.5)
        return 0

    def _dispatch(self, entries: list[Entry], redelivered: bool = False) -> None:
        for entry_id, fields in entries:
            task = asyncio.create_task(self.handle_entry(entry_id, fields, redelivered))
            self.inflight[entry_id] = task
            self._m_inflight.inc()
            task.add_done_callback(functools.partial(self._done, entry_id))

    def _done(self, entry_id: str, _task: asyncio.Task[None]) -> None:
        self.inflight.pop(entry_id, None)
        self._m_inflight.dec()
        self._slot_freed.set()

    async def handle_entry(
        self, entry_id: str, fields: dict[str, str], redelivered: bool = False
    ) -> None:
        task_id, steps = fields.get("t"), fields.get("s")
        if not task_id or not steps:
            log.error("malformed entry dead-lettered", agent=self.name, entry_id=entry_id)
            await self.redis.xadd(
                self.keys.dlq, {"agent": self.name, "entry": orjson.dumps(fields)}
            )
            await self.redis.xack(self.stream, self.group, entry_id)
            return
        sids = steps.split(",")
        runs: list[tuple[StepInput, Claim | None]]
        unclaimed = None
        if not redelivered and self.claim_after_s > 0:
            unclaimed = self._inputs_from_entry(task_id, sids, fields.get("x"))
        if unclaimed is not None:
            runs = [
                (step, Claim(self, task_id, step.step_id, entry_id, dependents))
                for step, dependents in unclaimed
            ]
        else:
            runs = [(step, None) for step in await self._claim_all(entry_id, task_id, sids)]
        if len(runs) == 1 and len(sids) == 1:
            # The entry's only step: its outcome's script call ACKs the entry too.
            await self.run_step(runs[0][0], ack_entry=entry_id, claim=runs[0][1])
            return
        settled = all(
            await asyncio.gather(*(self.run_step(step, claim=claim) for step, claim in runs))
        )
        if settled:
            await self.recorder.ack(self.name, entry_id)
        # else: a newer attempt took the entry over (we were presumed dead); its holder ACKs it,
        # and if that holder dies, the entry must still be pending to be reclaimed.

    async def _claim_all(self, entry_id: str, task_id: str, sids: list[str]) -> list[StepInput]:
        """start.lua for the steps of an entry: those this delivery may run, claimed."""
        reply = await self.scripts.call(
            "start",
            self.keys.prefix,
            task_id,
            self.policy.max_attempts,
            self.settings.task_ttl_s,
            entry_id,
            *sids,
        )
        if not reply:
            return []
        user_input, tokens_left = reply[0], self._budget_left(int(reply[1]))
        return [
            StepInput(
                task_id=task_id,
                step_id=reply[i],
                agent=self.name,
                attempt=int(reply[i + 1]),
                instruction=reply[i + 2],
                user_input=user_input,
                inputs=orjson.loads(reply[i + 3]),
                budget_tokens_left=tokens_left,
            )
            for i in range(2, len(reply), 4)
        ]

    async def _claim_unless_quick(
        self,
        step: StepInput,
        run: asyncio.Future[StepOutput],
        claim: Claim,
        progress: ProgressBatcher,
        ack_entry: str,
    ) -> tuple[StepInput | None, Claim | None]:
        """Wait up to ``claim_after_ms`` for an unclaimed step. Returns (step, claim) if it
        ended well in time with nothing to show meanwhile (its start is recorded with its
        result), else claims it: (step at the claimed attempt, None), or (None, None) if this
        delivery may not run it (then ``ack_entry``, if given, is ACKed: as on the claim-first
        path, an entry none of whose steps may run is settled). Progress needs a claimed
        step: it follows step_started."""
        await asyncio.sleep(0)  # a quick agent is done after its first turn: no timer needed
        if not run.done():
            await asyncio.wait({run}, timeout=self.claim_after_s)
        quick = run.done() and not run.cancelled() and not run.exception()
        if quick and not claim.requested and not progress.pending:
            return step, claim
        attempt = await claim.attempt()
        if attempt is None:
            if ack_entry:
                await self.recorder.ack(self.name, ack_entry)
            return None, None
        return step.model_copy(update={"attempt": attempt}), None

    def _inputs_from_entry(
        self, task_id: str, sids: list[str], raw: str | None
    ) -> list[EntryStep] | None:
        """The steps' inputs from the entry's ``x`` field, or None if it is missing or does not
        cover them all (the entry then takes the claim-first path)."""
        if not raw:
            return None
        try:
            return steps_in_entry(task_id, self.name, sids, raw, self.settings.task_max_tokens)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("entry's step inputs unreadable, claiming first", agent=self.name)
            return None

    def _budget_left(self, tokens_spent: int) -> int | None:
        return budget_left(self.settings.task_max_tokens, tokens_spent)

    async def run_step(
        self, step: StepInput, ack_entry: str = "", claim: Claim | None = None
    ) -> bool:
        """Run one step and record its outcome; False if a newer attempt fenced us out.
        With ``ack_entry`` the recording script also ACKs that entry (not when fenced out).
        With ``claim`` the step is not claimed yet: it runs at once and is claimed only if it
        outlives ``claim_after_ms``, streams progress or fails (see the module docstring)."""
        started = time.perf_counter()
        progress = self._progress(step, claim)
        run = asyncio.ensure_future(self.agent.run(step, progress))
        try:
            if claim is not None:
                claimed, claim = await self._claim_unless_quick(
                    step, run, claim, progress, ack_entry
                )
                if claimed is None:  # this delivery may not run it: nothing to record
                    return True
                step = claimed
            bound = log.bind(
                task_id=step.task_id, step_id=step.step_id, agent=self.name, attempt=step.attempt
            )
            if claim is None:
                bound.info("step started", status="running")
            try:
                out = await run
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await progress.close()
                elapsed = time.perf_counter() - started
                return await self._record_failure(step, exc, elapsed, ack_entry)
            await progress.close()
        finally:
            if not run.done():
                run.cancel()
        elapsed = time.perf_counter() - started
        self._count_usage(out)  # spent even if the result turns out to be fenced out
        self._m_seconds.observe(elapsed)
        code = await self.recorder.record(
            Outcome(
                kind="c" if claim is None else "f",
                agent=self.name,
                task_id=step.task_id,
                step_id=step.step_id,
                attempt=step.attempt,
                entry="" if claim is None else claim.entry_id,
                result_json=orjson.dumps(out.data),
                summary=out.summary[:500],
                text=output_text(out),
                run_ms=round(elapsed * 1000),
                cost_units=out.cost_units,
                tokens_in=out.tokens_in,
                tokens_out=out.tokens_out,
                ack_entry=ack_entry,
                dependents="?" if claim is None else claim.dependents,
            )
        )
        if code == BUDGET_STOP:
            bound.warning("task stopped: its budget is spent", status="budget_exhausted")
        if code == FENCED:
            m.FENCED.labels(self.name).inc()
            bound.warning("result fenced out: a newer attempt owns the step", status="fenced")
            return False
        if code in (TASK_NOT_RUNNING, NOT_CARRIED):
            return True  # what start.lua would have said before it ran: not this delivery's
        self._m_completed.inc()
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
        self._m_seconds.observe(elapsed)
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

    def _progress(self, step: StepInput, claim: Claim | None = None) -> ProgressBatcher:
        async def write(text: str) -> None:
            attempt: int | None = step.attempt
            if claim is not None:  # progress is shown only for a claimed (started) step
                attempt = await claim.attempt()
                if attempt is None:
                    return
            await self.scripts.call(
                "progress", self.keys.prefix, step.task_id, step.step_id, attempt, text
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


class Claim:
    """The deferred start.lua call of one step run before it was claimed: made at most once,
    by whoever needs it first (the claim timer, the first progress write, a failure)."""

    def __init__(
        self,
        consumer: AgentConsumer,
        task_id: str,
        step_id: str,
        entry_id: str,
        dependents: str = "?",
    ) -> None:
        self._consumer = consumer
        self.task_id = task_id
        self.step_id = step_id
        self.entry_id = entry_id
        self.dependents = dependents
        self.requested = False
        self._call: asyncio.Future[int | None] | None = None

    async def attempt(self) -> int | None:
        """The attempt this delivery runs, or None if it may not run the step."""
        self.requested = True
        if self._call is None:
            self._call = asyncio.ensure_future(self._start())
        return await asyncio.shield(self._call)

    async def _start(self) -> int | None:
        claimed = await self._consumer._claim_all(self.entry_id, self.task_id, [self.step_id])
        return claimed[0].attempt if claimed else None
