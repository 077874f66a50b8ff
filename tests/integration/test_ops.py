"""Operator paths: recent tasks, the dead-letter queue, and redrive resuming a task."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from app.config import Settings
from app.errors import DeadLetterNotFound, TaskConflict
from app.orchestration.dlq import DeadLetters
from tests.integration.harness import BENCH_PLAN, Harness, ScriptedAgent, agents

pytestmark = pytest.mark.integration


async def test_recent_tasks_newest_first_and_expired_ones_dropped(harness: Harness) -> None:
    first = await harness.store.submit("first", BENCH_PLAN)
    await asyncio.sleep(0.005)
    second = await harness.store.submit("second", BENCH_PLAN)
    recent = await harness.store.recent(10)
    assert [t.task_id for t in recent] == [second, first]
    assert recent[0].user_input == "second" and recent[0].steps == 4
    await harness.redis.delete(*harness.keys.task_keys(first))  # as if its TTL ran out
    assert [t.task_id for t in await harness.store.recent(10)] == [second]
    assert await harness.redis.zscore(harness.keys.tasks_index, first) is None


async def test_redrive_resumes_the_task_without_redoing_finished_steps(harness: Harness) -> None:
    analyzer = ScriptedAgent("analyzer", fail_times=3)  # fails its 3 attempts, then works
    retriever = ScriptedAgent("retriever")
    await harness.start_worker(agents(analyzer=analyzer, retriever=retriever))
    task_id = await harness.store.submit("x", BENCH_PLAN)
    assert await harness.wait_state(task_id) == "failed"
    dlq = DeadLetters(harness.redis, harness.keys, max_attempts=harness.settings.max_attempts)
    (entry,) = await dlq.entries()
    assert (entry.task_id, entry.step_id, entry.attempt) == (task_id, "analyze", 3)
    assert "scripted failure" in entry.error
    redriven = await dlq.redrive(entry.id)
    assert redriven.task_id == task_id
    assert await harness.wait_state(task_id) == "completed"
    assert sum(retriever.runs.values()) == 2  # the retrieve steps were not redone
    assert analyzer.runs[(task_id, "analyze")] == 4
    assert await dlq.depth() == 0
    events = await harness.events(task_id)
    completed = Counter(e["step_id"] for e in events if e["type"] == "step_completed")
    assert completed == Counter({"retrieve_1": 1, "retrieve_2": 1, "analyze": 1, "write": 1})
    assert [e["type"] for e in events if e["type"].startswith("task_")] == [
        "task_failed",
        "task_completed",
    ]
    assert await harness.redis.ttl(harness.keys.task(task_id)) > 0  # expires again once done
    with pytest.raises(DeadLetterNotFound):
        await dlq.redrive(entry.id)


async def test_redrive_refuses_an_expired_task(harness: Harness) -> None:
    await harness.start_worker(agents(writer=ScriptedAgent("writer", fail_times=-1)))
    task_id = await harness.store.submit("x", BENCH_PLAN)
    assert await harness.wait_state(task_id) == "failed"
    dlq = DeadLetters(harness.redis, harness.keys, max_attempts=3)
    await harness.redis.delete(*harness.keys.task_keys(task_id))
    done, skipped = await dlq.redrive_all()
    assert done == [] and len(skipped) == 1 and "expired" in skipped[0].reason
    with pytest.raises(TaskConflict):
        await dlq.redrive(skipped[0].id)


async def test_a_live_stream_goes_on_past_the_failure_of_a_redriven_task(
    settings: Settings, tmp_path: Path
) -> None:
    """The log of a redriven task holds its old task_failed; a client reading it from the
    start while the task runs again must not stop there."""
    from tests.integration.procs import sse_frames, start_api

    h = Harness(settings)
    try:
        await h.start_worker(agents(analyzer=ScriptedAgent("analyzer", fail_times=3)))
        task_id = await h.store.submit("x", BENCH_PLAN)
        assert await h.wait_state(task_id) == "failed"
        await h.runtimes[0].shutdown()
        h.runtimes.clear()
        dlq = DeadLetters(h.redis, h.keys, max_attempts=3)
        (entry,) = await dlq.entries()
        await dlq.redrive(entry.id)  # running again, but no worker yet
        # A stream open tells a task's state from the last event of its log (hub._read_opens):
        # the redrive must have written one after task_failed.
        assert (await h.events(task_id))[-1]["type"] != "task_failed"
        api = start_api(settings, tmp_path)
        try:
            reader = asyncio.create_task(
                asyncio.to_thread(lambda: list(sse_frames(f"{api.url}/stream/{task_id}")))
            )
            await asyncio.sleep(1.0)
            await h.start_worker(agents())
            frames = await asyncio.wait_for(reader, 30)
        finally:
            api.terminate()
        types = [event for _, event, _ in frames]
        assert types.count("task_failed") == 1 and types[-1] == "task_completed"
    finally:
        await h.close()
