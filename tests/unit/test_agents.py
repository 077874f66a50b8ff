"""Agent wiring, no-op agents, purity, and the whole offline pipeline from plan to report."""

from __future__ import annotations

import ast
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from app.agents import AGENT_NAMES, build_agents, build_planner
from app.agents.analyzer import OfflineAnalyzer
from app.agents.base import Agent, Planner, StepInput, StepOutput
from app.agents.noop import NoopAgent
from app.agents.planner import OfflinePlanner
from app.agents.retriever import OfflineRetriever
from app.agents.writer import OfflineWriter
from app.config import Settings
from app.models import Plan

AGENTS_DIR = Path(__file__).resolve().parents[2] / "app" / "agents"


def make_settings(**overrides: Any) -> Settings:
    """Offline defaults whatever the environment says (AGENTIC_* variables)."""
    values: dict[str, Any] = {
        "executor": "agents",
        "llm_provider": "offline",
        "corpus_dir": None,
        "noop_delay_ms": 0,
        "max_plan_steps": 32,
        "fetch_enabled": False,
    }
    return Settings(**{**values, **overrides})


def step_input(agent: str, instruction: str = "do it", **inputs: dict[str, Any]) -> StepInput:
    return StepInput(
        task_id="t1",
        step_id=f"{agent}_1",
        agent=agent,
        instruction=instruction,
        user_input="task",
        inputs=inputs,
    )


# --- wiring ---------------------------------------------------------------------------------


def test_build_agents_offline() -> None:
    agents = build_agents(make_settings())
    assert list(agents) == ["retriever", "analyzer", "writer"] == list(AGENT_NAMES)
    assert isinstance(agents["retriever"], OfflineRetriever)
    assert isinstance(agents["analyzer"], OfflineAnalyzer)
    assert isinstance(agents["writer"], OfflineWriter)
    for name, agent in agents.items():
        assert isinstance(agent, Agent)
        assert agent.name == name


def test_openai_provider_builds_the_llm_brain() -> None:
    from app.agents.llm import LLMWriter

    agents = build_agents(
        make_settings(llm_provider="openai", openai_base_url="http://127.0.0.1:9/v1")
    )
    assert isinstance(agents["writer"], LLMWriter)
    assert isinstance(build_agents(make_settings())["writer"], OfflineWriter)


def test_build_agents_passes_the_corpus_dir(tmp_path: Path) -> None:
    retriever = build_agents(make_settings(corpus_dir=tmp_path))["retriever"]
    assert isinstance(retriever, OfflineRetriever)
    assert retriever.corpus_dir == tmp_path


def test_build_planner_honours_max_plan_steps() -> None:
    planner = build_planner(make_settings(max_plan_steps=3))
    assert isinstance(planner, Planner) and isinstance(planner, OfflinePlanner)
    assert planner.max_steps == 3


# --- no-op agents -----------------------------------------------------------------------------


async def test_noop_agents_return_at_once() -> None:
    agents = build_agents(make_settings(executor="noop"))
    assert all(isinstance(a, NoopAgent) for a in agents.values())
    started = time.perf_counter()
    outputs = [await agent.run(step_input(name)) for name, agent in agents.items()]
    assert time.perf_counter() - started < 0.05
    assert all(o.cost_units == 0 for o in outputs)
    assert all(o.data["noop"] is True for o in outputs)
    assert isinstance(outputs[-1].data["markdown"], str)  # the writer still yields an output


async def test_noop_delay_is_respected() -> None:
    agent = build_agents(make_settings(executor="noop", noop_delay_ms=30))["analyzer"]
    started = time.perf_counter()
    await agent.run(step_input("analyzer"))
    assert time.perf_counter() - started >= 0.03


# --- purity -----------------------------------------------------------------------------------

FORBIDDEN = ("redis", "fastapi", "starlette", "app.orchestration", "app.api", "worker", "httpx")
#: The URL fetcher is a tool of the retriever: the one place in app/agents that speaks HTTP.
HTTP_TOOLS = {"fetch.py", "netguard.py"}


@pytest.mark.parametrize("path", sorted(AGENTS_DIR.glob("*.py")), ids=lambda p: p.name)
def test_agents_import_nothing_of_delivery(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.append(node.module)
    forbidden = tuple(f for f in FORBIDDEN if not (f == "httpx" and path.name in HTTP_TOOLS))
    bad = [m for m in imported if m.split(".")[0] in forbidden or m.startswith(forbidden)]
    assert bad == []


# --- the whole offline pipeline ---------------------------------------------------------------


async def run_plan(task: str) -> tuple[Plan, dict[str, StepOutput]]:
    """Run every step in topological order, feeding each its dependencies' results."""
    settings = make_settings()
    plan = await build_planner(settings).plan(task)
    agents = build_agents(settings)
    outputs: dict[str, StepOutput] = {}
    for step in plan.topological_order():
        step_in = StepInput(
            task_id="t1",
            step_id=step.id,
            agent=step.agent,
            instruction=step.instruction,
            user_input=task,
            inputs={dep: outputs[dep].data for dep in step.depends_on},
        )
        outputs[step.id] = await agents[step.agent].run(step_in)
        json.dumps(outputs[step.id].data)  # results must be storable as JSON
    return plan, outputs


def assert_cited_report(markdown: str) -> None:
    body, _, sources = markdown.partition("\n## Sources\n")
    assert sources, "no Sources section"
    cited = {int(n) for n in re.findall(r"\[(\d+)\]", body)}
    listed = {int(n) for n in re.findall(r"^(\d+)\. ", sources, re.M)}
    assert cited, "no citations"
    assert cited <= listed


async def test_pipeline_comparison_report() -> None:
    task = "Compare Redis Streams and Kafka for job queues and recommend one"
    plan, outputs = await run_plan(task)
    assert [s.id for s in plan.steps] == ["retrieve_1", "retrieve_2", "analyze", "write"]
    md = outputs["write"].data["markdown"]
    assert md.startswith("# Redis Streams vs Kafka for job queues")
    assert "## Redis Streams" in md and "## Kafka" in md and "## Recommendation" in md
    assert_cited_report(md)
    titles = [s["title"] for s in outputs["write"].data["sources"]]
    assert any("Redis Streams" in t for t in titles) and any("Kafka" in t for t in titles)
    assert sum(o.cost_units for o in outputs.values()) > 2.0


@pytest.mark.parametrize(
    "task",
    [
        "Write a report on Kafka retention and durability settings",
        "How does XAUTOCLAIM work? What does KEDA's lagCount measure?",
        "Summarise https://example.com/queues/dead-letter and retries with jitter",
    ],
)
async def test_pipeline_other_shapes_cite_sources(task: str) -> None:
    _, outputs = await run_plan(task)
    md = outputs["write"].data["markdown"]
    assert_cited_report(md)
    if "https://" in task:
        assert "not fetched" in md


async def test_pipeline_finds_figures() -> None:
    _, outputs = await run_plan("Write a report on Kafka retention and durability settings")
    figures = outputs["analyze"].data["figures"]
    assert any(f["value"] in {"168 hours", "7 days"} for f in figures)
    assert "## Figures" in outputs["write"].data["markdown"]


async def test_pipeline_is_deterministic() -> None:
    task = "Compare RabbitMQ and NATS JetStream for a work queue"
    _, first = await run_plan(task)
    _, second = await run_plan(task)
    assert first["write"].data == second["write"].data
