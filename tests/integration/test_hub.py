"""The shared SSE reader: exact fan-out to subscribers that join at different points."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio import Redis

from app.api import hub as hub_module
from app.api.hub import EventHub, Subscription, read_log
from app.keys import Keys
from tests.integration.harness import command_calls

pytestmark = pytest.mark.integration


async def drain_queue(sub: Subscription, n: int, timeout: float = 5) -> list[Any]:
    out = []
    for _ in range(n):
        out.append(await asyncio.wait_for(sub.queue.get(), timeout))
    return out


@pytest.fixture
async def hub(redis_url: str, prefix: str):  # type: ignore[no-untyped-def]
    pool = Redis.from_url(redis_url, decode_responses=True)
    reader = Redis.from_url(redis_url, decode_responses=True, max_connections=1)
    h = EventHub(pool, reader, Keys(prefix), block_ms=2000)
    await h.start()
    yield h
    await h.close()
    await reader.aclose()
    await pool.aclose()


async def test_late_subscribers_get_every_event_once_in_order(hub: EventHub, redis: Redis) -> None:
    key = hub.keys.events("t1")
    ids = [await redis.xadd(key, {"type": "e", "data": str(i)}) for i in range(3)]
    first = await hub.subscribe("t1", "0-0")
    assert [e[0] for e in await drain_queue(first, 3)] == ids
    ids += [await redis.xadd(key, {"type": "e", "data": str(i)}) for i in range(3, 6)]
    assert [e[0] for e in await drain_queue(first, 3)] == ids[3:]
    # Joins behind the shared cursor: catches up from its own id, then follows live.
    second = await hub.subscribe("t1", ids[1])
    ids.append(await redis.xadd(key, {"type": "e", "data": "6"}))
    got = await drain_queue(second, 5)
    assert [e[0] for e in got] == ids[2:]
    assert (await drain_queue(first, 1))[0][0] == ids[6]
    hub.unsubscribe(first)
    hub.unsubscribe(second)
    assert hub.open_streams == 0


async def test_a_new_task_wakes_the_blocked_reader(hub: EventHub, redis: Redis) -> None:
    await hub.subscribe("busy", "0-0")
    await asyncio.sleep(0.1)  # the reader now blocks on 'busy' alone (block_ms=2000)
    sub = await hub.subscribe("fresh", "0-0")
    await redis.xadd(hub.keys.events("fresh"), {"type": "e", "data": "{}"})
    got = await drain_queue(sub, 1, timeout=1.0)  # well under block_ms: woken, not timed out
    assert got[0][1] == "e"


async def test_the_next_watcher_after_a_quiet_spell_needs_no_unblock(
    hub: EventHub, redis: Redis
) -> None:
    """When the last watcher leaves, the reader is woken out of its XREAD on the streams
    nobody watches (off any request's path), so the next watcher, one task at a time as an
    idle API sees them, is read without a CLIENT UNBLOCK round trip on its way (it measured
    a fifth of the idle latency)."""
    first = await hub.subscribe("q1", "0-0")
    await until(lambda: hub._reading)  # blocked on q1's stream (block_ms=2000)
    hub.unsubscribe(first)
    await until(lambda: not hub._reading and not hub._covered)  # woken: waits for a watcher
    before = command_calls(await redis.info("commandstats"))
    sub = await hub.subscribe("q2", "0-0")
    await until(lambda: hub.keys.events("q2") in hub._covered)
    event = await redis.xadd(hub.keys.events("q2"), {"type": "e", "data": "{}"})
    assert (await drain_queue(sub, 1, timeout=1.0))[0][0] == event
    assert (command_calls(await redis.info("commandstats")) - before)["client|unblock"] == 0
    hub.unsubscribe(sub)


async def test_a_log_is_not_read_past_its_final_event(hub: EventHub, redis: Redis) -> None:
    """After task_completed (or task_cancelled) nothing more is written to a log: the reader
    stops reading it while its streams end, and with nothing else to read it waits without a
    read, so the watcher's leaving needs no unblock. task_failed is not final (a redrive goes
    on after it): that log is still read."""
    key = hub.keys.events("z1")
    sub = await hub.subscribe("z1", "0-0")
    await until(lambda: key in hub._covered)
    done = await redis.xadd(key, {"type": "task_completed", "data": "{}"})
    assert (await drain_queue(sub, 1))[0][0] == done
    await until(lambda: not hub._reading and not hub._covered)  # waits, the watcher still in
    before = command_calls(await redis.info("commandstats"))
    await asyncio.sleep(0.05)
    hub.unsubscribe(sub)
    await asyncio.sleep(0.05)
    calls = command_calls(await redis.info("commandstats")) - before
    assert calls["xread"] == calls["client|unblock"] == 0
    failed = await hub.subscribe("z2", "0-0")
    await until(lambda: hub.keys.events("z2") in hub._covered)
    await redis.xadd(hub.keys.events("z2"), {"type": "task_failed", "data": "{}"})
    await drain_queue(failed, 1)
    await until(lambda: hub._reading and hub.keys.events("z2") in hub._covered)  # read on
    hub.unsubscribe(failed)


async def test_a_stream_opened_during_drain_ends_at_once(hub: EventHub, redis: Redis) -> None:
    await redis.xadd(hub.keys.events("t2"), {"type": "e", "data": "{}"})
    hub.end_all()
    sub = await hub.subscribe("t2", "0-0")
    got = await drain_queue(sub, 2)
    assert got[0][1] == "e" and got[1] is None


async def test_a_just_accepted_stream_opened_during_drain_ends_at_once(
    hub: EventHub, redis: Redis
) -> None:
    """The memory path ends at the next event boundary during a drain, as the read path does."""
    first = (await redis.xadd(hub.keys.events("t9"), {"type": "plan_created", "data": "{}"}),
             "plan_created", "{}")  # fmt: skip
    hub.remember("t9", first)
    hub.end_all()
    sub = hub.subscribe_accepted("t9", "0-0")
    assert sub is not None
    got = await drain_queue(sub, 2)
    assert got[0] == first and got[1] is None


async def test_the_reader_starts_a_lone_watcher_after_its_catch_up(
    hub: EventHub, redis: Redis
) -> None:
    """The shared reader does not read again what the catch-up already delivered."""
    key = hub.keys.events("t3")
    ids = [await redis.xadd(key, {"type": "e", "data": str(i)}) for i in range(3)]
    sub = await hub.subscribe("t3", "0-0")
    assert hub._cursor["t3"] == ids[-1]
    ids.append(await redis.xadd(key, {"type": "e", "data": "3"}))
    assert [e[0] for e in await drain_queue(sub, 4)] == ids


async def test_a_watcher_whose_catch_up_ended_earlier_misses_nothing(
    hub: EventHub, redis: Redis
) -> None:
    """Two watchers of a new task registered together: the one whose log read ended later must
    not move the reader past what the other has not seen."""
    key = hub.keys.events("t4")
    ids = [await redis.xadd(key, {"type": "e", "data": str(i)}) for i in range(2)]
    early, late = hub.register("t4", "0-0"), hub.register("t4", "0-0")
    early_log = await read_log(redis, key, "0-0")  # read before the next event
    ids.append(await redis.xadd(key, {"type": "e", "data": "2"}))
    hub.activate(late, await read_log(redis, key, "0-0"))
    hub.activate(early, early_log)
    assert hub._cursor["t4"] == "0-0"  # the reader reads the task from where both started
    assert [e[0] for e in await drain_queue(early, 3)] == ids
    assert [e[0] for e in await drain_queue(late, 3)] == ids
    assert early.queue.empty() and late.queue.empty()


async def test_a_watcher_gets_live_events_when_the_first_one_never_activates(
    hub: EventHub, redis: Redis
) -> None:
    """The first watcher of a task registered, then left before activating (its request saw
    the task finished, or failed); a second watcher from another id still gets live events at
    once, not when the reader's blocked XREAD times out."""
    key = hub.keys.events("t5")
    ids = [await redis.xadd(key, {"type": "e", "data": str(i)}) for i in range(2)]
    first = hub.register("t5", "0-0")
    second = hub.register("t5", ids[0])
    hub.activate(second, await read_log(redis, key, ids[0]))
    hub.unsubscribe(first)
    assert [e[0] for e in await drain_queue(second, 1)] == ids[1:]
    await asyncio.sleep(0.1)  # the reader blocks (block_ms=2000) unless it was woken for t5
    live = await redis.xadd(key, {"type": "e", "data": "2"})
    assert [e[0] for e in await drain_queue(second, 1, timeout=1.0)] == [live]


async def test_stream_opens_that_arrive_together_share_one_read(
    hub: EventHub, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each open gets its own task's state and log after its own id, in one pipeline for all;
    the state of a task whose catch-up is not empty comes from its last event, so only the
    opens with nothing to catch up read it, in a second pipeline, with their log again after it
    (a task that ended in between has its terminal event there). A read that fails fails only
    its own open."""
    ids: dict[str, list[str]] = {}
    logs = {
        "a": ["e", "e", "e"],
        "b": ["e", "e", "e"],
        "done": ["e", "task_completed"],
        "redriven": ["e", "task_failed", "step_queued"],  # running again after a redrive
    }
    states = {"a": "running", "b": "running", "done": "completed", "redriven": "running"}
    for task, types in logs.items():
        await redis.hset(hub.keys.task(task), "state", states[task])
        key = hub.keys.events(task)
        ids[task] = []
        for n, event_type in enumerate(types):
            ids[task].append(await redis.xadd(key, {"type": event_type, "data": f"{task}{n}"}))
    await redis.set(hub.keys.task("odd"), "not a hash")
    pipelines = 0
    real_pipeline = hub.redis.pipeline

    def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal pipelines
        pipelines += 1
        return real_pipeline(*args, **kwargs)

    monkeypatch.setattr(hub.redis, "pipeline", counting)
    before = command_calls(await redis.info("commandstats"))
    a, b, done, redriven, unknown, odd = await asyncio.gather(
        hub.read_state_and_log("a", "0-0"),
        hub.read_state_and_log("b", ids["b"][0]),
        hub.read_state_and_log("done", "0-0"),
        hub.read_state_and_log("redriven", ids["redriven"][0]),
        hub.read_state_and_log("unknown", "0-0"),
        hub.read_state_and_log("odd", "0-0"),
        return_exceptions=True,
    )
    reads = command_calls(await redis.info("commandstats")) - before

    def logged(task: str, after: int = -1) -> list[tuple[str, str, str]]:
        entries = zip(ids[task], logs[task], strict=True)
        return [(i, t, f"{task}{n}") for n, (i, t) in enumerate(entries) if n > after]

    assert a == ("running", logged("a"))
    assert b == ("running", logged("b", after=0))
    assert done == ("completed", logged("done"))
    assert redriven == ("running", logged("redriven", after=0))
    assert unknown == (None, [])
    assert isinstance(odd, Exception) and "WRONGTYPE" in str(odd)
    # the two empty catch-ups read their log again after their state
    assert (reads["xrange"], reads["hget"], pipelines) == (8, 2, 2)


async def test_a_just_accepted_task_streams_without_reading_redis(
    hub: EventHub, redis: Redis
) -> None:
    """An open from before plan_created of a task this process just accepted: its catch-up is
    plan_created alone, from memory, and the shared reader reads the rest, even of a task that
    had finished before the open; one entry serves several opens."""
    key = hub.keys.events("t6")
    first = (await redis.xadd(key, {"type": "plan_created", "data": "{}"}), "plan_created", "{}")
    hub.remember("t6", first)
    later = ("step_started", "step_completed", "task_completed")
    ids = [first[0]] + [await redis.xadd(key, {"type": t, "data": "{}"}) for t in later]
    before = command_calls(await redis.info("commandstats"))
    subs = [hub.subscribe_accepted("t6", start) for start in ("0-0", "0-0", "1-0")]
    got = [[e[0] for e in await drain_queue(sub, 4)] for sub in subs if sub is not None]
    reads = command_calls(await redis.info("commandstats")) - before
    assert got == [ids] * 3
    assert all(sub is not None and sub.queue.empty() for sub in subs)
    assert reads["xrange"] == reads["hget"] == 0


async def test_an_open_reads_redis_once_the_reader_is_past_the_first_event(
    hub: EventHub, redis: Redis
) -> None:
    """Memory holds plan_created alone: an open it cannot answer exactly goes to Redis."""
    key = hub.keys.events("t7")
    first = (await redis.xadd(key, {"type": "plan_created", "data": "{}"}), "plan_created", "{}")
    hub.remember("t7", first)
    assert hub.subscribe_accepted("t7", first[0]) is None  # nothing of it to catch up
    assert hub.subscribe_accepted("t8", "0-0") is None  # not accepted here
    watcher = hub.subscribe_accepted("t7", "0-0")
    assert watcher is not None
    await redis.xadd(key, {"type": "step_started", "data": "{}"})
    await drain_queue(watcher, 2)
    # The reader's cursor is past plan_created: a new watcher would miss step_started.
    assert hub.subscribe_accepted("t7", "0-0") is None
    hub.unsubscribe(watcher)
    # No cursor any more, but the XREAD in flight still reads the task after step_started.
    assert hub._covered[key] != first[0]
    assert hub.subscribe_accepted("t7", "0-0") is None
    assert hub.open_streams == 0


async def test_the_reader_survives_its_connection_being_killed(hub: EventHub, redis: Redis) -> None:
    """The reader's lane reconnects; the unblock then targets the new connection's id (a
    stale id would leave a new stream unread until the XREAD times out)."""
    key = hub.keys.events("k1")
    sub = await hub.subscribe("k1", "0-0")
    await asyncio.sleep(0.1)
    old_id = hub._lane.client_id
    assert old_id is not None
    await redis.execute_command("CLIENT", "KILL", "ID", old_id)
    await redis.xadd(key, {"type": "e", "data": "after the kill"})
    got = await drain_queue(sub, 1, timeout=5)  # reconnected (after its cool-down), read on
    assert got[0][2] == "after the kill"
    assert hub._lane.client_id not in (None, old_id)
    await asyncio.sleep(0.1)  # blocked again, on 'k1' alone (block_ms=2000)
    fresh = await hub.subscribe("k2", "0-0")
    await redis.xadd(hub.keys.events("k2"), {"type": "e", "data": "{}"})
    assert (await drain_queue(fresh, 1, timeout=1.0))[0][1] == "e"  # woken, not timed out


async def accepted(hub: EventHub, redis: Redis, task_id: str) -> tuple[str, str, str]:
    first = (
        await redis.xadd(hub.keys.events(task_id), {"type": "plan_created", "data": "{}"}),
        "plan_created",
        "{}",
    )
    hub.remember(task_id, first)
    return first


async def until(condition: Any, timeout: float = 5) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_the_reader_follows_a_task_from_its_acceptance(hub: EventHub, redis: Redis) -> None:
    """Events written between the 202 and the stream's open are read before the open, and the
    open gets them at once, in order, without a read of its own; the reader was not woken for
    it (its XREAD already covered the task)."""
    first = await accepted(hub, redis, "e1")
    key = hub.keys.events("e1")
    await until(lambda: key in hub._covered)
    assert hub.open_streams == 0  # followed, not watched
    ids = [first[0], await redis.xadd(key, {"type": "step_started", "data": "{}"})]
    await until(lambda: hub._cursor.get("e1") == ids[-1])
    before = command_calls(await redis.info("commandstats"))
    sub = hub.subscribe_accepted("e1", "0-0")
    assert sub is not None and sub.queue.qsize() == 2  # there already, nothing to wait for
    assert [e[0] for e in await drain_queue(sub, 2)] == ids
    ids.append(await redis.xadd(key, {"type": "task_completed", "data": "{}"}))
    assert (await drain_queue(sub, 1))[0][0] == ids[-1]
    reads = command_calls(await redis.info("commandstats")) - before
    assert reads["xrange"] == reads["client|unblock"] == 0
    assert hub.open_streams == 1
    hub.unsubscribe(sub)


async def test_an_unwatched_task_is_followed_for_a_while_only(
    hub: EventHub, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub_module, "EARLY_S", 0.2)
    await accepted(hub, redis, "e2")  # nobody opens its stream
    await until(lambda: hub.keys.events("e2") in hub._covered)
    await until(lambda: "e2" not in hub._subs, timeout=2)
    assert not hub._early and not hub._cursor
    # It ended unwatched: dropped at its terminal event, and a late open reads the log.
    monkeypatch.setattr(hub_module, "EARLY_S", 60.0)
    first = await accepted(hub, redis, "e3")
    key = hub.keys.events("e3")
    await until(lambda: key in hub._covered)
    end = await redis.xadd(key, {"type": "task_completed", "data": "{}"})
    await until(lambda: "e3" not in hub._subs, timeout=2)
    late = await hub.subscribe("e3", "0-0")
    assert [e[0] for e in await drain_queue(late, 2)] == [first[0], end]
    hub.unsubscribe(late)


async def test_at_most_max_early_tasks_are_followed_unwatched(
    hub: EventHub, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub_module, "MAX_EARLY", 3)
    for i in range(5):
        await accepted(hub, redis, f"m{i}")
    await asyncio.sleep(0)
    assert len(hub._early) == 3 and hub.open_streams == 0
    # One beyond the bound streams as before: plan_created from memory, the rest read.
    sub = hub.subscribe_accepted("m4", "0-0")
    assert sub is not None and [e[1] for e in await drain_queue(sub, 1)] == ["plan_created"]
    hub.unsubscribe(sub)
