"""The LLM brain (``AGENTIC_LLM_PROVIDER=openai``): any OpenAI-compatible endpoint.

=================  ==========================================================================
``client``         ``AsyncOpenAI`` wrapper: complete / stream, usage, timeouts and retries
``errors``         SDK failures → retryable ``LLMUnavailable`` or permanent ``LLMRequestRejected``
``pricing``        tokens → cost units with a per-model price table and a currency
``prompts``        system prompts, quoted ``<document>`` blocks, the prompt-injection policy
``planner``        JSON plan, validated; one repair round; offline fallback
``step``           shared by the streaming agents: token cap (budget), result with usage
``analyzer``       streamed analysis notes
``writer``         streamed Markdown report, with a Sources section appended
=================  ==========================================================================

Models: ``AGENTIC_MODEL``, overridden per agent by ``AGENTIC_PLANNER_MODEL``,
``AGENTIC_ANALYZER_MODEL`` and ``AGENTIC_WRITER_MODEL``. The retriever is not an LLM.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.agents.llm.analyzer import LLMAnalyzer
from app.agents.llm.client import LLMClient
from app.agents.llm.planner import LLMPlanner
from app.agents.llm.pricing import PriceTable
from app.agents.llm.writer import LLMWriter
from app.models import MAX_PLAN_STEPS

if TYPE_CHECKING:
    from app.config import Settings

__all__ = ["LLMAnalyzer", "LLMClient", "LLMPlanner", "LLMWriter", "build_llm_agents"]


def build_llm_agents(settings: Settings) -> dict[str, LLMAnalyzer | LLMWriter]:
    client = LLMClient.from_settings(settings)
    prices = PriceTable.from_settings(settings)
    limits = {
        "max_output_tokens": settings.llm_max_output_tokens,
        "max_context_chars": settings.llm_max_context_chars,
    }
    return {
        "analyzer": LLMAnalyzer(
            client, settings.analyzer_model or settings.model, prices, **limits
        ),
        "writer": LLMWriter(client, settings.writer_model or settings.model, prices, **limits),
    }


def build_llm_planner(settings: Settings) -> LLMPlanner:
    return LLMPlanner(
        LLMClient.from_settings(settings),
        settings.planner_model or settings.model,
        max_steps=min(settings.max_plan_steps, MAX_PLAN_STEPS),
        timeout_s=settings.planner_timeout_s,
        json_mode=settings.llm_json_mode,
    )
