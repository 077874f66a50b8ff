"""Offline planner: the DAG follows the task's shape, deterministically and within limits."""

from __future__ import annotations

import pytest

from app.agents.planner import MAX_RETRIEVERS, OfflinePlanner, make_plan, parse_comparison
from app.errors import PlanError
from app.models import MAX_PLAN_STEPS, Plan


def shape(plan: Plan) -> list[tuple[str, str, list[str]]]:
    return [(s.id, s.agent, s.depends_on) for s in plan.steps]


def retrievers(plan: Plan) -> list[str]:
    return [s.instruction for s in plan.steps if s.agent == "retriever"]


BENCH_SHAPE = [
    ("retrieve_1", "retriever", []),
    ("retrieve_2", "retriever", []),
    ("analyze", "analyzer", ["retrieve_1", "retrieve_2"]),
    ("write", "writer", ["analyze"]),
]


async def test_two_item_comparison_is_the_bench_dag() -> None:
    plan = await OfflinePlanner().plan(
        "Compare Redis Streams and Kafka for job queues and write a recommendation"
    )
    assert shape(plan) == BENCH_SHAPE
    assert plan.planner == "offline"
    first, second = retrievers(plan)
    assert first.startswith("Redis Streams:") and "job queues" in first
    assert second.startswith("Kafka:") and "job queues" in second
    assert "Redis Streams" not in second
    assert plan.steps[2].instruction.startswith("Compare Redis Streams and Kafka")


@pytest.mark.parametrize(
    ("task", "items", "context"),
    [
        ("Redis Streams vs Kafka", ["Redis Streams", "Kafka"], ""),
        (
            "Redis Streams vs. Kafka for job queues: which?",
            ["Redis Streams", "Kafka"],
            "job queues",
        ),
        ("Should I use RabbitMQ versus NATS JetStream?", ["RabbitMQ", "NATS JetStream"], ""),
        ("What is the difference between SSE and WebSockets?", ["SSE", "WebSockets"], ""),
        ("Compare Celery with PostgreSQL SKIP LOCKED", ["Celery", "PostgreSQL SKIP LOCKED"], ""),
        (
            "Compare Kafka, RabbitMQ and NATS in terms of delivery guarantees",
            ["Kafka", "RabbitMQ", "NATS"],
            "delivery guarantees",
        ),
    ],
)
def test_comparison_phrasings(task: str, items: list[str], context: str) -> None:
    assert parse_comparison(task) == (items, context)


def test_three_item_comparison_fans_out_and_in() -> None:
    plan = make_plan("Compare Kafka, RabbitMQ and NATS JetStream for a job queue")
    assert [s.id for s in plan.steps] == [
        "retrieve_1",
        "retrieve_2",
        "retrieve_3",
        "analyze",
        "write",
    ]
    assert plan.steps[3].depends_on == ["retrieve_1", "retrieve_2", "retrieve_3"]
    labels = [i.split(":", 1)[0] for i in retrievers(plan)]
    assert labels == ["Kafka", "RabbitMQ", "NATS JetStream"]


def test_comparison_of_a_listed_set() -> None:
    plan = make_plan("Compare the following:\n- Kafka\n- RabbitMQ\n- Celery")
    assert [i.split(":", 1)[0] for i in retrievers(plan)] == ["Kafka", "RabbitMQ", "Celery"]


def test_urls_get_one_fetch_step_each_plus_a_corpus_search() -> None:
    task = (
        "Summarise https://redis.io/docs/latest/develop/data-types/streams/ and "
        "https://kafka.apache.org/documentation/ on consumer groups"
    )
    plan = make_plan(task)
    found = retrievers(plan)
    assert len(found) == 3
    assert "https://redis.io/docs/latest/develop/data-types/streams/" in found[0]
    assert "https://kafka.apache.org/documentation/" in found[1]
    assert found[2].startswith("Corpus search:") and "consumer groups" in found[2]
    assert "http" not in found[2]
    assert plan.steps[-2].depends_on == ["retrieve_1", "retrieve_2", "retrieve_3"]


def test_a_bare_url_gets_no_corpus_search() -> None:
    plan = make_plan("https://example.com/some/page")
    assert [s.id for s in plan.steps] == ["retrieve_1", "analyze", "write"]


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        (
            "What is Kafka's default retention? How does KEDA poll Redis? What is a DLQ?",
            ["What is Kafka's default retention?", "How does KEDA poll Redis?", "What is a DLQ?"],
        ),
        (
            "Job queues:\n1. How do retries with jitter work?\n2. What is a dead-letter queue?",
            ["How do retries with jitter work?", "What is a dead-letter queue?"],
        ),
        (
            "explain visibility timeouts; describe dead-letter queues",
            ["explain visibility timeouts", "describe dead-letter queues"],
        ),
    ],
)
def test_sub_questions_get_one_retriever_each(task: str, expected: list[str]) -> None:
    plan = make_plan(task)
    found = retrievers(plan)
    assert len(found) == len(expected)
    for instruction, question in zip(found, expected, strict=True):
        assert instruction.startswith(question)
    assert plan.steps[-2].agent == "analyzer"
    assert plan.steps[-2].depends_on == [f"retrieve_{i}" for i in range(1, len(expected) + 1)]


def test_list_intro_is_kept_as_context() -> None:
    plan = make_plan("About Kafka:\n- How are offsets stored?\n- What is the default retention?")
    assert all("About Kafka" in i for i in retrievers(plan))


def test_single_topic_gets_overview_and_figures_retrievers() -> None:
    plan = make_plan("Write a report on PostgreSQL as a job queue with SKIP LOCKED")
    assert [s.id for s in plan.steps] == ["retrieve_1", "retrieve_2", "analyze", "write"]
    overview, figures = retrievers(plan)
    assert overview.startswith("Overview: PostgreSQL as a job queue")
    assert figures.startswith("Performance and limits: PostgreSQL as a job queue")
    assert "Write a report" not in overview


def test_the_plan_varies_with_the_task() -> None:
    tasks = [
        "Compare Redis Streams and Kafka",
        "Compare Kafka, RabbitMQ and NATS",
        "What is XAUTOCLAIM? Why does KEDA need lagCount?",
        "Explain KEDA autoscaling",
    ]
    plans = [make_plan(t) for t in tasks]
    assert [len(p.steps) for p in plans] == [4, 5, 4, 4]
    assert len({tuple(retrievers(p)) for p in plans}) == len(tasks)


@pytest.mark.parametrize(
    "task",
    [
        "Compare Redis Streams and Kafka for job queues",
        "Summarise https://example.com/a and caching",
        "What is a PEL? What does XACK do?",
        "Explain Server-Sent Events",
    ],
)
async def test_deterministic_and_valid(task: str) -> None:
    planner = OfflinePlanner()
    first, second = await planner.plan(task), await planner.plan(task)
    assert first.model_dump() == second.model_dump()
    again = Plan.model_validate(first.model_dump())  # the validator accepts it
    assert [s.id for s in again.topological_order()][-2:] == ["analyze", "write"]
    assert first.sinks() == ["write"]


def test_recommendation_is_requested_only_when_asked() -> None:
    asked = make_plan("Compare Redis Streams and Kafka: which should I choose?")
    assert "recommendation" in asked.steps[-1].instruction
    plain = make_plan("Compare Redis Streams and Kafka")
    assert "recommendation" not in plain.steps[-1].instruction
    assert 'titled "Redis Streams vs Kafka"' in plain.steps[-1].instruction


def test_retrievers_and_steps_are_capped() -> None:
    plan = make_plan("Compare " + ", ".join(f"system{i}" for i in range(12)))
    assert len(retrievers(plan)) == MAX_RETRIEVERS
    assert len(plan.steps) == MAX_RETRIEVERS + 2 <= MAX_PLAN_STEPS
    many = "\n".join(f"{i}. What is topic number {i} about?" for i in range(1, 40))
    assert len(make_plan(many).steps) <= MAX_RETRIEVERS + 2


@pytest.mark.parametrize(("max_steps", "expected"), [(4, 4), (3, 3), (2, 2), (1, 1)])
def test_small_step_budgets_still_give_a_valid_plan(max_steps: int, expected: int) -> None:
    plan = make_plan("Compare Redis Streams, Kafka and RabbitMQ", max_steps=max_steps)
    assert len(plan.steps) == expected
    assert plan.steps[-1].id == "write"


def test_long_input_keeps_instructions_bounded() -> None:
    plan = make_plan("Explain " + "very " * 3000 + "long topics")
    assert all(len(s.instruction) <= 4000 for s in plan.steps)


@pytest.mark.parametrize("task", ["", "   \n\t "])
def test_empty_task_is_a_plan_error(task: str) -> None:
    with pytest.raises(PlanError):
        make_plan(task)
