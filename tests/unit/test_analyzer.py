"""Offline analyzer: key points, figures, agreements and (possible) contradictions."""

from __future__ import annotations

from typing import Any

import pytest

from app.agents.analyzer import DUPLICATE_JACCARD, OfflineAnalyzer
from app.agents.base import StepInput
from app.agents.figures import extract_figures
from app.agents.retriever import OfflineRetriever
from app.agents.text import content_terms, jaccard


def doc(doc_id: str, passage: str, score: float = 1.0) -> dict[str, Any]:
    return {
        "doc_id": doc_id,
        "title": f"Title of {doc_id}",
        "source": f"https://example.org/{doc_id}",
        "passage": passage,
        "score": score,
    }


def result(query: str, *docs: dict[str, Any], topic: str = "") -> dict[str, Any]:
    return {"query": query, "topic": topic or query, "documents": list(docs), "urls": []}


def analyzer_step(
    inputs: dict[str, dict[str, Any]], instruction: str = "Analyze", user_input: str = "task"
) -> StepInput:
    return StepInput(
        task_id="t1",
        step_id="analyze",
        agent="analyzer",
        instruction=instruction,
        user_input=user_input,
        inputs=inputs,
    )


async def retrieved(instruction: str, step_id: str = "retrieve_1") -> dict[str, Any]:
    step = StepInput(
        task_id="t1", step_id=step_id, agent="retriever", instruction=instruction, user_input=""
    )
    return (await OfflineRetriever().run(step)).data


# --- figures --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sentence", "value", "kind", "normalized"),
    [
        ("The default retention is 7 days.", "7 days", "duration", 7 * 86400),
        ("KEDA polls every 30 seconds.", "30 seconds", "duration", 30),
        ("It waits 250 ms at most.", "250 ms", "duration", 0.25),
        ("The limit is 1 MB per message.", "1 MB", "size", 1024**2),
        ("About 63% of requests are slow.", "63%", "percent", 63),
        ("It needs Redis 7.0 or later.", "Redis 7.0", "version", 7.0),
        ("Watch the p99 latency.", "p99", "percentile", 99),
        ("A topic may have 1,000 partitions.", "1,000 partitions", "count", 1000),
    ],
)
def test_extract_figures(sentence: str, value: str, kind: str, normalized: float) -> None:
    [fig] = extract_figures(sentence)
    assert (fig.value, fig.kind) == (value, kind)
    assert fig.normalized == pytest.approx(normalized)


def test_figure_subject_is_the_clause_before_it() -> None:
    [fig] = extract_figures("Kafka keeps records, and the default retention period is 7 days.")
    assert fig.subject == "default retention period"
    assert extract_figures("It waits 180 seconds (3 minutes).")[1].subject == ""


def test_plain_numbers_and_sentence_openers_are_not_figures() -> None:
    assert extract_figures("In 2.8 there were 12 of them.") == []


# --- analysis of real retrieval results ---------------------------------------------------


async def test_extracts_figures_with_numbers_and_sources() -> None:
    inputs = {"retrieve_1": await retrieved("Kafka retention log.retention.hours default")}
    out = await OfflineAnalyzer().run(analyzer_step(inputs, user_input="Kafka retention"))
    figures = out.data["figures"]
    assert figures
    for fig in figures:
        assert isinstance(fig["number"], float)
        assert fig["value"] in fig["text"]
        assert fig["source"] and fig["doc_id"]
    assert any(f["value"] in {"168 hours", "7 days"} for f in figures)


async def test_key_points_are_relevant_sourced_and_deduplicated() -> None:
    inputs = {"retrieve_1": await retrieved("Redis Streams XAUTOCLAIM pending entries")}
    out = await OfflineAnalyzer().run(analyzer_step(inputs, user_input="Redis Streams PEL"))
    points = out.data["key_points"]
    assert 3 <= len(points) <= 8
    assert all({"text", "source", "doc_id"} <= set(p) for p in points)
    assert any("XAUTOCLAIM" in p["text"] for p in points)
    terms = [content_terms(p["text"]) for p in points]
    for i, a in enumerate(terms):
        for b in terms[i + 1 :]:
            assert jaccard(a, b) < DUPLICATE_JACCARD
    assert {s["doc_id"] for s in out.data["sources"]} >= {p["doc_id"] for p in points}


async def test_comparison_has_one_topic_per_retriever() -> None:
    inputs = {
        "retrieve_1": await retrieved("Redis Streams: Redis Streams job queues", "retrieve_1"),
        "retrieve_2": await retrieved("Kafka: Kafka job queues", "retrieve_2"),
    }
    step = analyzer_step(inputs, "Compare Redis Streams and Kafka for job queues: key points")
    out = await OfflineAnalyzer().run(step)
    assert out.data["comparison"] is True
    topics = out.data["topics"]
    assert list(topics) == ["retrieve_1", "retrieve_2"]
    assert [t["label"] for t in topics.values()] == ["Redis Streams", "Kafka"]
    assert all(t["key_points"] for t in topics.values())
    assert any("Kafka" in p["text"] for p in topics["retrieve_2"]["key_points"])


# --- agreements and contradictions on controlled inputs -----------------------------------

SAME = "Consumers must make every handler idempotent because redelivery duplicates messages."


async def test_agreement_needs_two_different_documents() -> None:
    inputs = {
        "retrieve_1": result(
            "idempotent handler redelivery",
            doc("a", f"{SAME} Other text about nothing in particular here."),
            doc("b", f"Queues are tricky. {SAME}"),
            doc("c", "Completely unrelated words about zebras grazing in the savanna today."),
        )
    }
    out = await OfflineAnalyzer().run(analyzer_step(inputs))
    [agreement] = out.data["agreements"]
    assert agreement["doc_ids"] == ["a", "b"]
    assert agreement["text"] == SAME

    one_doc = {"retrieve_1": result("idempotent", doc("a", f"{SAME} {SAME.upper()}"))}
    out = await OfflineAnalyzer().run(analyzer_step(one_doc))
    assert out.data["agreements"] == []


def timeout_inputs(second_value: str, same_topic: bool) -> dict[str, dict[str, Any]]:
    a = doc("sqs", "The default visibility timeout of a queue is 30 seconds in this system.")
    b = doc("other", f"The default visibility timeout of a queue is {second_value} in this system.")
    if same_topic:
        return {"retrieve_1": result("visibility timeout default", a, b)}
    return {
        "retrieve_1": result("visibility timeout default", a, topic="SQS"),
        "retrieve_2": result("visibility timeout default", b, topic="Other"),
    }


async def test_different_figures_for_one_subject_are_a_possible_contradiction() -> None:
    out = await OfflineAnalyzer().run(analyzer_step(timeout_inputs("60 seconds", True)))
    [contradiction] = out.data["contradictions"]
    assert contradiction["kind"] == "figure"
    assert "Possible contradiction" in contradiction["note"]
    assert [c["value"] for c in contradiction["claims"]] == ["30 seconds", "60 seconds"]
    assert {c["doc_id"] for c in contradiction["claims"]} == {"sqs", "other"}


async def test_equal_figures_agree_and_do_not_contradict() -> None:
    out = await OfflineAnalyzer().run(analyzer_step(timeout_inputs("30 seconds", True)))
    assert out.data["contradictions"] == []
    assert out.data["agreements"]


async def test_a_comparison_is_not_a_contradiction() -> None:
    step = analyzer_step(timeout_inputs("60 seconds", False), "Compare SQS and Other")
    out = await OfflineAnalyzer().run(step)
    assert out.data["comparison"] is True
    assert out.data["contradictions"] == []


async def test_opposing_delivery_guarantees_about_one_product() -> None:
    inputs = {
        "retrieve_1": result(
            "Celery delivery guarantee",
            doc("x", "By default Celery runs each task at-most-once for the worker."),
            doc("y", "Out of the box Celery runs each task at-least-once for the worker."),
            doc("z", "Kafka consumers get exactly-once processing with transactions."),
        )
    }
    out = await OfflineAnalyzer().run(analyzer_step(inputs))
    [contradiction] = out.data["contradictions"]
    assert contradiction["kind"] == "guarantee"
    assert contradiction["subject"] == "Celery"
    assert {c["value"] for c in contradiction["claims"]} == {"at-most-once", "at-least-once"}


async def test_no_inputs_gives_an_empty_analysis() -> None:
    out = await OfflineAnalyzer().run(analyzer_step({}))
    data = out.data
    assert data["key_points"] == data["figures"] == data["sources"] == []
    assert data["agreements"] == data["contradictions"] == []
    assert out.cost_units == pytest.approx(0.5)


async def test_cost_grows_with_input_words() -> None:
    words = " ".join(["word"] * 1000) + "."
    inputs = {"retrieve_1": result("word", doc("a", words))}
    seen: list[str] = []

    async def progress(message: str) -> None:
        seen.append(message)

    out = await OfflineAnalyzer().run(analyzer_step(inputs), progress)
    assert out.cost_units == pytest.approx(0.5 + 0.2 * 1000 / 1000)
    assert seen == ["analyzing 1000 words from 1 search results"]
