"""Retriever: BM25 search over the local corpus, plus the URLs the user named, fetched.

The step instruction is the search query. URLs in it are fetched through the SSRF-guarded
:class:`~app.agents.fetch.GuardedFetcher`, but only those that also appear in the user's own
task text (``StepInput.user_input``): the instruction is written by the planner, which may be an
LLM steered by anything it read, so it cannot add a host the user did not name. A fetched page
is never searched for further URLs. Each URL gets an entry in ``data["urls"]`` (``fetched``,
``blocked``, ``unsupported``, ``error``, ``refused`` (not named by the user) or ``skipped``
(no fetcher configured)); the words of its host and path join the corpus query, and a fetched
page's text becomes a document ahead of the corpus passages. The optional web-search seam
(``app.agents.websearch``, off by default) adds its hits as documents too; none is fetched.

Result (``StepOutput.data``)::

    {"query": str, "topic": str,
     "documents": [{"doc_id", "title", "source", "passage", "score"}],
     "urls": [{"url", "status", "reason", ...}]}

Cost model (cost units, deterministic; 0 under the LLM brain, where cost units are money):

    ==========================  =====================================
    base, per step              1.0
    passages scanned            + 0.1 per 1,000 passages in the index
    URLs                        + 0.0
    ==========================  =====================================
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from app.agents.base import ProgressFn, StepInput, StepOutput, _no_progress
from app.agents.corpus import Hit, get_index
from app.agents.fetch import FetchResult, GuardedFetcher
from app.agents.text import find_urls, remove_urls, shorten, tokenize, words
from app.agents.websearch import WebSearch

DEFAULT_TOP_K = 5
RETRIEVER_BASE_COST = 1.0
RETRIEVER_COST_PER_1K_PASSAGES = 0.1
URL_SKIPPED_REASON = "URL fetching is disabled (AGENTIC_FETCH_ENABLED=false)"
URL_NOT_NAMED_REASON = "not named in the task: only URLs the user wrote are fetched"
TOO_MANY_URLS = "more URLs in one step than the retriever fetches"
MAX_FETCHES_PER_STEP = 5
_MAX_TOPIC_WORDS = 6
_URL_NOISE = frozenset({"www", "com", "org", "net", "io", "dev", "html", "htm", "php", "index"})


class OfflineRetriever:
    name = "retriever"

    def __init__(
        self,
        corpus_dir: Path | None = None,
        top_k: int = DEFAULT_TOP_K,
        *,
        fetcher: GuardedFetcher | None = None,
        web_search: WebSearch | None = None,
        priced: bool = True,
    ) -> None:
        self.corpus_dir = corpus_dir
        self.top_k = top_k
        self.fetcher = fetcher  # None: URLs are recorded as skipped
        self.web_search = web_search
        self.priced = priced  # False under the LLM brain: cost units are money there

    async def run(self, step: StepInput, progress: ProgressFn = _no_progress) -> StepOutput:
        index = get_index(self.corpus_dir)  # built once per corpus dir, then cached
        urls = find_urls(step.instruction)
        query = build_query(step.instruction, urls) or step.user_input
        await progress(f"searching {len(index)} passages")
        hits = index.search(query, k=self.top_k)
        entries, pages = await self._fetch_urls(urls, step.user_input, progress)
        web = await self._search_web(query)
        data: dict[str, Any] = {
            "query": query,
            "topic": topic_label(step.instruction, urls),
            "documents": [*pages, *(_document(hit) for hit in hits), *web],
            "urls": entries,
        }
        cost = RETRIEVER_BASE_COST + RETRIEVER_COST_PER_1K_PASSAGES * len(index) / 1000
        summary = f"{len(hits)} passages from {len({h.passage.doc_id for h in hits})} documents"
        if urls:
            summary += "; " + _url_summary(entries, fetching=self.fetcher is not None)
        return StepOutput(
            data=data, summary=summary, cost_units=round(cost, 4) if self.priced else 0.0
        )

    async def _fetch_urls(
        self, urls: list[str], user_input: str, progress: ProgressFn
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Fetch the URLs of the instruction that the user named in the task, and only those.

        The instruction comes from the planner (an LLM, possibly steered by the task text);
        the user's own text is the authority on which hosts may be contacted.
        """
        if self.fetcher is None:
            return [skipped_url(url) for url in urls], []
        named = {url_key(u): u for u in find_urls(user_input)}
        wanted = list(dict.fromkeys(named[url_key(u)] for u in urls if url_key(u) in named))
        allowed = wanted[:MAX_FETCHES_PER_STEP]
        if allowed:
            await progress(f"\nfetching {len(allowed)} URL(s)")
        fetcher = self.fetcher
        results = {r.url: r for r in await asyncio.gather(*(fetcher.fetch(u) for u in allowed))}
        entries: dict[str, dict[str, Any]] = {}
        for url in urls:  # in the instruction's order, one entry per distinct URL
            own = named.get(url_key(url))
            if own is None:
                entries.setdefault(url, refused_url(url))
            elif own in results:
                entries.setdefault(own, results[own].summary())
            else:
                entries.setdefault(own, skipped_url(own, TOO_MANY_URLS))
        pages = [_page(r) for r in results.values() if r.status == "fetched" and r.text]
        return list(entries.values()), pages

    async def _search_web(self, query: str) -> list[dict[str, Any]]:
        if self.web_search is None:
            return []
        hits = await self.web_search.search(query, self.top_k)
        return [
            {"doc_id": f"web-{i}", "title": h.title, "source": h.url, "section": "",
             "passage": h.snippet, "score": 0.0}
            for i, h in enumerate(hits, start=1)
        ]  # fmt: skip


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


def skipped_url(url: str, reason: str = URL_SKIPPED_REASON) -> dict[str, str]:
    return {"url": url, "status": "skipped", "reason": reason}


def refused_url(url: str) -> dict[str, str]:
    return {"url": url, "status": "refused", "reason": URL_NOT_NAMED_REASON}


def url_key(url: str) -> str:
    """What makes two spellings of a URL the same for the "named by the user" check."""
    split = urlsplit(url)
    path = split.path.rstrip("/")
    query = f"?{split.query}" if split.query else ""
    return f"{split.scheme.lower()}://{split.netloc.lower()}{path}{query}"


def _url_summary(entries: list[dict[str, Any]], fetching: bool) -> str:
    if not fetching:
        return f"{len(entries)} URL(s) skipped (fetching disabled)"
    counts: dict[str, int] = {}
    for entry in entries:
        counts[str(entry["status"])] = counts.get(str(entry["status"]), 0) + 1
    return ", ".join(f"{n} URL(s) {status}" for status, n in counts.items())


def _page(result: FetchResult) -> dict[str, Any]:
    source = result.final_url or result.url
    return {
        "doc_id": f"url:{source}",
        "title": result.title or source,
        "source": source,
        "section": "",
        "passage": result.text,
        "score": 0.0,
        "fetched": True,
    }


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
