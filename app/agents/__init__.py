"""Agent brains: the planner and the step agents, built from settings.

``AGENTIC_LLM_PROVIDER=offline`` (default): the deterministic planner, analyzer and writer.
``openai``: the LLM brain (``app.agents.llm``) plans, analyzes and writes against any
OpenAI-compatible endpoint. Either way the retriever is the BM25 corpus search plus the
SSRF-guarded fetch of URLs the user named (``AGENTIC_FETCH_ENABLED``, default on), and the
web-search seam (``AGENTIC_WEB_SEARCH_PROVIDER=none``, off). ``AGENTIC_EXECUTOR=noop`` swaps
every step agent for a :class:`~app.agents.noop.NoopAgent` (the planner stays real: plans are
cheap and the DAG shape is what the benchmarks exercise).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, get_args

from app.agents.analyzer import OfflineAnalyzer
from app.agents.base import Agent, Planner
from app.agents.fetch import GuardedFetcher
from app.agents.noop import NoopAgent
from app.agents.planner import OfflinePlanner
from app.agents.retriever import OfflineRetriever
from app.agents.websearch import build_web_search
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
    llm = settings.llm_provider == "openai"
    retriever = OfflineRetriever(
        settings.corpus_dir,
        fetcher=GuardedFetcher.from_settings(settings) if settings.fetch_enabled else None,
        web_search=build_web_search(settings),
        priced=not llm,  # under the LLM brain, cost units are money: a search costs none
    )
    if llm:
        from app.agents.llm import build_llm_agents  # the openai SDK loads only when used

        return {"retriever": retriever, **build_llm_agents(settings)}
    return {"retriever": retriever, "analyzer": OfflineAnalyzer(), "writer": OfflineWriter()}


def build_planner(settings: Settings) -> Planner:
    if settings.llm_provider == "openai":
        from app.agents.llm import build_llm_planner

        return build_llm_planner(settings)
    return OfflinePlanner(max_steps=min(settings.max_plan_steps, MAX_PLAN_STEPS))
