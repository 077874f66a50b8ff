"""Retriever (offline): BM25 search over the local corpus; URLs are noted, not fetched.

The step instruction is the search query. URLs named in it are *not* fetched in this build
(a guarded fetcher with SSRF protection comes later): each gets a ``skipped`` entry in
``data["urls"]`` and the words of its host and path join the corpus query instead.

Result (``StepOutput.data``)::

    {"query": str, "topic": str,
     "documents": [{"doc_id", "title", "source", "passage", "score"}],
     "urls": [{"url", "status": "skipped", "reason"}]}

Cost model (cost units, deterministic):

    ==========================  =====================================
    base, per step              1.0
    passages scanned            + 0.1 per 1,000 passages in the index
    URLs                        + 0.0 (not fetched in the offline build)
    ==========================  =====================================
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from app.agents.base import ProgressFn, StepInput, StepOutput, _no_progress
from app.agents.corpus import Hit, get_index
from app.agents.text import find_urls, remove_urls, shorten, tokenize, words

DEFAULT_TOP_K = 5
RETRIEVER_BASE_COST = 1.0
RETRIEVER_COST_PER_1K_PASSAGES = 0.1
URL_SKIPPED_REASON = "URL fetching is disabled in the offline build"
_MAX_TOPIC_WORDS = 6
_URL_NOISE = frozenset({"www", "com", "org", "net", "io", "dev", "html", "htm", "php", "index"})


class OfflineRetriever:
    name = "retriever"

    def __init__(self, corpus_dir: Path | None = None, top_k: int = DEFAULT_TOP_K) -> None:
        self.corpus_dir = corpus_dir
        self.top_k = top_k

    async def run(self, step: StepInput, progress: ProgressFn = _no_progress) -> StepOutput:
        index = get_index(self.corpus_dir)  # built once per corpus dir, then cached
        urls = find_urls(step.instruction)
        query = build_query(step.instruction, urls) or step.user_input
        await progress(f"searching {len(index)} passages")
        hits = index.search(query, k=self.top_k)
        data: dict[str, Any] = {
            "query": query,
            "topic": topic_label(step.instruction, urls),
            "documents": [_document(hit) for hit in hits],
            "urls": [skipped_url(url) for url in urls],
        }
        cost = RETRIEVER_BASE_COST + RETRIEVER_COST_PER_1K_PASSAGES * len(index) / 1000
        summary = f"{len(hits)} passages from {len({h.passage.doc_id for h in hits})} documents"
        if urls:
            summary += f"; {len(urls)} URL(s) skipped (fetching disabled)"
        return StepOutput(data=data, summary=summary, cost_units=round(cost, 4))


def build_query(instruction: str, urls: list[str]) -> str:
    """The instruction without its URLs, plus the words of each URL's host and path."""
    parts = [remove_urls(instruction)] if urls else [instruction]
    parts.extend(url_words(url) for url in urls)
    return " ".join(p for p in parts if p).strip()


def url_words(url: str) -> str:
    """``https://redis.io/docs/data-types/streams/`` → ``redis docs data types streams``."""
    split = urlsplit(url)
    pieces = [*(split.hostname or "").split("."), *re.split(r"[/_\-.+]+", unquote(split.path))]
    return " ".join(w for w in pieces if w and not w.isdigit() and w not in _URL_NOISE)


def topic_label(instruction: str, urls: list[str]) -> str:
    """A short name for what this step looked up: ``"Redis Streams: ..."`` → ``"Redis Streams"``."""
    if urls:
        return shorten(urls[0], 60)
    head = instruction.split(":", 1)
    if len(head) == 2 and 0 < len(words(head[0])) <= _MAX_TOPIC_WORDS:
        return head[0].strip()
    return shorten(" ".join(tokenize(instruction)[:_MAX_TOPIC_WORDS]), 60) or "search"


def skipped_url(url: str) -> dict[str, str]:
    return {"url": url, "status": "skipped", "reason": URL_SKIPPED_REASON}


def _document(hit: Hit) -> dict[str, Any]:
    p = hit.passage
    return {
        "doc_id": p.doc_id,
        "title": p.title,
        "source": p.source,
        "section": p.section,
        "passage": p.text,
        "score": hit.score,
    }
