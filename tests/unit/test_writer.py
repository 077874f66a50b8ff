"""Offline writer: a Markdown report with numbered citations, Sources and, when asked, advice."""

from __future__ import annotations

import re
from typing import Any

import pytest

from app.agents.base import StepInput
from app.agents.writer import OfflineWriter


def point(text: str, doc_id: str, topic: str = "retrieve_1") -> dict[str, str]:
    return {
        "text": text,
        "doc_id": doc_id,
        "source": f"src-{doc_id}",
        "title": doc_id,
        "topic": topic,
    }


def sources(*doc_ids: str) -> list[dict[str, str]]:
    return [
        {"doc_id": d, "title": f"Title {d}", "source": f"https://example.org/{d}"} for d in doc_ids
    ]


def comparison_analysis() -> dict[str, Any]:
    redis = [
        point("Redis Streams suit job queues when the backlog fits in memory.", "redis", "r1"),
        point("XAUTOCLAIM reclaims entries idle longer than a minimum time.", "redis", "r1"),
    ]
    kafka = [
        point("Kafka keeps records for 7 days by default.", "kafka", "r2"),
        point("Kafka is a better fit for replayable event streams.", "kafka", "r2"),
    ]
    return {
        "comparison": True,
        "key_points": [*redis, *kafka],
        "advice": [],
        "figures": [
            {
                "value": "7 days",
                "number": 7.0,
                "unit": "days",
                "kind": "duration",
                "subject": "records",
                "text": "Kafka keeps records for 7 days by default.",
                "doc_id": "kafka",
                "title": "Title kafka",
                "source": "https://example.org/kafka",
                "topic": "r2",
            }
        ],
        "agreements": [
            {
                "kind": "statement",
                "text": "Consumers must be idempotent.",
                "value": "",
                "shared_terms": ["idempotent"],
                "doc_ids": ["redis", "queues"],
                "supporting": [],
            }
        ],
        "contradictions": [],
        "sources": sources("redis", "kafka", "queues", "unused"),
        "topics": {
            "r1": {"label": "Redis Streams", "key_points": redis, "advice": [redis[0]], "urls": []},
            "r2": {"label": "Kafka", "key_points": kafka, "advice": [kafka[1]], "urls": []},
        },
    }


def writer_step(
    inputs: dict[str, dict[str, Any]],
    user_input: str = "Compare Redis Streams and Kafka",
    instruction: str = 'Write a cited Markdown report titled "Redis Streams vs Kafka".',
) -> StepInput:
    return StepInput(
        task_id="t1",
        step_id="write",
        agent="writer",
        instruction=instruction,
        user_input=user_input,
        inputs=inputs,
    )


def citations(markdown: str) -> list[int]:
    body = markdown.split("## Sources")[0]
    return [int(n) for n in re.findall(r"\[(\d+)\]", body)]


def source_lines(markdown: str) -> list[str]:
    return re.findall(r"^\d+\. .+$", markdown.split("## Sources")[1], re.M)


async def test_report_structure_and_citations() -> None:
    out = await OfflineWriter().run(writer_step({"analyze": comparison_analysis()}))
    md = out.data["markdown"]
    assert md.startswith("# Redis Streams vs Kafka\n")
    for heading in ["## Summary", "## Redis Streams", "## Kafka", "## Figures"]:
        assert f"\n{heading}\n" in md
    assert "## Agreements and contradictions" in md
    assert "## Recommendation" not in md  # not asked for
    cited = citations(md)
    assert cited and cited[0] == 1
    assert set(cited) == set(range(1, max(cited) + 1))  # numbered in order of first use
    lines = source_lines(md)
    assert lines[0] == "1. Title redis — Source: https://example.org/redis"
    assert len(lines) == 4  # every source listed, the uncited one last
    assert lines[-1].startswith("4. Title unused")
    assert "| 7 days |" in md
    assert out.data["word_count"] == len(md.split())
    assert [s["n"] for s in out.data["sources"]] == [1, 2, 3, 4]


async def test_recommendation_when_asked() -> None:
    step = writer_step(
        {"analyze": comparison_analysis()},
        user_input="Compare Redis Streams and Kafka for job queues: which should I choose?",
        instruction='Write a cited Markdown report titled "X". Finish with a recommendation.',
    )
    md = (await OfflineWriter().run(step)).data["markdown"]
    recommendation = md.split("## Recommendation")[1].split("## Sources")[0]
    assert "**Redis Streams**: Redis Streams suit job queues" in recommendation
    assert "**Kafka**: Kafka is a better fit" in recommendation
    assert re.search(r"\[\d+\]", recommendation)
    assert md.index("## Recommendation") < md.index("## Sources")


@pytest.mark.parametrize("word", ["recommend", "should", "which", "choose", "best"])
async def test_recommendation_triggers(word: str) -> None:
    step = writer_step({"analyze": comparison_analysis()}, user_input=f"Kafka {word} Redis")
    md = (await OfflineWriter().run(step)).data["markdown"]
    assert "## Recommendation" in md


async def test_writer_accepts_raw_retriever_results() -> None:
    passage = "Redis Streams consumer groups deliver each entry to one consumer of the group."
    retrieved = {
        "query": "Redis Streams consumer groups",
        "topic": "Redis Streams",
        "documents": [
            {
                "doc_id": "r",
                "title": "Redis",
                "source": "redis.io",
                "passage": passage,
                "score": 2.0,
            }
        ],
        "urls": [],
    }
    out = await OfflineWriter().run(writer_step({"retrieve_1": retrieved}, "Redis Streams?", "w"))
    md = out.data["markdown"]
    assert "[1]" in md and "1. Redis — Source: redis.io" in md
    assert md.startswith("# Redis Streams\n")  # title from the task, end punctuation dropped


async def test_nothing_found_is_said_plainly() -> None:
    out = await OfflineWriter().run(writer_step({}, "Anything", "Write"))
    md = out.data["markdown"]
    assert "No relevant material was found" in md
    assert "## Sources" in md and out.data["sources"] == []


async def test_cost_follows_output_words() -> None:
    out = await OfflineWriter().run(writer_step({"analyze": comparison_analysis()}))
    assert out.cost_units == pytest.approx(0.5 + 0.3 * out.data["word_count"] / 1000, abs=1e-4)
    assert out.tokens_in == out.tokens_out == 0
