"""Writer (offline): a cited Markdown report from the analyzer's results.

Layout: ``# Title``, Summary, one section per topic (or Key findings), Figures (a table),
Agreements and contradictions, Recommendation (only when the task asks for one), Sources.
Citations are numbered ``[n]`` in order of first use; the Sources list follows that order.
If a writer step is wired straight to retrievers (an LLM plan may do that), it runs the
offline analysis itself first.

Result (``StepOutput.data``)::

    {"markdown": str, "title": str, "sources": [{"n", "doc_id", "title", "source"}],
     "word_count": int}

Cost model (cost units, deterministic):

    ==========================  =======================================
    base, per step              0.5
    output written              + 0.3 per 1,000 words of the report
    ==========================  =======================================
"""

from __future__ import annotations

import re
from typing import Any

from app.agents.analyzer import analyze, retrieved_inputs
from app.agents.base import ProgressFn, StepInput, StepOutput, _no_progress
from app.agents.report import Citations, render
from app.agents.text import asks_for_recommendation, shorten, word_count

WRITER_BASE_COST = 0.5
WRITER_COST_PER_1K_WORDS = 0.3
_TITLE_RE = re.compile(r'titled "([^"]+)"')


class OfflineWriter:
    name = "writer"

    async def run(self, step: StepInput, progress: ProgressFn = _no_progress) -> StepOutput:
        analysis = gather_analysis(step)
        await progress(f"composing a report from {len(analysis['key_points'])} key points")
        title = report_title(step)
        wants = asks_for_recommendation(f"{step.user_input} {step.instruction}")
        markdown, citations = compose(title, step.user_input, analysis, wants)
        words = word_count(markdown)
        data = {
            "markdown": markdown,
            "title": title,
            "sources": citations.numbered(),
            "word_count": words,
        }
        cost = WRITER_BASE_COST + WRITER_COST_PER_1K_WORDS * words / 1000
        summary = f"report of {words} words citing {len(citations.numbered())} sources"
        return StepOutput(data=data, summary=summary, cost_units=round(cost, 4))


def compose(
    title: str, user_input: str, analysis: dict[str, Any], wants_recommendation: bool
) -> tuple[str, Citations]:
    """The report's Markdown and the citations it used."""
    citations = Citations(analysis.get("sources", []))
    markdown = render(title, user_input, analysis, citations, wants_recommendation)
    return markdown, citations


def report_title(step: StepInput) -> str:
    """The title the planner chose (``titled "..."``), else the task's first line."""
    match = _TITLE_RE.search(step.instruction)
    if match:
        return match.group(1).strip()
    first = step.user_input.strip().splitlines()[0] if step.user_input.strip() else "Report"
    return shorten(first.rstrip(".?!"), 100)


def gather_analysis(step: StepInput) -> dict[str, Any]:
    """Merge every analyzer result among the inputs; analyze raw retriever results first."""
    analyses = [data for data in step.inputs.values() if "key_points" in data]
    retrieved = retrieved_inputs(step.inputs)
    if retrieved:
        task = f"{step.user_input} {step.instruction}"
        analyses.append(analyze(retrieved, task, comparison=len(retrieved) >= 2))
    return merge_analyses(analyses)


def merge_analyses(analyses: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {
        "comparison": any(a.get("comparison") for a in analyses),
        "key_points": [],
        "figures": [],
        "agreements": [],
        "contradictions": [],
        "sources": [],
        "topics": {},
    }
    for analysis in analyses:
        for key in ("key_points", "figures", "agreements", "contradictions", "sources"):
            merged[key].extend(analysis.get(key) or [])
        merged["topics"].update(analysis.get("topics") or {})
    unique: dict[str, dict[str, Any]] = {}
    for source in merged["sources"]:
        unique.setdefault(str(source.get("doc_id", "")), source)
    merged["sources"] = list(unique.values())
    return merged
