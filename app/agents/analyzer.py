"""Analyzer (offline): key points, figures, agreements and contradictions from retrieved passages.

Input: the retrievers' results in ``step.inputs`` (one *topic* per retriever step). Every
passage is split into sentences; a sentence scores by the query and task terms it contains
(topic query terms count double), a little more if it carries a figure. In a comparison
(the instruction says "compare"), passages that never name their topic are skipped. Then:

- key points: the best sentences, near-duplicates (Jaccard >= 0.5) dropped;
- advice: the best sentences that read like advice ("suits", "a better fit", "choice");
- figures: numbers with a unit or role, with their sentence and source;
- agreements: relevant sentences from two or more different documents that share most of
  their terms, and equal figures on the same subject from different documents;
- contradictions (a heuristic, labelled as such): within one topic, different figures for the
  same subject, or "at-least-once" against "exactly-once" (etc.) about the same thing.

Result (``StepOutput.data``)::

    {"comparison": bool, "key_points": [{"text", "source", "doc_id", "title", "topic"}],
     "advice": [...], "figures": [{"value", "number", "unit", "kind", "subject", "text",
     "doc_id", "title", "source", "topic"}], "agreements": [...], "contradictions": [...],
     "sources": [{"doc_id", "title", "source"}],
     "topics": {step_id: {"label", "query", "key_points", "advice", "figures", "doc_ids",
                          "urls"}}}

Cost model (cost units, deterministic):

    ==========================  =======================================
    base, per step              0.5
    input read                  + 0.2 per 1,000 words of passages
    ==========================  =======================================
"""

from __future__ import annotations

import math
import re
from typing import Any

from app.agents.base import ProgressFn, StepInput, StepOutput, _no_progress
from app.agents.evidence import (
    Sentence,
    advice_sentences,
    figure_dicts,
    find_agreements,
    find_contradictions,
    is_about,
    opens_with_pronoun,
)
from app.agents.text import content_terms, jaccard, split_sentences, word_count

ANALYZER_BASE_COST = 0.5
ANALYZER_COST_PER_1K_WORDS = 0.2
KEY_POINTS = 8
KEY_POINTS_PER_TOPIC = 4
MAX_FIGURES = 16
DUPLICATE_JACCARD = 0.5
_MIN_SENTENCE_WORDS = 5
_MAX_SENTENCE_WORDS = 70


class OfflineAnalyzer:
    name = "analyzer"

    async def run(self, step: StepInput, progress: ProgressFn = _no_progress) -> StepOutput:
        retrieved = retrieved_inputs(step.inputs)
        words = sum(word_count(d.get("passage", "")) for _, r in retrieved for d in _docs(r))
        await progress(f"analyzing {words} words from {len(retrieved)} search results")
        comparison = "compar" in step.instruction.lower() and len(retrieved) >= 2
        data = analyze(retrieved, f"{step.user_input} {step.instruction}", comparison)
        cost = ANALYZER_BASE_COST + ANALYZER_COST_PER_1K_WORDS * words / 1000
        summary = (
            f"{len(data['key_points'])} key points, {len(data['figures'])} figures, "
            f"{len(data['agreements'])} agreements, {len(data['contradictions'])} contradictions"
        )
        return StepOutput(data=data, summary=summary, cost_units=round(cost, 4))


def retrieved_inputs(inputs: dict[str, dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """Retriever results by step id, in natural id order (``retrieve_2`` before ``_10``)."""
    found = [(sid, data) for sid, data in inputs.items() if isinstance(data.get("documents"), list)]
    return sorted(found, key=lambda pair: _natural_key(pair[0]))


def analyze(
    retrieved: list[tuple[str, dict[str, Any]]], task: str, comparison: bool = False
) -> dict[str, Any]:
    """The whole analysis as plain JSON-able data (also used by the writer as a fallback)."""
    task_terms = content_terms(task)
    sentences = [s for sid, r in retrieved for s in _sentences(sid, r, task_terms, comparison)]
    ranked = sorted(sentences, key=lambda s: (-s.score, s.order))
    chosen: list[Sentence] = []
    topics = {sid: _topic(sid, r, ranked, chosen) for sid, r in retrieved}
    key_points = _pick(ranked, KEY_POINTS, chosen_before=[])
    figures = figure_dicts([s for s in ranked if s.score > 0])[:MAX_FIGURES]
    return {
        "comparison": comparison,
        "key_points": [s.point() for s in key_points],
        "advice": [s.point() for s in advice_sentences(ranked)],
        "figures": figures,
        "agreements": find_agreements(ranked),
        "contradictions": find_contradictions(ranked, across_topics=not comparison),
        "sources": _sources(retrieved),
        "topics": topics,
    }


def _topic(
    sid: str, result: dict[str, Any], ranked: list[Sentence], chosen: list[Sentence]
) -> dict[str, Any]:
    """A topic's own best sentences; a sentence already used by an earlier topic is skipped."""
    own = [s for s in ranked if s.topic == sid]
    points = _pick(own, KEY_POINTS_PER_TOPIC, chosen_before=chosen)
    chosen.extend(points)
    return {
        "label": str(result.get("topic") or sid),
        "query": str(result.get("query", "")),
        "key_points": [s.point() for s in points],
        "advice": [s.point() for s in _topic_advice(sid, result, ranked)],
        "figures": figure_dicts([s for s in own if s.score > 0])[: MAX_FIGURES // 2],
        "doc_ids": list(dict.fromkeys(str(d.get("doc_id", "")) for d in _docs(result))),
        "urls": list(result.get("urls") or []),
    }


def _topic_advice(sid: str, result: dict[str, Any], ranked: list[Sentence]) -> list[Sentence]:
    """Advice naming the topic, from its own passages first, then from the other topics'."""
    others = [s for s in ranked if s.topic != sid]
    return advice_sentences([s for s in ranked if s.topic == sid] + others, _label_terms(result))


def _pick(ranked: list[Sentence], limit: int, chosen_before: list[Sentence]) -> list[Sentence]:
    picked: list[Sentence] = []
    for sentence in ranked:
        if len(picked) >= limit or sentence.score <= 0:
            break
        others = [*chosen_before, *picked]
        if all(jaccard(sentence.terms, o.terms) < DUPLICATE_JACCARD for o in others):
            picked.append(sentence)
    return picked


def _sentences(
    sid: str, result: dict[str, Any], task_terms: set[str], comparison: bool
) -> list[Sentence]:
    """Scored sentences of one retriever's passages.

    In a comparison, a passage that never names its topic ("SSE") is off-topic, however well
    it matched the shared context words ("streaming progress"), and is skipped.
    """
    query_terms = _query_terms(str(result.get("query", "")))
    label = _label_terms(result) if comparison else set()
    out: list[Sentence] = []
    for rank, doc in enumerate(_docs(result)):
        passage = str(doc.get("passage", ""))
        if label and label.isdisjoint(content_terms(f"{doc.get('title', '')} {passage}")):
            continue
        for i, text in enumerate(split_sentences(passage)):
            if not _MIN_SENTENCE_WORDS <= word_count(text) <= _MAX_SENTENCE_WORDS:
                continue
            sentence = Sentence.from_doc(text, doc, topic=sid, order=(sid, rank, i))
            sentence.score = _score(sentence, query_terms, task_terms, rank, label)
            out.append(sentence)
    return out


def _query_terms(query: str) -> tuple[set[str], set[str]]:
    """(main, broad) terms: the planner writes ``<label>: <query> — <focus>``, and the broad
    focus words ("performance", "limits") only widen the search, so they weigh less."""
    head, _, focus = query.partition(" — ")
    main = content_terms(head) or content_terms(query)
    return main, content_terms(focus) - main


def _score(
    sentence: Sentence,
    query_terms: tuple[set[str], set[str]],
    task_terms: set[str],
    rank: int,
    label: set[str],
) -> float:
    """Query/task term overlap (length-normalised), plus small bonuses for a figure, for
    naming the compared item as subject, and for the passage's search rank, so every sentence
    of a retrieved passage scores above zero; halved if it opens with a pronoun."""
    main, broad = query_terms
    overlap = (
        2 * len(sentence.terms & main)
        + 0.5 * len(sentence.terms & broad)
        + len(sentence.terms & task_terms)
    )
    score = overlap / math.sqrt(len(sentence.terms) + 1)
    score += 0.3 if sentence.figures else 0.0
    score += 0.5 if label and is_about(sentence.text, label) else 0.0
    score += 0.2 / (rank + 1)  # the retriever's own ranking breaks near-ties
    score *= 0.5 if opens_with_pronoun(sentence.text) else 1.0
    return round(score, 6)


def _sources(retrieved: list[tuple[str, dict[str, Any]]]) -> list[dict[str, str]]:
    seen: dict[str, dict[str, str]] = {}
    for _, result in retrieved:
        for doc in _docs(result):
            doc_id = str(doc.get("doc_id", ""))
            seen.setdefault(
                doc_id,
                {"doc_id": doc_id, "title": str(doc.get("title", doc_id)),
                 "source": str(doc.get("source", ""))},
            )  # fmt: skip
    return list(seen.values())


def _label_terms(result: dict[str, Any]) -> set[str]:
    return content_terms(str(result.get("topic") or ""))


def _docs(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [d for d in result.get("documents") or [] if isinstance(d, dict)]


def _natural_key(step_id: str) -> tuple[str, int, str]:
    match = re.match(r"^(.*?)(\d+)$", step_id)
    return (match.group(1), int(match.group(2)), "") if match else (step_id, -1, step_id)
