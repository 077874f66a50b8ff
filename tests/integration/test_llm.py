"""The LLM brain end to end: API and worker processes against a fake OpenAI-compatible server.

Each model name is scripted on the fake (``fake-planner``, ``fake-analyzer``, ``fake-writer``
via the per-agent model settings), which also records the usage it reported, so the token
counts and costs in ``GET /metrics/{id}`` are compared with what the "endpoint" said.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from app.config import Settings
from app.keys import Keys
from tests.fakes.openai_server import DEFAULT_PLAN, DEFAULT_TEXT, Fail, FakeOpenAI, Reply
from tests.integration.procs import Proc, sse_frames, start_api, start_worker, wait_terminal

pytestmark = pytest.mark.integration

KEY = "sk-integration-secret-7d41a9"
TASK = "Compare Redis Streams and Kafka for job queues and write a short recommendation"
PRICES = {
    "fake-analyzer": {"input_per_1k": 1.0, "output_per_1k": 2.0},
    "fake-writer": {"input_per_1k": 3.0, "output_per_1k": 5.0},
}
ANALYSIS = "## Key points\n\n- Redis Streams deliver at least once [1].\n- Kafka keeps logs [3]."


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=KEY) as server:
        # Paced so the worker's progress batching (100 ms) yields several events per step.
        server.default(
            "fake-analyzer",
            Reply(text=ANALYSIS, usage=(400, 50), chunk_chars=9, chunk_delay_s=0.04),
        )
        server.default(
            "fake-writer",
            Reply(text=DEFAULT_TEXT, usage=(700, 90), chunk_chars=20, chunk_delay_s=0.04),
        )
        yield server


@pytest.fixture
def llm(settings: Settings, fake: FakeOpenAI) -> Settings:
    return settings.model_copy(
        update={
            "executor": "agents",
            "llm_provider": "openai",
            "openai_base_url": fake.url,
            "planner_model": "fake-planner",
            "analyzer_model": "fake-analyzer",
            "writer_model": "fake-writer",
            "llm_timeout_s": 10.0,
            "llm_max_retries": 2,
            "planner_timeout_s": 10.0,
        }
    )


def secrets() -> dict[str, Any]:
    """Settings that must reach the processes as JSON or that env_for() leaves out."""
    return {"openai_api_key": KEY, "pricing": json.dumps(PRICES)}


@pytest.fixture
def api(llm: Settings, tmp_path: Path) -> Iterator[Proc]:
    proc = start_api(llm, tmp_path, log_level="DEBUG", **secrets())
    yield proc
    proc.terminate()


@pytest.fixture
def worker(llm: Settings, tmp_path: Path) -> Iterator[Proc]:
    proc = start_worker(llm, tmp_path, log_level="DEBUG", **secrets())
    yield proc
    proc.terminate()


def submit(api: Proc, task: str = TASK) -> dict[str, Any]:
    r = httpx.post(f"{api.url}/run-task", json={"user_input": task}, timeout=30)
    assert r.status_code == 202, r.text
    return dict(r.json())


def progress_of(frames: list[tuple[str, str, dict[str, Any]]], agent: str) -> list[str]:
    return [d["text"] for _, e, d in frames if e == "step_progress" and d["agent"] == agent]


def test_full_run_plans_streams_and_costs_from_the_endpoint(
    api: Proc, worker: Proc, fake: FakeOpenAI
) -> None:
    body = submit(api)
    assert body["planner"] == "llm"
    assert [s["id"] for s in body["steps_created"]] == [s["id"] for s in DEFAULT_PLAN["steps"]]
    frames = list(sse_frames(f"{api.url}{body['stream_url']}"))
    assert frames[0][1] == "plan_created" and frames[0][2]["planner"] == "llm"
    assert frames[-1][1] == "task_completed", frames[-1]
    output = frames[-1][2]["output"]

    writer_text = progress_of(frames, "writer")
    assert len(writer_text) >= 2 and "".join(writer_text) == output
    assert output.startswith(DEFAULT_TEXT) and "## Sources" in output
    analyzer_text = progress_of(frames, "analyzer")
    assert len(analyzer_text) >= 2 and "".join(analyzer_text) == ANALYSIS

    metrics = httpx.get(f"{api.url}/metrics/{body['task_id']}").json()
    a_in, a_out = fake.usage_sum("fake-analyzer")
    w_in, w_out = fake.usage_sum("fake-writer")
    assert (a_in, a_out, w_in, w_out) == (400, 50, 700, 90)
    assert metrics["tokens_in"] == a_in + w_in and metrics["tokens_out"] == a_out + w_out
    steps = {s["step_id"]: s for s in metrics["steps"]}
    assert (steps["an"]["tokens_in"], steps["an"]["tokens_out"]) == (400, 50)
    assert (steps["wr"]["tokens_in"], steps["wr"]["tokens_out"]) == (700, 90)
    analyzer_cost = 0.4 * 1.0 + 0.05 * 2.0
    writer_cost = 0.7 * 3.0 + 0.09 * 5.0
    assert steps["an"]["cost_units"] == pytest.approx(analyzer_cost)
    assert steps["wr"]["cost_units"] == pytest.approx(writer_cost)
    assert steps["r1"]["cost_units"] == 0 and steps["r1"]["tokens_in"] == 0
    assert metrics["cost_units"] == pytest.approx(analyzer_cost + writer_cost)

    task = httpx.get(f"{api.url}/tasks/{body['task_id']}").json()
    writer = next(s for s in task["steps"] if s["id"] == "wr")
    usage = writer["result"]["usage"]
    assert usage["currency"] == "USD" and usage["model"] == "fake-writer"
    assert usage["usage_estimated"] is False
    assert all(c.authorization == f"Bearer {KEY}" for c in fake.calls)
    for proc in (api, worker):  # logged at DEBUG, the key still appears nowhere
        assert KEY not in proc.log()


def test_bad_plans_are_repaired_or_replaced_by_the_offline_planner(
    api: Proc, fake: FakeOpenAI
) -> None:
    fake.script("fake-planner", Reply(text="{not json"), Reply(text='{"steps": []}'))
    fallback = submit(api)
    assert fallback["planner"] == "offline-fallback"
    assert [s["agent"] for s in fallback["steps_created"]] == [
        "retriever", "retriever", "analyzer", "writer",
    ]  # fmt: skip
    first = next(sse_frames(f"{api.url}{fallback['stream_url']}", limit=1))
    assert first[1] == "plan_created" and first[2]["planner"] == "offline-fallback"

    cyclic = {"steps": [{"id": "a", "agent": "writer", "instruction": "x", "depends_on": ["a"]}]}
    fake.script(
        "fake-planner", Reply(text=json.dumps(cyclic)), Reply(text=json.dumps(DEFAULT_PLAN))
    )
    repaired = submit(api)
    assert repaired["planner"] == "llm-repaired"
    task = httpx.get(f"{api.url}/tasks/{repaired['task_id']}").json()
    assert task["planner"] == "llm-repaired"
    assert "itself" in fake.calls[-1].body["messages"][-1]["content"]


def test_rate_limit_with_retry_after_is_absorbed(api: Proc, worker: Proc, fake: FakeOpenAI) -> None:
    fake.script("fake-writer", Fail(429, "rate limited", retry_after=1))
    body = submit(api)
    task = wait_terminal(api.url, body["task_id"])
    assert task["state"] == "completed", task
    assert [c.status for c in fake.calls if c.model == "fake-writer"] == [429, 200]
    metrics = httpx.get(f"{api.url}/metrics/{body['task_id']}").json()
    assert {s["step_id"]: s["attempts"] for s in metrics["steps"]}["wr"] == 1


def test_transient_failure_past_sdk_retries_becomes_a_step_retry(
    api: Proc, llm: Settings, tmp_path: Path, fake: FakeOpenAI
) -> None:
    worker = start_worker(llm, tmp_path, llm_max_retries=0, **secrets())
    try:
        fake.script("fake-analyzer", Fail(503, "overloaded"))
        body = submit(api)
        task = wait_terminal(api.url, body["task_id"])
        assert task["state"] == "completed", task
        frames = list(sse_frames(f"{api.url}{body['stream_url']}"))
        retries = [d for _, e, d in frames if e == "step_retrying"]
        assert [(d["step_id"], d["attempt"]) for d in retries] == [("an", 2)]
        assert "HTTP 503" in retries[0]["error"]
        # The failed attempt's usage is not counted: only the attempt that completed.
        metrics = httpx.get(f"{api.url}/metrics/{body['task_id']}").json()
        assert metrics["tokens_in"] == sum(fake.usage_sum(m)[0] for m in PRICES)
    finally:
        worker.terminate()


async def test_permanent_400_dead_letters_the_step(
    api: Proc, worker: Proc, fake: FakeOpenAI, redis: Redis, llm: Settings
) -> None:
    fake.script("fake-writer", Fail(400, "maximum context length exceeded"))
    body = submit(api)
    task = wait_terminal(api.url, body["task_id"])
    assert task["state"] == "failed"
    assert "LLMRequestRejected" in task["error"] and "context length" in task["error"]
    assert [c.status for c in fake.calls if c.model == "fake-writer"] == [400]
    frames = list(sse_frames(f"{api.url}{body['stream_url']}"))
    assert [e for _, e, _ in frames if e in ("step_retrying",)] == []
    assert frames[-1][1] == "task_failed"
    dead = await redis.xrange(Keys(llm.prefix).dlq)
    assert [(f["task_id"], f["step_id"]) for _, f in dead] == [(body["task_id"], "wr")]


def test_token_budget_stops_the_task(llm: Settings, tmp_path: Path, fake: FakeOpenAI) -> None:
    budget = {"task_max_tokens": 300, **secrets()}
    api = start_api(llm, tmp_path, **budget)
    worker = start_worker(llm, tmp_path, **budget)
    try:
        body = submit(api)  # the analyzer alone reports 450 tokens
        task = wait_terminal(api.url, body["task_id"], timeout=30)
        frames = list(sse_frames(f"{api.url}{body['stream_url']}"))
        assert task["state"] == "failed" and "budget" in (task["error"] or "").lower()
        assert frames[-1][1] == "task_failed" and "budget" in frames[-1][2]["error"].lower()
        assert not [d for _, e, d in frames if e == "step_started" and d["step_id"] == "wr"]
        assert fake.calls_for("fake-writer", status=None) == []
        # The in-agent guard: the analyzer asked for no more tokens than the budget had left.
        assert fake.calls_for("fake-analyzer")[0].body["max_tokens"] == 300
    finally:
        worker.terminate()
        api.terminate()
