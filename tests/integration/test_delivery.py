"""Invariants 2-4: fenced completion, dependency order, batching, retries, dead letters."""

from __future__ import annotations

import asyncio
from collections import Counter
from functools import partial
from typing import Any

import orjson
import pytest
import redis

from app.errors import TaskConflict
from app.models import Plan, PlanStep
from app.orchestration import telemetry
from app.orchestration.recorder import Outcome
from app.orchestration.store import RUN_FIELDS, step_field, submission
from tests.integration.harness import BENCH_PLAN, Harness, ScriptedAgent, agents

pytestmark = pytest.mark.integration


async def test_dag_runs_in_dependency_order_and_completes(harness: Harness) -> None:
    await harness.start_worker(agents())
    task_id = await harness.store.submit("compare a and b", BENCH_PLAN)
    assert await harness.wait_state(task_id) == "completed"
    events = await harness.events(task_id)
    done = {e["step_id"]: e["id"] for e in events if e["type"] == "step_completed"}
    started = {e["step_id"]: e["id"] for e in events if e["type"] == "step_started"}
    key = lambda i: tuple(int(x) for x in i.split("-"))  # noqa: E731
    assert key(started["analyze"]) > max(key(done["retrieve_1"]), key(done["retrieve_2"]))
    assert key(started["write"]) > key(done["analyze"])
    task = await harness.store.get(task_id)
    assert task.output == "# write"
    assert task.steps[2].result == {
        "step": "analyze",
        "inputs": ["retrieve_1", "retrieve_2"],
        "markdown": "# analyze",
    }
    assert events[-1]["type"] == "task_completed"
    for agent in ("retriever", "analyzer", "writer"):  # every entry was acknowledged
        pending = await harness.redis.xpending(harness.keys.agent_stream(agent), agent)
        assert pending["pending"] == 0, agent


async def test_ready_steps_for_one_agent_are_batched_in_one_entry(harness: Harness) -> None:
    task_id = await harness.store.submit("compare a and b", BENCH_PLAN)
    entries = await harness.redis.xrange(harness.keys.agent_stream("retriever"))
    ((_, fields),) = entries
    assert (fields["t"], fields["s"]) == (task_id, "retrieve_1,retrieve_2")
    # What the steps need to run travels with them (a worker may run them before claiming).
    assert orjson.loads(fields["x"]) == {
        "u": "compare a and b",
        "k": 0,
        "s": {
            "retrieve_1": {"a": 1, "i": "a", "in": {}, "d": "analyze"},
            "retrieve_2": {"a": 1, "i": "b", "in": {}, "d": "analyze"},
        },
    }


async def test_submit_writes_the_task_and_its_roots_in_one_unit(harness: Harness) -> None:
    """store.submit lays out the task hash and the events; the script adds times and entries.
    Roots on two agents, a repeated dependency and two sinks, whose texts end up in the output
    in plan order."""
    plan = Plan(
        steps=[
            PlanStep(id="r", agent="retriever", instruction="find r"),
            PlanStep(id="n", agent="analyzer", instruction="look at n"),
            PlanStep(id="w", agent="writer", instruction="write", depends_on=["r", "n", "r"]),
            PlanStep(id="s", agent="analyzer", instruction="sum up", depends_on=["r"]),
        ]
    )
    task_id = await harness.store.submit("input", plan)
    fields = await harness.redis.hgetall(harness.keys.task(task_id))
    ts = fields["created_ms"]
    assert fields["steps"] == "r,n,w,s" and fields["sinks"] == "w,s"
    assert (fields["n_steps"], fields["n_done"]) == ("4", "0")
    assert orjson.loads(fields["plan"])["steps"][2]["depends_on"] == ["r", "n", "r"]
    assert [fields[f"{sid}|state"] for sid in "rnws"] == ["queued", "queued", "pending", "pending"]
    assert [fields[f"{sid}|deps_left"] for sid in "rnws"] == ["0", "0", "2", "1"]
    assert (fields["r|dependents"], fields["n|dependents"]) == ("w,s", "w")
    assert [fields[f"{sid}|sink"] for sid in "rnws"] == ["0", "0", "1", "1"]
    assert fields["r|queued_ms"] == fields["n|queued_ms"] == ts and "w|queued_ms" not in fields
    assert (fields["w|instr"], fields["w|agent"], fields["w|attempt"]) == ("write", "writer", "1")
    roots = (("retriever", "r", "find r", "w,s"), ("analyzer", "n", "look at n", "w"))
    for agent, sid, instruction, dependents in roots:
        ((entry, body),) = await harness.redis.xrange(harness.keys.agent_stream(agent))
        assert (fields[f"{sid}|entry"], body["t"], body["s"]) == (entry, task_id, sid)
        # What a worker runs the step from before claiming it (enqueue in common.lua's format).
        spec = {"a": 1, "i": instruction, "in": {}, "d": dependents}
        assert orjson.loads(body["x"]) == {"u": "input", "k": 0, "s": {sid: spec}}
    # plan_created names the roots it queued: they get no step_queued of their own.
    (event,) = await harness.events(task_id)
    assert (event["type"], event["ts"], event["task_id"]) == ("plan_created", int(ts), task_id)
    assert event["plan"] == orjson.loads(fields["plan"])
    assert event["queued"] == [
        {"step_id": "r", "agent": "retriever", "attempt": 1},
        {"step_id": "n", "agent": "analyzer", "attempt": 1},
    ]
    await harness.start_worker(agents())
    assert await harness.wait_state(task_id) == "completed"
    assert (await harness.store.get(task_id)).output == "# w\n\n# s"
    with pytest.raises(TaskConflict):  # an id names one task: a second submit writes nothing
        await harness.store.submit("again", plan, task_id=task_id)
    assert (await harness.redis.hget(harness.keys.task(task_id), "user_input")) == "input"


async def test_submissions_that_arrive_together_go_in_one_call(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Group commit: what arrives while a call is in flight goes in the next one. Each task is
    its own unit there: an id that exists already fails alone, the others are created."""
    calls: list[int] = []
    real_call = harness.store.scripts.call

    async def counting_call(name: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(len(args))
        return await real_call(name, *args, **kwargs)

    monkeypatch.setattr(harness.store.scripts, "call", counting_call)
    taken = await harness.store.submit("first", BENCH_PLAN)
    ids = [f"t{i}" for i in range(10)]
    outcomes = await asyncio.gather(
        *(harness.store.submit(f"input {i}", BENCH_PLAN, task_id=i) for i in ids),
        harness.store.submit("again", BENCH_PLAN, task_id=taken),
        return_exceptions=True,
    )
    assert outcomes[:10] == ids and isinstance(outcomes[10], TaskConflict)
    assert len(calls) == 2  # the lone first one, then the eleven that queued behind nothing
    for i in ids:
        fields = await harness.redis.hgetall(harness.keys.task(i))
        assert fields["user_input"] == f"input {i}" and fields["retrieve_1|entry"]
        assert (await harness.events(i))[0]["type"] == "plan_created"
    entries = await harness.redis.xrange(harness.keys.agent_stream("retriever"))
    assert [body["t"] for _, body in entries] == [taken, *ids]
    assert (await harness.redis.hget(harness.keys.task(taken), "user_input")) == "first"
    await harness.start_worker(agents())
    assert {await harness.wait_state(i) for i in ids} == {"completed"}


async def test_a_submit_call_reads_and_writes_the_task_index_once(harness: Harness) -> None:
    """The index of recent tasks costs one ZMSCORE and one ZADD per call, however many tasks it
    creates, and names each of them; a chosen id whose index entry is gone (trimmed) while its
    keys live is still refused, and so is an id given twice in one call."""
    before = await _calls(harness)
    ids = await asyncio.gather(*(harness.store.submit(f"t{i}", BENCH_PLAN) for i in range(9)))
    calls = await _calls(harness) - before
    runs = calls["time"]  # one per script run (an FCALL answered "not found" runs nothing)
    assert runs < 9  # group commit: the nine share one or two calls
    assert calls["zmscore"] == calls["zadd"] == runs and not calls["exists"]
    index = harness.keys.tasks_index
    assert set(await harness.redis.zrange(index, 0, -1)) >= set(ids)
    await harness.redis.zrem(index, ids[0])
    with pytest.raises(TaskConflict):
        await harness.store.submit("again", BENCH_PLAN, task_id=ids[0])
    args: list[Any] = [harness.keys.prefix]
    for text in ("one", "two"):
        one = submission("same", text, BENCH_PLAN)  # a generated id, twice
        args += [len(one), *one]
    first, second = await harness.store.scripts.call("submit", *args)
    assert first[0] > 0 and second == [0, ""]
    assert await harness.redis.hget(harness.keys.task("same"), "user_input") == "one"
    assert await harness.redis.zscore(index, "same") == first[0]


async def test_a_retried_submission_of_a_generated_id_is_not_a_conflict(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call whose reply was lost is retried by the client and finds its own task: with an id
    the store generated, that is the task this request created, not someone else's."""
    from app.orchestration import store as store_mod

    monkeypatch.setattr(store_mod, "new_task_id", lambda: "generated")
    assert await harness.store.submit("first", BENCH_PLAN) == "generated"
    assert await harness.store.submit("first", BENCH_PLAN) == "generated"  # the retry
    assert (await harness.redis.hget(harness.keys.task("generated"), "user_input")) == "first"
    assert [e["type"] for e in await harness.events("generated")].count("plan_created") == 1
    with pytest.raises(TaskConflict):  # an id the caller chose may name another task
        await harness.store.submit("again", BENCH_PLAN, task_id="generated")


async def test_a_failed_submit_call_fails_its_batch_only(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every submission of a failed call gets its error (none waits forever); the next call
    goes on, and a request cancelled while its call runs does not disturb the others."""
    real_call = harness.store.scripts.call
    failures = [ConnectionError("lost the server")]

    async def flaky_call(name: str, *args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0.05)
        if failures:
            raise failures.pop()
        return await real_call(name, *args, **kwargs)

    monkeypatch.setattr(harness.store.scripts, "call", flaky_call)
    first = [asyncio.create_task(harness.store.submit("x", BENCH_PLAN)) for _ in range(3)]
    await asyncio.sleep(0)
    second = [asyncio.create_task(harness.store.submit("y", BENCH_PLAN)) for _ in range(3)]
    for task in first:
        with pytest.raises(ConnectionError):
            await task
    second[0].cancel()
    created = await asyncio.gather(*second[1:])
    for task_id in created:
        assert await harness.redis.hget(harness.keys.task(task_id), "state") == "running"
    assert second[0].cancelled()


async def test_independent_steps_run_in_parallel(harness: Harness) -> None:
    retriever = ScriptedAgent("retriever", delay_s=0.5)
    await harness.start_worker(agents(retriever=retriever))
    task_id = await harness.store.submit("x", BENCH_PLAN)
    assert await harness.wait_state(task_id) == "completed"
    first, second = retriever.run_times
    assert abs(second - first) < 0.25  # both started before either finished


async def test_same_entry_delivered_twice_records_one_result(harness: Harness) -> None:
    """A duplicate of an entry (redelivery, or a producer that wrote it twice) is harmless."""
    task_id = await harness.store.submit("x", BENCH_PLAN)
    stream = harness.keys.agent_stream("retriever")
    ((_, fields),) = await harness.redis.xrange(stream)
    await harness.redis.xadd(stream, fields)  # the very same batch, a second time
    retriever = ScriptedAgent("retriever", delay_s=0.2)
    await harness.start_worker(agents(retriever=retriever))
    assert await harness.wait_state(task_id) == "completed"
    events = await harness.events(task_id)
    completed = Counter(e["step_id"] for e in events if e["type"] == "step_completed")
    assert completed == Counter({"retrieve_1": 1, "retrieve_2": 1, "analyze": 1, "write": 1})
    assert sum(1 for e in events if e["type"] == "task_completed") == 1


async def complete(harness: Harness, *records: object, consumer: str = "", slots: str = "") -> Any:
    """complete.lua's codes for these records (with a hand-off offer: codes and handed)."""
    codes, handed = await harness.store.scripts.call(
        "complete",
        harness.keys.prefix,
        harness.settings.task_ttl_s,
        0,
        0,
        consumer,
        slots,
        *records,
    )
    return (codes, handed) if consumer else codes


async def test_unclaimed_outcome_is_fenced_on_its_carrier_entry(harness: Harness) -> None:
    """Kind 'f' (a step that ran before it was claimed) records start and result together,
    only for the entry that carries a queued step, and never over a claimed attempt."""
    task_id = await harness.store.submit("x", BENCH_PLAN)
    scripts, p = harness.store.scripts, harness.keys.prefix
    ttl = harness.settings.task_ttl_s
    ((entry, _),) = await harness.redis.xrange(harness.keys.agent_stream("retriever"))

    def unclaimed(sid: str, carrier: str, attempt: int = 1) -> list[object]:
        return Outcome(
            "f", "retriever", task_id, sid, attempt, carrier, b"{}", "s", "t", 3, 1, 0, 0
        ).args()

    assert await complete(harness, *unclaimed("retrieve_1", "1-1")) == [5]
    # The carrier at another attempt than the one it carried (its events would say so).
    assert await complete(harness, *unclaimed("retrieve_1", entry, attempt=2)) == [5]
    await scripts.call("start", p, task_id, 3, ttl, entry, "retrieve_2")  # claimed: running
    codes = await complete(
        harness, *unclaimed("retrieve_1", entry), *unclaimed("retrieve_2", entry)
    )
    assert codes == [1, 0]
    assert await complete(harness, *unclaimed("retrieve_1", entry)) == [5]
    events = [e for e in await harness.events(task_id) if e.get("step_id") == "retrieve_1"]
    assert [e["type"] for e in events] == ["step_started", "step_completed"]
    assert events[0]["attempt"] == events[1]["attempt"] == 1
    fields = await harness.redis.hgetall(harness.keys.task(task_id))
    assert (
        fields["retrieve_1|state"] == "completed"
        and step_field(fields, "retrieve_1")("runs") == "1"
    )
    assert fields["retrieve_2|state"] == "running"


async def test_a_step_readied_by_one_batch_carries_every_result_of_it(harness: Harness) -> None:
    """Both parallel steps recorded in one call: the step they ready is queued with both
    results in its entry (complete.lua takes the first one's from what the call wrote)."""
    task_id = await harness.store.submit("x", BENCH_PLAN)
    ((entry, _),) = await harness.redis.xrange(harness.keys.agent_stream("retriever"))

    def done(sid: str) -> list[object]:
        result = orjson.dumps({"from": sid})
        return Outcome(
            "f", "retriever", task_id, sid, 1, entry, result, "s", "t", 1, 0, 0, 0
        ).args()

    assert await complete(harness, *done("retrieve_1"), *done("retrieve_2")) == [1, 1]
    ((_, body),) = await harness.redis.xrange(harness.keys.agent_stream("analyzer"))
    assert orjson.loads(body["x"])["s"]["analyze"]["in"] == {
        "retrieve_1": {"from": "retrieve_1"},
        "retrieve_2": {"from": "retrieve_2"},
    }


async def _calls(harness: Harness) -> Counter[str]:
    stats = await harness.redis.info("commandstats")
    return Counter({name[8:]: int(v["calls"]) for name, v in stats.items()})


def _retrieved(task_id: str, entry: str, dependents: str = "analyze") -> Any:
    def done(sid: str, cost: object = 0) -> list[object]:
        args = Outcome(
            "f", "retriever", task_id, sid, 1, entry, orjson.dumps({"from": sid}), "s", "t", 1,
            0, 0, 0, dependents=dependents,
        ).args()  # fmt: skip
        args[9] = cost
        return args

    return done


async def test_one_call_reads_and_writes_a_task_once(harness: Harness) -> None:
    """Both parallel steps of a task in one call: one HMGET reads them with their dependent
    (the records name it, from their entry), one HSET writes the task, and the completion that
    readies the dependent names it (``queued``) instead of a step_queued event."""
    task_id = await harness.store.submit("x", BENCH_PLAN)
    ((entry, body),) = await harness.redis.xrange(harness.keys.agent_stream("retriever"))
    assert {s["d"] for s in orjson.loads(body["x"])["s"].values()} == {"analyze"}
    done = _retrieved(task_id, entry)
    before = await _calls(harness)
    assert await complete(harness, *done("retrieve_1"), *done("retrieve_2")) == [1, 1]
    calls = await _calls(harness) - before
    assert (calls["hmget"], calls["hset"], calls["hget"]) == (1, 1, 0)
    # step_started and step_completed of each, and the analyzer's entry: nothing else
    assert calls["xadd"] == 5
    events = await harness.events(task_id)
    assert [(e["type"], e.get("step_id")) for e in events[1:]] == [
        ("step_started", "retrieve_1"),
        ("step_completed", "retrieve_1"),
        ("step_started", "retrieve_2"),
        ("step_completed", "retrieve_2"),
    ]
    assert "queued" not in events[2]
    assert events[4]["queued"] == [{"step_id": "analyze", "agent": "analyzer", "attempt": 1}]
    fields = await harness.redis.hgetall(harness.keys.task(task_id))
    ((analyzer_entry, _),) = await harness.redis.xrange(harness.keys.agent_stream("analyzer"))
    assert (fields["analyze|state"], fields["analyze|deps_left"]) == ("queued", "0")
    assert fields["analyze|entry"] == analyzer_entry and fields["n_done"] == "2"


@pytest.mark.parametrize("hint", ["?", "", "write", "analyze,write"])
async def test_records_whose_dependents_are_unknown_or_wrong_still_ready_them(
    harness: Harness, hint: str
) -> None:
    """The dependents a record names are a hint for the read: the hash decides. Unknown ('?'),
    none, or wrong ones cost a second read, never a missed or a spurious step."""
    task_id = await harness.store.submit("x", BENCH_PLAN)
    ((entry, _),) = await harness.redis.xrange(harness.keys.agent_stream("retriever"))
    done = _retrieved(task_id, entry, dependents=hint)
    assert await complete(harness, *done("retrieve_1")) == [1]
    assert await complete(harness, *done("retrieve_2")) == [1]
    ((_, body),) = await harness.redis.xrange(harness.keys.agent_stream("analyzer"))
    assert orjson.loads(body["x"])["s"]["analyze"]["in"] == {
        "retrieve_1": {"from": "retrieve_1"},
        "retrieve_2": {"from": "retrieve_2"},
    }
    fields = await harness.redis.hgetall(harness.keys.task(task_id))
    assert (fields["analyze|deps_left"], fields["write|deps_left"]) == ("0", "1")
    assert fields["write|state"] == "pending" and not await harness.redis.xlen(
        harness.keys.agent_stream("writer")
    )


async def test_a_step_recorded_twice_in_one_call_counts_once(harness: Harness) -> None:
    """The second record of a step reads what the first wrote in the same call (the call's
    view of the task), not the hash as it was before the call."""
    task_id = await harness.store.submit("x", BENCH_PLAN)
    ((entry, _),) = await harness.redis.xrange(harness.keys.agent_stream("retriever"))
    done = _retrieved(task_id, entry)
    codes = await complete(harness, *done("retrieve_1"), *done("retrieve_1"), *done("retrieve_2"))
    assert codes == [1, 5, 1]
    fields = await harness.redis.hgetall(harness.keys.task(task_id))
    assert (fields["n_done"], fields["analyze|deps_left"]) == ("2", "0")
    types = [e["type"] for e in await harness.events(task_id)]
    assert types.count("step_completed") == 2
    assert await harness.redis.xlen(harness.keys.agent_stream("analyzer")) == 1


async def test_a_record_that_fails_midway_keeps_the_others_and_drops_its_own(
    harness: Harness,
) -> None:
    """A script error in one record: the records before it are written whole, its own pending
    writes are dropped, nothing is ACKed; the call's replay records the rest."""
    task_id = await harness.store.submit("x", BENCH_PLAN)
    stream = harness.keys.agent_stream("retriever")
    await harness.redis.xgroup_create(stream, "retriever", id="0")
    ((entry, _),) = await harness.redis.xrange(stream)
    await harness.redis.xreadgroup("retriever", "w1", {stream: ">"})
    done = _retrieved(task_id, entry)
    broken = done("retrieve_2", cost="not a number")  # fails after its first writes
    broken[12] = entry  # it would ACK the entry
    with pytest.raises(redis.exceptions.ResponseError):
        await complete(harness, *done("retrieve_1"), *broken)
    fields = await harness.redis.hgetall(harness.keys.task(task_id))
    assert (fields["retrieve_1|state"], fields["n_done"]) == ("completed", "1")
    assert fields["retrieve_2|state"] == "queued"
    assert "retrieve_2|run" not in fields and "retrieve_2|started_ms" not in fields
    assert (await harness.redis.xpending(stream, "retriever"))["pending"] == 1
    replay = done("retrieve_2")
    replay[12] = entry
    assert await complete(harness, *done("retrieve_1"), *replay) == [5, 1]
    assert (await harness.redis.xpending(stream, "retriever"))["pending"] == 0
    assert await harness.redis.hget(harness.keys.task(task_id), "analyze|state") == "queued"


async def test_a_record_that_fails_after_counting_itself_leaves_the_totals_as_they_were(
    harness: Harness,
) -> None:
    """A task's totals go out once per call (however many of its records the call holds): a
    record that fails after adding itself to them must not leave itself in them."""
    task_id = await harness.store.submit("x", BENCH_PLAN)
    key = harness.keys.task(task_id)
    ((entry, _),) = await harness.redis.xrange(harness.keys.agent_stream("retriever"))
    done = _retrieved(task_id, entry)
    # Its completion counts, then fails readying a dependent the plan never had.
    await harness.redis.hset(key, "retrieve_2|dependents", "nowhere")
    with pytest.raises(redis.exceptions.ResponseError):
        await complete(harness, *done("retrieve_1", cost=0.5), *done("retrieve_2", cost=0.25))
    fields = await harness.redis.hgetall(key)
    assert (fields["n_done"], fields["cost_units"]) == ("1", "0.5")
    assert (fields["retrieve_1|state"], fields["retrieve_2|state"]) == ("completed", "queued")
    await harness.redis.hset(key, "retrieve_2|dependents", "analyze")
    assert await complete(harness, *done("retrieve_2", cost=0.25)) == [1]
    fields = await harness.redis.hgetall(key)
    assert (fields["n_done"], fields["cost_units"]) == ("2", "0.75")
    assert fields["analyze|state"] == "queued"


async def unclaimed_and_claimed(
    harness: Harness, unclaimed: dict[str, Any], claimed: dict[str, Any]
) -> str:
    """A task whose retrieve_1 is recorded unclaimed (kind 'f') and retrieve_2 claimed (by
    start.lua, then kind 'c'), in one call, with these figures; returns the task's id."""
    task_id = await harness.store.submit("x", BENCH_PLAN)
    scripts, p = harness.store.scripts, harness.keys.prefix
    ((entry, _),) = await harness.redis.xrange(harness.keys.agent_stream("retriever"))
    await scripts.call("start", p, task_id, 3, harness.settings.task_ttl_s, entry, "retrieve_2")
    retrieved = partial(Outcome, agent="retriever", task_id=task_id, attempt=1,
                        result_json=b"{}", text="")  # fmt: skip
    first = retrieved("f", step_id="retrieve_1", entry=entry, **unclaimed)
    second = retrieved("c", step_id="retrieve_2", entry="", **claimed)
    assert await complete(harness, *first.args(), *second.args()) == [1, 1]
    return task_id


async def test_recorded_events_carry_every_field_clients_read(harness: Harness) -> None:
    """step_started and step_completed, whose JSON the worker lays out (Outcome.args) and the
    script completes with its time, for an unclaimed step (kind 'f') and a claimed one."""
    task_id = await unclaimed_and_claimed(
        harness,
        {"summary": "ok é", "run_ms": 7, "cost_units": 0.25, "tokens_in": 3, "tokens_out": 4},
        {"summary": "fine", "run_ms": 5, "cost_units": 1.0, "tokens_in": 0, "tokens_out": 0},
    )
    events = await harness.events(task_id)
    mine = [e for e in events if e["type"] in ("step_started", "step_completed")]
    assert [(e["type"], e["step_id"]) for e in mine] == [
        ("step_started", "retrieve_2"),  # by start.lua, at the claim
        ("step_started", "retrieve_1"),
        ("step_completed", "retrieve_1"),
        ("step_completed", "retrieve_2"),
    ]
    for event in mine:
        assert event["task_id"] == task_id and event["agent"] == "retriever"
        assert event["attempt"] == 1 and isinstance(event["ts"], int)
    started, done_1, done_2 = mine[1:]
    assert started["ts"] <= done_1["ts"] and set(started) == {
        "type",
        "task_id",
        "step_id",
        "agent",
        "attempt",
        "ts",
        "id",
    }
    assert (done_1["summary"], done_1["run_ms"], done_1["cost_units"]) == ("ok é", 7, 0.25)
    assert (done_2["summary"], done_2["run_ms"], done_2["cost_units"]) == ("fine", 5, 1.0)


async def test_a_completed_steps_figures_read_back(harness: Harness) -> None:
    """A completed attempt's figures sit in one ``run`` field (complete.lua): the metrics and
    the task read them back, for a step that ran unclaimed (kind 'f', whose start, queue wait
    and runs are in it too) and for a claimed one (start.lua's fields). A step recorded by an
    earlier release, with a field of its own for each figure, reads the same."""
    task_id = await unclaimed_and_claimed(
        harness,
        {"summary": "a", "run_ms": 7, "cost_units": 0.25, "tokens_in": 3, "tokens_out": 4},
        {"summary": "b", "run_ms": 5, "cost_units": 1.5, "tokens_in": 10, "tokens_out": 20},
    )
    key = harness.keys.task(task_id)
    fields = await harness.redis.hgetall(key)
    assert len(fields["retrieve_1|run"].split(",")) == len(RUN_FIELDS)
    assert len(fields["retrieve_2|run"].split(",")) == 5  # start.lua's three are fields
    events = {(e["type"], e["step_id"]): e for e in await harness.events(task_id) if "step_id" in e}
    metrics = {s.step_id: s for s in (await harness.store.metrics(task_id)).steps}
    steps = {s.id: s for s in (await harness.store.get(task_id)).steps}
    for sid, run_ms, cost, tin, tout in (
        ("retrieve_1", 7, 0.25, 3, 4),
        ("retrieve_2", 5, 1.5, 10, 20),
    ):
        m, s = metrics[sid], steps[sid]
        assert (m.state, m.attempts, m.run_ms, m.cost_units) == ("completed", 1, run_ms, cost)
        assert (m.tokens_in, m.tokens_out) == (tin, tout) and m.queue_wait_ms is not None
        assert s.started_at_ms == events[("step_started", sid)]["ts"]
        assert s.finished_at_ms == events[("step_completed", sid)]["ts"]
    task = await harness.store.metrics(task_id)
    assert (task.attempts_total, task.run_ms_total, task.tokens_in) == (2, 12, 13)

    # The same figures as an earlier release wrote them: a field each, no ``run``.
    old = dict(zip(RUN_FIELDS, fields["retrieve_1|run"].split(","), strict=True))
    await harness.redis.hdel(key, "retrieve_1|run")
    await harness.redis.hset(key, mapping={f"retrieve_1|{k}": v for k, v in old.items()})
    assert (await harness.store.metrics(task_id)).steps[0] == metrics["retrieve_1"]
    assert (await harness.store.get(task_id)).steps[0] == steps["retrieve_1"]


async def test_stale_attempt_cannot_overwrite_a_result(harness: Harness) -> None:
    task_id = await harness.store.submit("x", BENCH_PLAN)
    scripts, p = harness.store.scripts, harness.keys.prefix
    ttl = harness.settings.task_ttl_s
    ((entry, _),) = await harness.redis.xrange(harness.keys.agent_stream("retriever"))
    reply = await scripts.call("start", p, task_id, 3, ttl, entry, "retrieve_1")
    assert reply[2:4] == ["retrieve_1", 1]
    # A second delivery of the running step takes attempt 2 and fences attempt 1 out.
    reply = await scripts.call("start", p, task_id, 3, ttl, entry, "retrieve_1")
    assert reply[2:4] == ["retrieve_1", 2]

    def claimed(attempt: int) -> list[object]:
        return Outcome(
            "c", "retriever", task_id, "retrieve_1", attempt, "", b"{}", "s", "t", 1, 1, 0, 0
        ).args()

    # One call records a batch in order: the stale attempt, the owner, then a duplicate.
    codes = await complete(harness, *claimed(1), *claimed(2), *claimed(2))
    assert codes == [0, 1, 0]
    assert await scripts.call("fail", p, task_id, "retrieve_1", 2, "late", 0, 0, 3, ttl) == 0
    state = await harness.redis.hget(harness.keys.task(task_id), "retrieve_1|state")
    assert state == "completed"
    # Any later delivery of the carrier, or of another entry naming the step, runs nothing.
    assert await scripts.call("start", p, task_id, 3, ttl, entry, "retrieve_1") == ["x", 0]
    assert await scripts.call("start", p, task_id, 3, ttl, "1-1", "retrieve_2") == ["x", 0]


async def test_step_whose_holder_dies_every_time_is_dead_lettered(harness: Harness) -> None:
    """Regression: after one takeover the entry's original attempt no longer matched, so a
    second crash left the step 'running' forever. Redeliveries of the carrier entry count as
    attempts until max_attempts, then the step is dead-lettered and the task fails."""
    task_id = await harness.store.submit("x", BENCH_PLAN)
    scripts, p = harness.store.scripts, harness.keys.prefix
    ttl = harness.settings.task_ttl_s
    ((entry, _),) = await harness.redis.xrange(harness.keys.agent_stream("retriever"))
    attempts = []
    for _ in range(3):  # delivered, holder dies; redelivered, dies; redelivered, dies
        reply = await scripts.call("start", p, task_id, 3, ttl, entry, "retrieve_1")
        attempts.append(reply[3])
    assert attempts == [1, 2, 3]
    assert await scripts.call("start", p, task_id, 3, ttl, entry, "retrieve_1") == []
    task = await harness.store.get(task_id)
    assert task.state.value == "failed" and "lost its worker" in (task.error or "")
    dlq = await harness.redis.xrange(harness.keys.dlq)
    assert [(f["step_id"], f["attempt"]) for _, f in dlq] == [("retrieve_1", "3")]


async def test_failing_step_retries_with_growing_delays_then_dead_letters(harness: Harness) -> None:
    before = telemetry.DEAD_LETTERED.labels("analyzer")._value.get()
    analyzer = ScriptedAgent("analyzer", fail_times=-1)
    await harness.start_worker(agents(analyzer=analyzer))
    task_id = await harness.store.submit("x", BENCH_PLAN)
    assert await harness.wait_state(task_id) == "failed"
    events = await harness.events(task_id)
    retries = [e for e in events if e["type"] == "step_retrying"]
    assert [e["attempt"] for e in retries] == [2, 3]
    assert retries[0]["delay_ms"] < retries[1]["delay_ms"]
    # A retry whose backoff is over is queued on its own: it says so (promote.lua, announce).
    requeued = [e for e in events if e["type"] == "step_queued"]
    assert [(e["step_id"], e["agent"], e["attempt"]) for e in requeued] == [
        ("analyze", "analyzer", 2),
        ("analyze", "analyzer", 3),
    ]
    gaps = [b - a for a, b in zip(analyzer.run_times, analyzer.run_times[1:], strict=False)]
    assert len(analyzer.run_times) == 3 and gaps[0] < gaps[1]
    failed = [e for e in events if e["type"] == "step_failed"]
    assert (
        len(failed) == 1 and failed[0]["attempt"] == 3 and "scripted failure" in failed[0]["error"]
    )
    assert events[-1]["type"] == "task_failed"
    dlq = await harness.redis.xrange(harness.keys.dlq)
    assert [(f["task_id"], f["step_id"], f["attempt"]) for _, f in dlq] == [
        (task_id, "analyze", "3")
    ]
    task = await harness.store.get(task_id)
    assert {s.id: s.state.value for s in task.steps}["write"] == "cancelled"
    assert telemetry.DEAD_LETTERED.labels("analyzer")._value.get() == before + 1


async def test_permanent_error_dead_letters_without_retry(harness: Harness) -> None:
    from app.errors import PermanentStepError

    writer = ScriptedAgent("writer", fail_times=-1, error=PermanentStepError)
    await harness.start_worker(agents(writer=writer))
    task_id = await harness.store.submit("x", BENCH_PLAN)
    assert await harness.wait_state(task_id) == "failed"
    assert sum(writer.runs.values()) == 1


async def test_transient_failure_recovers_and_metrics_count_attempts(harness: Harness) -> None:
    await harness.start_worker(agents(writer=ScriptedAgent("writer", fail_times=1)))
    task_id = await harness.store.submit("x", BENCH_PLAN)
    assert await harness.wait_state(task_id) == "completed"
    metrics = await harness.store.metrics(task_id)
    by_id = {s.step_id: s for s in metrics.steps}
    assert by_id["write"].attempts == 2 and by_id["analyze"].attempts == 1
    assert metrics.retries_total == 1 and metrics.cost_units == 4.0
    assert metrics.latency_ms is not None and metrics.latency_ms >= 0
    # The failed attempt's error goes when a later attempt completes the step.
    assert not await harness.redis.hexists(harness.keys.task(task_id), "write|error")


async def test_delayed_retry_survives_worker_restart(harness: Harness) -> None:
    harness.settings.retry_initial_s = 1.0
    worker = await harness.start_worker(agents(analyzer=ScriptedAgent("analyzer", fail_times=1)))
    task_id = await harness.store.submit("x", BENCH_PLAN)
    for _ in range(200):
        if await harness.redis.zcard(harness.keys.delayed):
            break
        await asyncio.sleep(0.02)
    await worker.shutdown()
    harness.runtimes.remove(worker)
    assert await harness.redis.zcard(harness.keys.delayed) == 1
    await harness.start_worker(agents())
    assert await harness.wait_state(task_id) == "completed"


async def test_long_step_keeps_its_lease(harness: Harness) -> None:
    """A step running 3x the visibility timeout is not stolen by a second worker."""
    harness.settings.visibility_timeout_s = 0.5
    slow = ScriptedAgent("writer", delay_s=1.5)
    await harness.start_worker(agents(writer=slow), name="a")
    other = ScriptedAgent("writer")
    task_id = await harness.store.submit("x", BENCH_PLAN)
    await asyncio.sleep(0.3)
    await harness.start_worker(agents(writer=other), name="b")
    assert await harness.wait_state(task_id) == "completed"
    assert sum(slow.runs.values()) == 1 and sum(other.runs.values()) == 0


async def test_cancel_stops_the_task(harness: Harness) -> None:
    await harness.start_worker(agents(retriever=ScriptedAgent("retriever", delay_s=0.3)))
    task_id = await harness.store.submit("x", BENCH_PLAN)
    await asyncio.sleep(0.1)
    await harness.store.cancel(task_id)
    assert await harness.wait_state(task_id) == "cancelled"
    await asyncio.sleep(0.5)
    events = await harness.events(task_id)
    assert events[-1]["type"] == "task_cancelled"
    assert not [e for e in events if e["type"] == "step_completed"]
    ttl = await harness.redis.ttl(harness.keys.task(task_id))
    assert 0 < ttl <= harness.settings.task_ttl_s


async def test_cancel_closes_running_steps_with_an_event(harness: Harness) -> None:
    """Invariant 5: a step that started gets its closing event even when the task ends."""
    await harness.start_worker(agents(retriever=ScriptedAgent("retriever", delay_s=0.5)))
    task_id = await harness.store.submit("x", BENCH_PLAN)
    for _ in range(100):
        if any(e["type"] == "step_started" for e in await harness.events(task_id)):
            break
        await asyncio.sleep(0.01)
    await harness.store.cancel(task_id)
    events = await harness.events(task_id)
    started = {e["step_id"] for e in events if e["type"] == "step_started"}
    closed = {e["step_id"] for e in events if e["type"] == "step_failed" and e.get("cancelled")}
    assert started and started == closed
    assert events[-1]["type"] == "task_cancelled"


async def test_token_budget_stops_the_task_cleanly(harness: Harness) -> None:
    harness.settings.task_max_tokens = 15
    retriever = ScriptedAgent("retriever", tokens=10)
    analyzer = ScriptedAgent("analyzer", tokens=10)
    await harness.start_worker(agents(retriever=retriever, analyzer=analyzer))
    task_id = await harness.store.submit("x", BENCH_PLAN)
    assert await harness.wait_state(task_id) == "failed"
    task = await harness.store.get(task_id)
    assert "token budget exhausted: 20 of 15 tokens" in (task.error or "")
    assert sum(analyzer.runs.values()) == 0  # nothing ran after the budget was spent
    assert retriever.budgets[0] == 15  # agents are told what is left
    events = await harness.events(task_id)
    assert events[-1]["type"] == "task_failed" and events[-1]["budget"] is True
    assert (await harness.store.metrics(task_id)).tokens_out == 20


async def test_streamed_progress_is_batched_into_few_events(harness: Harness) -> None:
    writer = ScriptedAgent("writer", chunks=2000)
    await harness.start_worker(agents(writer=writer))
    task_id = await harness.store.submit("x", BENCH_PLAN)
    assert await harness.wait_state(task_id) == "completed"
    events = await harness.events(task_id)
    progress = [e for e in events if e["type"] == "step_progress" and e["step_id"] == "write"]
    text = "".join(e["text"] for e in progress)
    assert text == "".join(f"writer did write #{i}\n" for i in range(2000))
    assert len(progress) < 100  # 2,000 deltas, not 2,000 writes
    order = [e["type"] for e in events if e.get("step_id") == "write"]
    assert order[-1] == "step_completed" and order.index("step_started") < order.index(
        "step_progress"
    )


async def test_unclaimed_step_of_an_ended_task_is_acked_when_its_claim_is_refused(
    harness: Harness,
) -> None:
    """A first delivery runs its step before claiming it. If the task ended meanwhile, the
    claim is refused, the agent is stopped, and the entry (it carried only that step) is ACKed
    at once, as on the claim-first path: not left pending until a reclaim (2 s here)."""
    plan = Plan(steps=[PlanStep(id="only", agent="retriever", instruction="a")])
    slow = ScriptedAgent("retriever", delay_s=0.5)  # outlives the claim window (50 ms)
    await harness.start_worker(agents(retriever=slow))
    task_id = await harness.store.submit("x", plan)
    await harness.store.cancel(task_id)
    stream = harness.keys.agent_stream("retriever")
    pending = -1
    for _ in range(50):  # up to 1 s, well before a reclaim could ACK it
        await asyncio.sleep(0.02)
        pending = (await harness.redis.xpending(stream, "retriever"))["pending"]
        if pending == 0 and slow.runs:
            break
    assert sum(slow.runs.values()) == 1 and pending == 0
    events = [e["type"] for e in await harness.events(task_id)]
    assert "step_started" not in events and events[-1] == "task_cancelled"


async def test_recorder_sends_records_submitted_back_to_back(harness: Harness) -> None:
    """Regression: a record submitted right after the previous batch was answered (the
    flusher task done, its callbacks not run yet) was cancelled instead of sent."""
    from app.orchestration.recorder import Recorder

    stream = harness.keys.agent_stream("retriever")
    await harness.redis.xgroup_create(stream, "retriever", id="0", mkstream=True)
    recorder = Recorder(harness.store.scripts, harness.keys.prefix, harness.settings)
    async with asyncio.timeout(5):  # not wait_for: its extra task hides the race
        for _ in range(3):
            await recorder.ack("retriever", "1-1")


async def test_an_ack_waits_briefly_for_a_record_to_ride_with(harness: Harness) -> None:
    """An ACK alone lingers (ACK_LINGER_S) and goes in the next record's script call; with no
    record coming it goes alone, late but not lost."""
    from app.orchestration import recorder as recorder_mod

    stream = harness.keys.agent_stream("retriever")
    await harness.redis.xgroup_create(stream, "retriever", id="0", mkstream=True)
    task_id = await harness.store.submit("x", BENCH_PLAN)
    reply = await harness.redis.xreadgroup("retriever", "me", {stream: ">"}, count=1)
    entry = reply[0][1][0][0]
    recorder = recorder_mod.Recorder(harness.store.scripts, harness.keys.prefix, harness.settings)
    calls: list[list[str]] = []
    send = recorder._send

    async def counting(records: list[list[Any]], offers: Any) -> Any:
        calls.append([r[0] for r in records])
        return await send(records, offers)

    recorder._send = counting  # type: ignore[method-assign]
    ack = asyncio.ensure_future(recorder.ack("retriever", entry))
    await asyncio.sleep(recorder_mod.ACK_LINGER_S / 5)
    assert calls == [] and not ack.done()
    outcome = recorder_mod.Outcome(
        "f", "retriever", task_id, "retrieve_1", 1, entry, b"{}", "s", "t", 0, 0.0, 0, 0
    )
    assert await recorder.record(outcome) == 1
    await ack
    assert calls == [["a", "f"]]
    assert (await harness.redis.xpending(stream, "retriever"))["pending"] == 0
    # Alone: sent once the linger is over.
    async with asyncio.timeout(1):
        await recorder.ack("retriever", "1-1")
    assert calls[1:] == [["a"]]


async def test_complete_hands_queued_entries_to_its_caller(harness: Harness) -> None:
    """The entry a completion queues is delivered to the caller (pending under it) when the
    caller offers slots for that agent, and is left in the stream for a read otherwise."""
    for agent in ("retriever", "analyzer", "writer"):
        stream = harness.keys.agent_stream(agent)
        await harness.redis.xgroup_create(stream, agent, id="0", mkstream=True)
    task_id = await harness.store.submit("x", BENCH_PLAN)
    ((entry, _),) = await harness.redis.xrange(harness.keys.agent_stream("retriever"))

    def unclaimed(sid: str) -> list[object]:
        return Outcome("f", "retriever", task_id, sid, 1, entry, b"{}", "s", "t", 1, 0, 0, 0).args()

    # retrieve_1 queues nothing: nothing to hand off, whatever the offer.
    codes, handed = await complete(
        harness, *unclaimed("retrieve_1"), consumer="me", slots="analyzer=2,writer=2"
    )
    assert codes == [1] and handed == []
    # retrieve_2 makes analyze ready: its entry comes back in the reply, pending under "me".
    codes, handed = await complete(
        harness, *unclaimed("retrieve_2"), consumer="me", slots="analyzer=1"
    )
    assert codes == [1]
    ((agent, analyze_entry, n, *flat),) = handed  # flat: agent, then id, n, n names and values
    assert agent == "analyzer" and n == len(flat) == 6
    assert dict(zip(flat[::2], flat[1::2], strict=True))["s"] == "analyze"
    pending = await harness.redis.xpending_range(
        harness.keys.agent_stream("analyzer"), "analyzer", "-", "+", 10
    )
    assert [(p["message_id"], p["consumer"]) for p in pending] == [(analyze_entry, "me")]
    # No slot for the writer offered: the write entry waits for a read.
    a_done = Outcome(
        "f", "analyzer", task_id, "analyze", 1, analyze_entry, b"{}", "s", "t", 1, 0, 0, 0
    ).args()
    codes, handed = await complete(harness, *a_done, consumer="me", slots="analyzer=3")
    assert codes == [1] and handed == []
    info = await harness.redis.xinfo_groups(harness.keys.agent_stream("writer"))
    assert info[0]["lag"] == 1 and info[0]["pending"] == 0


async def test_hand_off_to_a_missing_group_does_not_fail_the_call(harness: Harness) -> None:
    """The records are written before the hand-off: a NOGROUP there must not turn a recorded
    outcome into a failed call (which would leave its entry un-ACKed and its result written)."""
    await harness.redis.xgroup_create(
        harness.keys.agent_stream("retriever"), "retriever", id="0", mkstream=True
    )
    task_id = await harness.store.submit("x", BENCH_PLAN)
    ((entry, _),) = await harness.redis.xrange(harness.keys.agent_stream("retriever"))
    records = [
        Outcome("f", "retriever", task_id, sid, 1, entry, b"{}", "s", "t", 1, 0, 0, 0).args()
        for sid in ("retrieve_1", "retrieve_2")
    ]
    codes, handed = await complete(
        harness, *records[0], *records[1], consumer="me", slots="analyzer=4"
    )
    assert codes == [1, 1] and handed == []
    assert await harness.redis.xlen(harness.keys.agent_stream("analyzer")) == 1


async def test_an_entry_handed_to_a_consumer_that_dies_is_reclaimed(harness: Harness) -> None:
    """Handed off, then its worker died before running it: like any delivery, another worker
    reclaims it after the visibility timeout and the task completes."""
    harness.settings.visibility_timeout_s = 0.3
    for agent in ("retriever", "analyzer", "writer"):
        stream = harness.keys.agent_stream(agent)
        await harness.redis.xgroup_create(stream, agent, id="0", mkstream=True)
    task_id = await harness.store.submit("x", BENCH_PLAN)
    ((entry, _),) = await harness.redis.xrange(harness.keys.agent_stream("retriever"))
    records = [
        Outcome(
            "f",
            "retriever",
            task_id,
            sid,
            1,
            entry,
            b"{}",
            "s",
            "t",
            1,
            0,
            0,
            0,
            entry if i else "",
        ).args()
        for i, sid in enumerate(("retrieve_1", "retrieve_2"))
    ]
    _, handed = await complete(
        harness, *records[0], *records[1], consumer="dead", slots="analyzer=1"
    )
    assert len(handed) == 1  # pending under "dead", which never runs it
    analyzer = ScriptedAgent("analyzer")
    await harness.start_worker(agents(analyzer=analyzer), name="alive")
    assert await harness.wait_state(task_id) == "completed"
    assert sum(analyzer.runs.values()) == 1


async def test_a_worker_takes_the_next_step_from_its_own_completion(harness: Harness) -> None:
    """One worker hosting every agent: the analyze and write entries reach it through the
    hand-off, not through its reads, and the task runs as before."""
    handed = telemetry.HANDED_OFF.labels
    before = {a: handed(a)._value.get() for a in ("analyzer", "writer")}
    await harness.start_worker(agents())
    task_id = await harness.store.submit("x", BENCH_PLAN)
    assert await harness.wait_state(task_id) == "completed"
    assert {a: handed(a)._value.get() - before[a] for a in before} == {"analyzer": 1, "writer": 1}
    for agent in ("retriever", "analyzer", "writer"):
        pending = await harness.redis.xpending(harness.keys.agent_stream(agent), agent)
        assert pending["pending"] == 0, agent


async def test_no_hand_off_once_the_worker_stops(harness: Harness) -> None:
    runtime = await harness.start_worker(agents())
    await asyncio.sleep(0.1)  # the read loops are blocked in their reads
    # A blocked read holds all free slots but one: that one is for a hand-off.
    assert [c.offer_slots() for c in runtime.consumers] == [1, 1, 1]
    for consumer in runtime.consumers:
        consumer.withdraw(1)
    runtime.request_stop()
    assert [c.offer_slots() for c in runtime.consumers] == [0, 0, 0]


async def test_offered_slots_are_reserved_until_withdrawn(harness: Harness) -> None:
    """What a call in flight may hand us counts against the slots of reads and of other
    calls' offers: hand-offs never take a consumer past worker_concurrency."""
    harness.settings.worker_concurrency = 3
    runtime = await harness.start_worker(agents())
    await asyncio.sleep(0.1)
    consumer = runtime.consumers[0]
    assert consumer._reading == 2  # the blocked read: all free slots but one
    assert consumer.offer_slots() == 1
    assert consumer.offer_slots() == 0 and consumer._free() == 0
    consumer.withdraw(1)
    assert consumer._free() == 1


async def test_a_failed_hand_off_does_not_fail_the_records(harness: Harness) -> None:
    """The records of a call are settled before its hand-offs are dispatched: a consumer that
    fails to take them costs a reclaim later, never a written record reported as failed."""
    from app.orchestration.recorder import Recorder

    for agent in ("retriever", "analyzer"):
        stream = harness.keys.agent_stream(agent)
        await harness.redis.xgroup_create(stream, agent, id="0", mkstream=True)
    task_id = await harness.store.submit("x", BENCH_PLAN)
    ((entry, _),) = await harness.redis.xrange(harness.keys.agent_stream("retriever"))

    class Broken:
        withdrawn = 0

        def offer_slots(self) -> int:
            return 1

        def withdraw(self, n: int) -> None:
            self.withdrawn += n

        async def take(self, entries: list[Any]) -> None:
            raise RuntimeError("cannot take")

    broken = Broken()
    recorder = Recorder(harness.store.scripts, harness.keys.prefix, harness.settings)
    recorder.hand_off_to("me", {"analyzer": broken})  # type: ignore[dict-item]

    def done(sid: str) -> Outcome:
        return Outcome("f", "retriever", task_id, sid, 1, entry, b"{}", "s", "t", 0, 0.0, 0, 0)

    codes = await asyncio.gather(
        recorder.record(done("retrieve_1")), recorder.record(done("retrieve_2"))
    )
    assert codes == [1, 1] and broken.withdrawn >= 1
    # Handed (pending under "me"), not lost: a reclaim finds it.
    pending = await harness.redis.xpending(harness.keys.agent_stream("analyzer"), "analyzer")
    assert pending["pending"] == 1


async def test_a_stopping_worker_hands_back_what_a_call_delivers(harness: Harness) -> None:
    """Entries a call in flight hands to a worker that has begun to stop are given back at
    once (idle past the visibility timeout), not left to wait for its lease to run out."""
    from app.orchestration.runtime import WorkerRuntime

    runtime = WorkerRuntime(harness.redis, harness.settings, agents(), name="stopping")
    analyzer = next(c for c in runtime.consumers if c.name == "analyzer")
    await analyzer.ensure_group()
    stream = harness.keys.agent_stream("analyzer")
    entry = await harness.redis.xadd(stream, {"t": "x", "s": "analyze"})
    # Delivered to its consumer as a hand-off would be, after the stop began.
    reply = await harness.redis.xreadgroup("analyzer", "stopping", {stream: ">"}, count=1)
    analyzer._stop = asyncio.Event()
    analyzer._stop.set()
    assert analyzer.offer_slots() == 0
    await analyzer.take(reply[0][1])
    assert entry not in analyzer.inflight
    (pending,) = await harness.redis.xpending_range(stream, "analyzer", "-", "+", 10)
    assert pending["message_id"] == entry
    assert pending["time_since_delivered"] >= analyzer.visibility_ms


async def test_a_log_goes_on_past_a_task_failed_only_after_a_redrive(harness: Harness) -> None:
    """A stream at a task_failed asks whether the log goes on: yes when the task was
    redriven since (running again, or ended since, or failed again later), no when that
    failure is its end, or when the task has expired."""
    store, redis = harness.store, harness.redis
    task_id = await store.submit("x", BENCH_PLAN)
    key, events = harness.keys.task(task_id), harness.keys.events(task_id)
    failed = await redis.xadd(events, {"type": "task_failed", "data": "{}"})
    await redis.hset(key, "state", "failed")
    assert not await store.goes_on_after(task_id, failed)  # its end, as things stand
    for state in ("running", "completed", "cancelled"):  # redriven since
        await redis.hset(key, "state", state)
        assert await store.goes_on_after(task_id, failed)
    await redis.xadd(events, {"type": "step_queued", "data": "{}"})
    again = await redis.xadd(events, {"type": "task_failed", "data": "{}"})
    await redis.hset(key, "state", "failed")  # redriven, then failed again
    assert await store.goes_on_after(task_id, failed)
    assert not await store.goes_on_after(task_id, again)
    await redis.delete(key)
    assert not await store.goes_on_after(task_id, again)  # expired
