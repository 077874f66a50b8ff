"""complete.lua: several records of one task in one call (the call's shared view of the task)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import redis

from app.models import Plan, PlanStep
from app.orchestration.recorder import Outcome, ack_args
from tests.integration.harness import BENCH_PLAN, Harness

pytestmark = pytest.mark.integration


async def call(harness: Harness, *records: object, max_cost: float = 0) -> Any:
    flat = [a for r in records for a in r]  # type: ignore[attr-defined]
    codes, _ = await harness.store.scripts.call(
        "complete", harness.keys.prefix, harness.settings.task_ttl_s, 0, max_cost, "", "",
        *flat,
    )  # fmt: skip
    return codes


def rec(task_id: str, agent: str, sid: str, entry: str, hint: str = "?", cost: float = 0,
        text: str = "t") -> list[Any]:  # fmt: skip
    return Outcome(
        "f", agent, task_id, sid, 1, entry, orjson.dumps({"from": sid}), "s", text, 1, cost, 0, 0,
        dependents=hint,
    ).args()  # fmt: skip


async def entry_of(harness: Harness, agent: str) -> str:
    return (await harness.redis.xrange(harness.keys.agent_stream(agent)))[-1][0]


async def test_fan_in_in_one_call_with_unknown_hints(harness: Harness) -> None:
    task_id = await harness.store.submit("x", BENCH_PLAN)
    e = await entry_of(harness, "retriever")
    codes = await call(harness, rec(task_id, "retriever", "retrieve_1", e),
                       rec(task_id, "retriever", "retrieve_2", e))  # fmt: skip
    assert codes == [1, 1]
    ((_, body),) = await harness.redis.xrange(harness.keys.agent_stream("analyzer"))
    assert set(orjson.loads(body["x"])["s"]["analyze"]["in"]) == {"retrieve_1", "retrieve_2"}
    assert await harness.redis.hget(harness.keys.task(task_id), "analyze|deps_left") == "0"


async def test_budget_stop_then_a_later_record_of_the_task_in_the_same_call(
    harness: Harness,
) -> None:
    task_id = await harness.store.submit("x", BENCH_PLAN)
    e = await entry_of(harness, "retriever")
    codes = await call(
        harness,
        rec(task_id, "retriever", "retrieve_1", e, "analyze", cost=5),
        rec(task_id, "retriever", "retrieve_2", e, "analyze", cost=5),
        max_cost=1,
    )
    assert codes == [3, 4]
    fields = await harness.redis.hgetall(harness.keys.task(task_id))
    assert fields["state"] == "failed" and fields["n_done"] == "1"
    assert fields["retrieve_2|state"] == "cancelled" and fields["analyze|deps_left"] == "2"
    types = [(e["type"], e.get("step_id")) for e in await harness.events(task_id)]
    assert types[-1][0] == "task_failed" and ("step_started", "retrieve_2") not in types
    assert not await harness.redis.xlen(harness.keys.agent_stream("analyzer"))


#: One retriever step, then two sinks (writers) that depend on it.
TWO_SINKS = Plan(
    steps=[
        PlanStep(id="a", agent="retriever", instruction="a"),
        PlanStep(id="s1", agent="writer", instruction="s1", depends_on=["a"]),
        PlanStep(id="s2", agent="writer", instruction="s2", depends_on=["a"]),
    ]
)


async def two_sinks_queued(harness: Harness) -> tuple[str, str]:
    """A TWO_SINKS task with its first step recorded: (its id, the writer entry carrying both
    sinks)."""
    task_id = await harness.store.submit("x", TWO_SINKS)
    e = await entry_of(harness, "retriever")
    assert await call(harness, rec(task_id, "retriever", "a", e, "s1,s2")) == [1]
    return task_id, await entry_of(harness, "writer")


async def test_two_sinks_completing_in_one_call_give_the_output_in_plan_order(
    harness: Harness,
) -> None:
    """The task_completed event (laid out by the script, not by cjson) carries the task's
    figures as its hash holds them, and its output escaped as JSON."""
    task_id, w = await two_sinks_queued(harness)
    codes = await call(harness, rec(task_id, "writer", "s2", w, "", text='"two"', cost=0.2),
                       rec(task_id, "writer", "s1", w, "", text="one", cost=0.1),
                       rec(task_id, "writer", "s1", w, "", text="dup"))  # fmt: skip
    assert codes == [1, 2, 4]
    fields = await harness.redis.hgetall(harness.keys.task(task_id))
    assert fields["state"] == "completed" and fields["output"] == 'one\n\n"two"'
    events = await harness.events(task_id)
    assert [e["type"] for e in events].count("step_completed") == 3
    done = {k: v for k, v in events[-1].items() if k != "id"}  # the entry id, added by events()
    assert done == {
        "type": "task_completed",
        "task_id": task_id,
        "ts": int(fields["finished_ms"]),
        "latency_ms": int(fields["latency_ms"]),
        "cost_units": 0.2 + 0.1,  # in full: 0.30000000000000004, as the hash has it
        "tokens_in": 0,
        "tokens_out": 0,
        "output": 'one\n\n"two"',
    }
    assert fields["cost_units"] == "0.30000000000000004"


async def test_ack_records_between_step_records(harness: Harness) -> None:
    """An ACK-only record is three values (kind 'a', agent, entry): the records around it are
    read at their own places, and each entry it names is ACKed with the call."""
    first = await harness.store.submit("x", BENCH_PLAN)
    second = await harness.store.submit("y", BENCH_PLAN)
    stream = harness.keys.agent_stream("retriever")
    await harness.redis.xgroup_create(stream, "retriever", id="0")
    await harness.redis.xreadgroup("retriever", "w1", {stream: ">"})
    (e1, _), (e2, _) = await harness.redis.xrange(stream)
    codes = await call(
        harness,
        rec(first, "retriever", "retrieve_1", e1),
        rec(first, "retriever", "retrieve_2", e1),
        ack_args("retriever", e1),
        rec(second, "retriever", "retrieve_1", e2),
        ack_args("retriever", e2),
        rec(second, "retriever", "retrieve_2", e2),
    )
    assert codes == [1, 1, 1, 1, 1, 1]
    assert (await harness.redis.xpending(stream, "retriever"))["pending"] == 0
    for task_id in (first, second):
        fields = await harness.redis.hgetall(harness.keys.task(task_id))
        assert (fields["n_done"], fields["analyze|state"]) == ("2", "queued")


async def test_a_record_that_fails_after_completing_its_task_keeps_its_totals(
    harness: Harness,
) -> None:
    """Two sinks in one call: the second completes the task, which writes the task's hash
    (totals included) at once, then fails (here: the expiry, given a TTL the server refuses).
    What it wrote stays written, as any write before a script error does; the totals must not
    be put back to the first record's under the state the second wrote."""
    task_id, w = await two_sinks_queued(harness)
    records = [
        *rec(task_id, "writer", "s1", w, "", cost=0.25),
        *rec(task_id, "writer", "s2", w, "", cost=0.5),
    ]
    with pytest.raises(redis.exceptions.ResponseError, match="expire"):
        await harness.store.scripts.call(
            "complete", harness.keys.prefix, 10**17, 0, 0, "", "", *records
        )
    fields = await harness.redis.hgetall(harness.keys.task(task_id))
    assert (fields["state"], fields["n_done"], fields["cost_units"]) == ("completed", "3", "0.75")


async def test_a_record_that_spent_nothing_keeps_the_cost_of_one_that_did(
    harness: Harness,
) -> None:
    """A call writes a task's totals once, and its cost and tokens only if one of its records
    spent some: a record that spent nothing, after one that did, must not leave them out."""
    task_id, w = await two_sinks_queued(harness)
    codes = await call(harness, rec(task_id, "writer", "s1", w, "", cost=0.25),
                       rec(task_id, "writer", "s2", w, ""))  # fmt: skip
    assert codes == [1, 2]
    fields = await harness.redis.hgetall(harness.keys.task(task_id))
    assert (fields["state"], fields["n_done"], fields["cost_units"]) == ("completed", "3", "0.25")
    other = await harness.store.submit("y", BENCH_PLAN)
    e = await entry_of(harness, "retriever")
    codes = await call(harness, rec(other, "retriever", "retrieve_1", e, "analyze"),
                       rec(other, "retriever", "retrieve_2", e, "analyze", cost=0.5))  # fmt: skip
    assert codes == [1, 1]
    fields = await harness.redis.hgetall(harness.keys.task(other))
    assert (fields["n_done"], fields["cost_units"]) == ("2", "0.5")


async def test_a_sink_recorded_under_a_hint_naming_dependents_still_ends_its_task(
    harness: Harness,
) -> None:
    """A record's dependents hint only shapes the call's read of the task: under a hint that
    names dependents, the read leaves out what only the task's end needs (its creation time,
    its sinks), and the step's own ``dependents`` decide. A sink recorded so still ends the
    task, with its output and latency."""
    task_id, w = await two_sinks_queued(harness)
    assert await call(harness, rec(task_id, "writer", "s1", w, "", text="one")) == [1]
    assert await call(harness, rec(task_id, "writer", "s2", w, "s1", text="two")) == [2]
    fields = await harness.redis.hgetall(harness.keys.task(task_id))
    assert (fields["state"], fields["output"]) == ("completed", "one\n\ntwo")
    assert int(fields["latency_ms"]) == int(fields["finished_ms"]) - int(fields["created_ms"])
    assert (await harness.events(task_id))[-1]["type"] == "task_completed"
