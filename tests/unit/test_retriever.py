"""Offline retriever and corpus: BM25 finds the right documents; URLs are skipped, not fetched."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from app.agents import corpus
from app.agents.base import StepInput
from app.agents.corpus import (
    DEFAULT_CORPUS_DIR,
    MAX_PASSAGE_WORDS,
    get_index,
    load_passages,
    parse_document,
)
from app.agents.retriever import URL_SKIPPED_REASON, OfflineRetriever, url_words


def step(instruction: str, user_input: str = "") -> StepInput:
    return StepInput(
        task_id="t1",
        step_id="retrieve_1",
        agent="retriever",
        instruction=instruction,
        user_input=user_input or instruction,
    )


async def retrieve(instruction: str, corpus_dir: Path | None = None) -> dict[str, Any]:
    out = await OfflineRetriever(corpus_dir).run(step(instruction))
    return out.data


@pytest.mark.parametrize(
    ("query", "doc_prefix"),
    [
        ("Redis Streams: consumer groups, XACK and the pending entries list", "redis-streams"),
        ("Kafka: partitions, consumer groups and offset retention", "kafka"),
        ("PostgreSQL SKIP LOCKED job queue", "postgres-skip-locked"),
        ("KEDA ScaledObject pollingInterval cooldownPeriod", "keda"),
        ("Server-Sent Events Last-Event-ID reconnect EventSource", "sse-vs-websockets"),
        ("exponential backoff with full jitter", "retries-backoff-jitter"),
        ("NATS JetStream AckWait MaxDeliver", "nats-jetstream"),
        ("Celery acks_late worker_prefetch_multiplier", "celery"),
    ],
)
async def test_finds_the_right_document(query: str, doc_prefix: str) -> None:
    data = await retrieve(query)
    documents = data["documents"]
    assert isinstance(documents, list) and documents
    top_docs = list(dict.fromkeys(d["doc_id"] for d in documents))[:2]
    assert any(d.startswith(doc_prefix) for d in top_docs), top_docs


@pytest.mark.parametrize(
    ("query", "doc_prefix"),
    [
        ("Redis Streams: Redis Streams consumer groups XREADGROUP XACK", "redis-streams"),
        ("Kafka: Kafka partitions consumer groups offsets", "kafka"),
    ],
)
async def test_best_hit_for_redis_and_kafka(query: str, doc_prefix: str) -> None:
    data = await retrieve(query)
    documents = data["documents"]
    assert isinstance(documents, list)
    assert documents[0]["doc_id"].startswith(doc_prefix)
    assert sum(d["doc_id"].startswith(doc_prefix) for d in documents) >= 2


async def test_result_shape() -> None:
    data = await retrieve("Redis Streams XAUTOCLAIM")
    assert data["query"] == "Redis Streams XAUTOCLAIM"
    assert data["urls"] == []
    documents = data["documents"]
    assert isinstance(documents, list)
    assert 1 <= len(documents) <= 5
    for doc in documents:
        assert set(doc) >= {"doc_id", "title", "source", "passage", "score"}
        assert doc["title"] and doc["source"] and doc["passage"]
    scores = [d["score"] for d in documents]
    assert scores == sorted(scores, reverse=True)
    assert "XAUTOCLAIM" in documents[0]["passage"]


async def test_passages_are_focused_not_whole_pages() -> None:
    data = await retrieve("Kafka log.retention.hours default")
    for doc in data["documents"]:
        assert len(doc["passage"].split()) <= MAX_PASSAGE_WORDS + 40


async def test_reports_progress_once_and_costs_by_passages() -> None:
    seen: list[str] = []

    async def progress(message: str) -> None:
        seen.append(message)

    out = await OfflineRetriever().run(step("Redis Streams"), progress)
    n = len(get_index())
    assert seen == [f"searching {n} passages"]
    assert out.cost_units == pytest.approx(1.0 + 0.1 * n / 1000, abs=1e-4)
    assert out.summary.startswith(f"{len(out.data['documents'])} passages")


async def test_urls_are_skipped_and_their_words_searched() -> None:
    url = "https://redis.io/docs/latest/develop/data-types/streams/"
    data = await retrieve(f"Fetch {url} — extract what is relevant to: consumer groups")
    assert data["urls"] == [{"url": url, "status": "skipped", "reason": URL_SKIPPED_REASON}]
    assert "redis" in str(data["query"]) and "http" not in str(data["query"])
    assert data["topic"] == url
    documents = data["documents"]
    assert isinstance(documents, list)
    assert documents[0]["doc_id"].startswith("redis-streams")


def test_url_words() -> None:
    assert url_words("https://www.postgresql.org/docs/current/sql-select.html") == (
        "postgresql docs current sql select"
    )


async def test_no_match_is_empty_not_an_error() -> None:
    data = await retrieve("zzzqqq xyzzy")
    assert data["documents"] == []


async def test_topic_label_comes_from_the_instruction() -> None:
    data = await retrieve("Redis Streams: Redis Streams job queues — how it works")
    assert data["topic"] == "Redis Streams"


# --- corpus ---------------------------------------------------------------------------------


def test_index_is_built_once_per_corpus_dir(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# A\n\nSource: x\n\nalpha beta gamma\n", encoding="utf-8")
    first = get_index(tmp_path)
    assert get_index(tmp_path) is first
    assert get_index() is get_index(DEFAULT_CORPUS_DIR)
    assert get_index() is not first
    corpus.clear_cache()
    assert get_index(tmp_path) is not first


async def test_custom_corpus_dir(tmp_path: Path) -> None:
    (tmp_path / "zebra.md").write_text(
        "# Zebras\n\nSource: https://example.org/zebra\n\nZebras have black and white stripes.\n",
        encoding="utf-8",
    )
    (tmp_path / "owl.md").write_text(
        "# Owls\n\nSource: Owl book, 2020\n\nOwls hunt at night and have silent flight.\n",
        encoding="utf-8",
    )
    data = await retrieve("zebra stripes", tmp_path)
    assert [d["doc_id"] for d in data["documents"]] == ["zebra"]
    assert data["documents"][0]["source"] == "https://example.org/zebra"


def test_parse_document_splits_long_and_merges_short_paragraphs() -> None:
    long = " ".join(f"Sentence number {i} talks about queues." for i in range(80))
    text = f"# Title\n\nSource: somewhere\n\n## Part\n\n{long}\n\nShort one.\n\nShort two.\n"
    passages = parse_document("doc", text)
    assert {p.title for p in passages} == {"Title"}
    assert {p.source for p in passages} == {"somewhere"}
    assert {p.section for p in passages} == {"Part"}
    assert len(passages) >= 2
    assert all(len(p.text.split()) <= MAX_PASSAGE_WORDS + 10 for p in passages)
    assert "Short one." in passages[-1].text and "Short two." in passages[-1].text


def test_packaged_corpus_is_real_and_well_formed() -> None:
    files = sorted(DEFAULT_CORPUS_DIR.glob("*.md"))
    assert 12 <= len(files) <= 20
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert text.startswith("# "), path.name
        assert re.search(r"^Source: \S", text, re.M), path.name
        assert 300 <= len(text.split()) <= 900, path.name
    passages = load_passages(DEFAULT_CORPUS_DIR)
    assert len({p.doc_id for p in passages}) == len(files)
    assert all(p.source for p in passages)
