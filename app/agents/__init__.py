"""Agent brains: the planner and the step agents, built from settings.

Only the ``offline`` brain exists so far; ``AGENTIC_LLM_PROVIDER=openai`` falls back to it
until the LLM-backed brain lands. ``AGENTIC_EXECUTOR=noop`` swaps every step agent for a
:class:`~app.agents.noop.NoopAgent` (the planner stays real: plans are cheap and the DAG
shape is what the benchmarks exercise).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, get_args

from app.agents.analyzer import OfflineAnalyzer
from app.agents.base import Agent, Planner
from app.agents.noop import NoopAgent
from app.agents.planner import OfflinePlanner
from app.agents.retriever import OfflineRetriever
from app.agents.writer import OfflineWriter
from app.models import MAX_PLAN_STEPS, AgentName

if TYPE_CHECKING:
    from app.config import Settings

AGENT_NAMES: tuple[str, ...] = get_args(AgentName)

__all__ = ["AGENT_NAMES", "build_agents", "build_planner"]


def build_agents(settings: Settings) -> dict[str, Agent]:
    """One agent per name in :data:`AGENT_NAMES` (``retriever``, ``analyzer``, ``writer``)."""
    if settings.executor == "noop":
        return {name: NoopAgent(name, settings.noop_delay_ms) for name in AGENT_NAMES}
    # llm_provider == "openai" is not implemented yet: the offline brain serves every name.
    return {
        "retriever": OfflineRetriever(settings.corpus_dir),
        "analyzer": OfflineAnalyzer(),
        "writer": OfflineWriter(),
    }


def build_planner(settings: Settings) -> Planner:
    return OfflinePlanner(max_steps=min(settings.max_plan_steps, MAX_PLAN_STEPS))
