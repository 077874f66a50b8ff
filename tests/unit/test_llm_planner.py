"""LLM planner: validation, one repair round, offline fallback, JSON-mode negotiation."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from app.agents.llm.client import LLMClient
from app.agents.llm.planner import LLMPlanner, PlanInvalid
from app.agents.planner import make_plan
from app.errors import PlanError
from tests.fakes.openai_server import DEFAULT_PLAN, Fail, FakeOpenAI, Reply

TASK = "Compare Redis Streams and Kafka for job queues and write a short recommendation"
MODEL = "planner-model"


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
async def client(fake: FakeOpenAI) -> AsyncIterator[LLMClient]:
    c = LLMClient(base_url=fake.url, api_key="k", timeout_s=5, max_retries=0)
    yield c
    await c.close()


def planner(client: LLMClient, **kw: Any) -> LLMPlanner:
    return LLMPlanner(client, MODEL, **{"max_steps": 8, "timeout_s": 5.0, **kw})


def steps(*specs: tuple[str, str, list[str]]) -> str:
    return json.dumps(
        {"steps": [{"id": i, "agent": a, "instruction": f"do {i}", "depends_on": d}
                   for i, a, d in specs]}
    )  # fmt: skip


async def test_valid_plan_is_used_as_is(fake: FakeOpenAI, client: LLMClient) -> None:
    plan = await planner(client).plan(TASK)
    assert plan.planner == "llm"
    assert [s.id for s in plan.steps] == [s["id"] for s in DEFAULT_PLAN["steps"]]
    body = fake.calls[0].body
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["strict"] is True
    assert body["messages"][1] == {"role": "user", "content": TASK}


async def test_invalid_plan_gets_one_repair_round(fake: FakeOpenAI, client: LLMClient) -> None:
    cyclic = steps(("a", "retriever", ["b"]), ("b", "writer", ["a"]))
    fake.script(MODEL, Reply(text=cyclic), Reply(text=json.dumps(DEFAULT_PLAN)))
    plan = await planner(client).plan(TASK)
    assert plan.planner == "llm-repaired"
    repair = fake.calls[1].body["messages"]
    assert repair[-2] == {"role": "assistant", "content": cyclic}
    assert "cycle" in repair[-1]["content"]


async def test_still_invalid_after_repair_falls_back_offline(
    fake: FakeOpenAI, client: LLMClient
) -> None:
    fake.script(MODEL, Reply(text="{not json"), Reply(text='{"steps": "nope"}'))
    plan = await planner(client).plan(TASK)
    assert plan.planner == "offline-fallback" and len(fake.calls) == 2
    assert plan.steps == make_plan(TASK, 8).steps


@pytest.mark.parametrize(
    "failure", [Fail(500), Fail(429), Fail(401, "bad key"), Fail(400, "bad request")]
)
async def test_endpoint_errors_fall_back_offline(
    fake: FakeOpenAI, client: LLMClient, failure: Fail
) -> None:
    fake.default(MODEL, failure)
    plan = await planner(client, json_mode="json_object").plan(TASK)
    assert plan.planner == "offline-fallback"


async def test_slow_endpoint_falls_back_within_the_planner_timeout(
    fake: FakeOpenAI, client: LLMClient
) -> None:
    fake.script(MODEL, Reply(delay_s=3.0))
    started = time.monotonic()
    plan = await planner(client, timeout_s=0.3).plan(TASK)
    assert plan.planner == "offline-fallback" and time.monotonic() - started < 2.0


async def test_unreachable_endpoint_falls_back() -> None:
    client = LLMClient(base_url="http://127.0.0.1:9/v1", api_key="k", timeout_s=1, max_retries=0)
    plan = await planner(client).plan(TASK)
    await client.close()
    assert plan.planner == "offline-fallback"


async def test_json_modes_degrade_and_the_working_one_is_remembered(
    fake: FakeOpenAI, client: LLMClient
) -> None:
    fake.reject_json_schema = True
    p = planner(client)
    assert (await p.plan(TASK)).planner == "llm"
    assert (await p.plan(TASK)).planner == "llm"
    formats = [(c.body.get("response_format") or {}).get("type") for c in fake.calls]
    assert formats == ["json_schema", "json_object", "json_object"]


async def test_prompt_only_when_no_json_mode_is_supported(
    fake: FakeOpenAI, client: LLMClient
) -> None:
    fake.reject_json_schema = fake.reject_json_object = True
    fake.script(MODEL, Reply(text=f"Here you go:\n```json\n{steps(('w', 'writer', []))}\n```"))
    plan = await planner(client).plan(TASK)
    assert plan.planner == "llm" and [s.id for s in plan.steps] == ["w"]
    assert [c.status for c in fake.calls] == [400, 400, 200]
    assert "response_format" not in fake.calls[-1].body


async def test_empty_task_is_a_plan_error(client: LLMClient) -> None:
    with pytest.raises(PlanError):
        await planner(client).plan("   ")


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ("no json here", "no JSON object"),
        ("[1, 2]", "no JSON object"),
        ('{"steps": [}', "not valid JSON"),
        ('{"steps": []}', "steps"),
        (steps(("a", "hacker", [])), "agent"),
        (steps(("a", "retriever", ["zz"])), "unknown steps"),
        (steps(("a", "retriever", []), ("a", "writer", [])), "unique"),
        (steps(("a", "retriever", ["a"])), "itself"),
        (steps(("a b", "retriever", [])), "id"),
        (steps(*[(f"s{i}", "retriever", []) for i in range(9)]), "at most 8"),
    ],
)
def test_validation_says_what_is_wrong(client: LLMClient, reply: str, error: str) -> None:
    with pytest.raises(PlanInvalid, match=error):
        planner(client).validate(reply, "llm")


def test_validation_accepts_fenced_and_wrapped_plans(client: LLMClient) -> None:
    body = steps(("r", "retriever", []), ("w", "writer", ["r"]))
    assert planner(client).validate(f"```json\n{body}\n```", "llm").planner == "llm"
    wrapped = json.dumps({"plan": json.loads(body)})
    assert [s.id for s in planner(client).validate(wrapped, "x").steps] == ["r", "w"]
