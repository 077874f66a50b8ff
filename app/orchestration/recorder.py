"""Group commit of step outcomes: one ``complete.lua`` call for everything that is ready.

A worker at saturation finishes steps faster than it can make one round trip per step. Every
outcome that arrives while a call is in flight waits for the next call, which records them all
in order (and ACKs their entries) in one atomic script run: the batch grows with the load, and
an idle worker still records a lone step at once. The server pays one script call per batch.

A failed call fails every record of its batch. A script error may leave some records applied,
which is harmless: their entries are not ACKed (ACKs come last in the script), so they are
delivered again and the fences turn the replay into a no-op. (So one record must not be able
to break the script: an agent's cost is checked finite by ``StepOutput`` before it gets here.)
A call whose reply is lost may have applied everything, ACKs and hand-offs included: its
records are reported failed (or fenced, if the client's retry ran the script again), nothing
runs twice, and the entries it handed us are reclaimed after the visibility timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from app.config import Settings
from app.orchestration.scripts import Scripts, event_head
from app.redis_lane import field_dict

log = structlog.get_logger("agentic.worker")

#: Records per call: bounds the script's run time (other clients wait while it runs).
MAX_BATCH = 128
#: How long ACKs with no record to ride with wait for one before they go alone: an ACK is on
#: no task's critical path, and a call of its own cost a round trip between two steps of a
#: chain (the entry of two parallel steps is ACKed just after the call that records them).
ACK_LINGER_S = 0.005
#: Event-loop turns the flusher gives the entries a call handed to this process before it
#: sends the next call. A quick step records after three (its task starts, its agent runs, its
#: outcome is queued): its record then goes in the next call instead of the one after. At
#: saturation that halved the script calls per task and took ~10 % off Valkey's CPU per step
#: (interleaved runs); a slow step costs the next call four turns of a few µs.
HANDED_TURNS = 4

# Return codes of complete.lua, per record.
FENCED = 0
RECORDED = 1
TASK_COMPLETED = 2
BUDGET_STOP = 3
TASK_NOT_RUNNING = 4
NOT_CARRIED = 5


@dataclass(frozen=True, slots=True)
class Outcome:
    """A step's result, as complete.lua takes it: ``kind`` 'c' (claimed: fenced on its
    attempt) or 'f' (unclaimed: fenced on ``entry``, the carrier it ran from, at that attempt).
    """

    kind: str
    agent: str
    task_id: str
    step_id: str
    attempt: int
    entry: str  # 'f' only
    result_json: bytes
    summary: str
    text: str
    run_ms: int
    cost_units: float
    tokens_in: int
    tokens_out: int
    ack_entry: str = ""
    #: The step's dependents as its entry named them ("a,b"), or "?" if unknown: complete.lua
    #: reads them with the step (one read per task and call) and checks them against the hash.
    dependents: str = "?"

    def args(self) -> list[Any]:
        step = {
            "type": "step_started",
            "task_id": self.task_id,
            "step_id": self.step_id,
            "agent": self.agent,
            "attempt": self.attempt,
        }
        # The events' JSON up to their time, here rather than in the script (see event_head).
        started = event_head(step) if self.kind == "f" else b""
        step.update(
            type="step_completed",
            summary=self.summary,
            run_ms=self.run_ms,
            cost_units=self.cost_units,
        )
        return [
            self.kind,
            self.agent,
            self.task_id,
            self.step_id,
            self.attempt,
            self.entry,
            self.result_json,
            self.text,
            self.run_ms,
            self.cost_units,
            self.tokens_in,
            self.tokens_out,
            self.ack_entry,
            started,
            event_head(step),
            self.dependents,
        ]


def ack_args(agent: str, entry_id: str) -> list[Any]:
    """complete.lua's record that only ACKs an entry (kind 'a', three values)."""
    return ["a", agent, entry_id]


Entry = tuple[str, dict[str, str]]


class Taker(Protocol):
    """An agent's consumer, as the hand-off sees it."""

    def offer_slots(self) -> int:
        """Reserve the slots a call may fill (0 while stopping)."""
        ...

    def withdraw(self, n: int) -> None:
        """Give back reserved slots once the call's reply is handled."""
        ...

    async def take(self, entries: list[Entry]) -> None:
        """Run entries delivered to it by a script call (first deliveries)."""
        ...


class Recorder:
    """Shared by the consumers of one worker process (bigger batches).

    With :meth:`hand_off_to`, each call also asks complete.lua to deliver to this process the
    entries it queues for the agents hosted here, up to their free slots: the next step of a
    task starts from the call's reply, without a wake-up of a blocked read and a new read."""

    def __init__(self, scripts: Scripts, prefix: str, settings: Settings) -> None:
        self._scripts = scripts
        self._header = [
            prefix,
            settings.task_ttl_s,
            settings.task_max_tokens,
            settings.task_max_cost_units,
        ]
        self._queue: list[tuple[list[Any], asyncio.Future[int]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._linger: asyncio.TimerHandle | None = None
        self._acks_due = False  # the linger is over: ACKs go even without a record
        self._consumer = ""
        self._takers: Mapping[str, Taker] = {}

    def hand_off_to(self, consumer: str, takers: Mapping[str, Taker]) -> None:
        """Deliver newly queued entries of these agents to ``consumer`` (their group member)."""
        self._consumer, self._takers = consumer, takers

    async def record(self, outcome: Outcome) -> int:
        """Record a step's outcome; returns complete.lua's code for it."""
        return await self._submit(outcome.args())

    async def ack(self, agent: str, entry_id: str) -> None:
        """ACK an entry whose steps are all settled, with the next batch (waiting up to
        ``ACK_LINGER_S`` for a record to go with)."""
        await self._submit(ack_args(agent, entry_id))

    async def _submit(self, args: list[Any]) -> int:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.append((args, future))
        self._schedule()
        return await future

    def _only_acks(self) -> bool:
        return all(args[0] == "a" for args, _ in self._queue)

    def _schedule(self) -> None:
        """Start a flusher for what is queued, unless one runs (it takes the queue next) or
        the queue holds only ACKs (they linger)."""
        if self._flusher is not None or not self._queue:
            return
        if self._only_acks() and not self._acks_due:
            if self._linger is None:
                loop = asyncio.get_running_loop()
                self._linger = loop.call_later(ACK_LINGER_S, self._linger_over)
            return
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        self._start()

    def _linger_over(self) -> None:
        self._linger = None
        if not self._queue:  # they went with a record meanwhile
            return
        self._acks_due = True
        if self._flusher is None:
            self._start()

    def _start(self) -> None:
        self._flusher = asyncio.create_task(self._flush())
        self._flusher.add_done_callback(self._flusher_done)

    def _flusher_done(self, task: asyncio.Task[None]) -> None:
        if self._flusher is task:  # cancelled before it ever ran
            self._flusher = None
        if self._flusher is None and (task.cancelled() or task.exception() is not None):
            # Worker shutdown (or a bug): nobody may wait forever on a record never sent.
            if self._linger is not None:
                self._linger.cancel()
                self._linger = None
            for _, future in self._queue:
                future.cancel()
            self._queue = []

    async def _flush(self) -> None:
        try:
            await self._flush_all()
        finally:
            # At once, not in a done-callback: a record submitted between this task's end and
            # its callbacks must start a new flusher, not wait on this one.
            self._flusher = None
        self._schedule()  # ACKs left without a record: they linger

    async def _flush_all(self) -> None:
        while self._queue and (self._acks_due or not self._only_acks()):
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            self._acks_due = False
            offers = {agent: taker.offer_slots() for agent, taker in self._takers.items()}
            try:
                codes, handed = await self._send([args for args, _ in batch], offers)
            except asyncio.CancelledError:
                self._withdraw(offers)
                for _, future in batch:
                    future.cancel()
                raise
            except Exception as exc:
                self._withdraw(offers)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            # The records are written: their callers learn it before anything else can fail.
            for (_, future), code in zip(batch, codes, strict=True):
                if not future.done():
                    future.set_result(code)
            await self._hand(handed, offers)

    async def _send(
        self, records: list[list[Any]], offers: Mapping[str, int]
    ) -> tuple[list[int], list[Any]]:
        offer = ",".join(f"{agent}={n}" for agent, n in offers.items() if n > 0)
        args = [*self._header, self._consumer if offer else "", offer]
        for record_args in records:
            args += record_args
        codes, handed = await self._scripts.call("complete", *args)
        if len(codes) != len(records):
            raise RuntimeError(f"complete.lua answered {len(codes)} of {len(records)} records")
        return [int(code) for code in codes], handed

    async def _hand(self, handed: list[Any], offers: Mapping[str, int]) -> None:
        """Dispatch the entries a call handed us, give back what was offered, and let the
        handed steps run a few turns before the next call goes."""
        try:
            for flat in handed:
                agent = flat[0]
                # Pending under us from now on: taken, or reclaimed by anyone if we fail here.
                try:
                    await self._takers[agent].take(_entries(flat))
                except Exception:
                    log.exception("handed entries not taken; they will be reclaimed", agent=agent)
        finally:
            self._withdraw(offers)
        if handed:  # their quick steps record in the next call (HANDED_TURNS)
            for _ in range(HANDED_TURNS):
                await asyncio.sleep(0)

    def _withdraw(self, offers: Mapping[str, int]) -> None:
        for agent, n in offers.items():
            self._takers[agent].withdraw(n)


def _entries(flat: list[Any]) -> list[Entry]:
    """complete.lua's handed entries of one agent: [agent, (id, n, n field names and values)...]."""
    entries, at = [], 1
    while at < len(flat):
        n = int(flat[at + 1])
        fields = flat[at + 2 : at + 2 + n]
        entries.append((flat[at], field_dict(fields)))
        at += 2 + n
    return entries
