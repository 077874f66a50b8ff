from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.keys import Keys
from app.models import Plan, PlanStep


def step(sid: str, *deps: str, agent: str = "retriever") -> dict[str, object]:
    return {"id": sid, "agent": agent, "instruction": "do " + sid, "depends_on": list(deps)}


def test_valid_plan_orders_topologically_and_finds_sinks() -> None:
    plan = Plan.model_validate(
        {"steps": [step("w", "a", agent="writer"), step("a", "r1", "r2"), step("r1"), step("r2")]}
    )
    order = [s.id for s in plan.topological_order()]
    assert order.index("a") > order.index("r1") and order.index("w") > order.index("a")
    assert plan.sinks() == ["w"]
    assert plan.dependents()["r1"] == ["a"]


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([step("a", "b"), step("b", "a")], "cycle"),
        ([step("a", "a")], "itself"),
        ([step("a", "zz")], "unknown"),
        ([step("a"), step("a")], "unique"),
        ([], "at least 1"),
        ([{"id": "bad id!", "agent": "retriever", "instruction": "x"}], "pattern"),
        ([{"id": "a", "agent": "planner", "instruction": "x"}], "retriever"),
        ([step(f"s{i}") for i in range(40)], "at most 32"),
    ],
)
def test_invalid_plans_are_rejected(steps: list[dict[str, object]], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Plan.model_validate({"steps": steps})


def test_step_ids_cannot_carry_the_separators_the_scripts_use() -> None:
    for bad in ["a|b", "a:b", "a,b"]:
        with pytest.raises(ValidationError):
            PlanStep(id=bad, agent="writer", instruction="x")


def test_keys_layout() -> None:
    k = Keys("p")
    assert k.agent_stream("writer") == "p:agent:writer" and k.agent_group("writer") == "writer"
    assert k.task_keys("t1") == ("p:task:t1", "p:task:t1:events")
    assert (k.delayed, k.dlq, k.tasks_index) == ("p:delayed", "p:dlq", "p:tasks")
