"""The worker's group commit of step outcomes (app/orchestration/recorder.py), without Redis:
what goes in which complete.lua call."""

from __future__ import annotations

import asyncio
from typing import Any

from app.config import Settings
from app.orchestration.recorder import Entry, Outcome, Recorder, _entries

RECORD = 16  # complete.lua's values per record


def outcome(step_id: str) -> Outcome:
    return Outcome("c", "analyzer", "t", step_id, 1, "", b"{}", "", "", 0, 0.0, 0, 0)


class Scripts:
    """complete.lua as the recorder sees it: the first call hands one analyzer entry over."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []  # per call, the step ids of its records

    async def call(self, name: str, *args: Any) -> Any:
        records = args[6:]
        self.calls.append([records[i + 3] for i in range(0, len(records), RECORD)])
        await asyncio.sleep(0)  # the round trip
        handed = [["analyzer", "9-1", 4, "t", "t", "s", "handed"]] if len(self.calls) == 1 else []
        return [1] * (len(records) // RECORD), handed


class QuickTaker:
    """Runs what it is handed as a quick step would: its record is queued three turns later."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.runs: list[asyncio.Task[int]] = []

    def offer_slots(self) -> int:
        return 1

    def withdraw(self, n: int) -> None:
        pass

    async def take(self, entries: list[Entry]) -> None:
        async def run() -> int:
            await asyncio.sleep(0)  # the agent runs
            return await self.recorder.record(outcome("handed"))

        self.runs += [asyncio.create_task(run()) for _ in entries]


async def test_a_handed_quick_step_records_in_the_next_call() -> None:
    """A call hands an entry over while another record waits: the handed step, quick, goes in
    the next call with the waiting record, not in a call of its own after it."""
    scripts = Scripts()
    recorder = Recorder(scripts, "p", Settings())  # type: ignore[arg-type]
    taker = QuickTaker(recorder)
    recorder.hand_off_to("worker-1", {"analyzer": taker})
    first = asyncio.create_task(recorder.record(outcome("first")))
    await asyncio.sleep(0)  # the first call is in flight
    waiting = asyncio.create_task(recorder.record(outcome("waiting")))
    assert await asyncio.wait_for(asyncio.gather(first, waiting), 5) == [1, 1]
    assert await asyncio.wait_for(taker.runs[0], 5) == 1
    assert scripts.calls == [["first"], ["waiting", "handed"]]


def test_handed_entries_are_read_from_the_flat_reply() -> None:
    """complete.lua hands entries over flat: the agent, then per entry id, count, fields."""
    flat = ["analyzer", "9-1", 4, "t", "a", "s", "x", "9-2", 2, "t", "b"]
    assert _entries(flat) == [("9-1", {"t": "a", "s": "x"}), ("9-2", {"t": "b"})]
    assert _entries(["analyzer"]) == []
