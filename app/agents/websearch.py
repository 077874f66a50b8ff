"""Web search for the retriever: an interface (a seam), off by default.

``AGENTIC_WEB_SEARCH_PROVIDER=none`` (the only value today) gives :class:`NoWebSearch`, which
finds nothing and touches no network. A real provider implements :class:`WebSearch` and is
added to :func:`build_web_search`. Policy for any provider: its hits become documents (title,
URL, snippet) passed to the LLM as untrusted data like any other retrieved text, and the
retriever never fetches a hit's URL, since only URLs the user named are fetched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from app.config import Settings


@dataclass(frozen=True, slots=True)
class SearchHit:
    title: str
    url: str
    snippet: str


@runtime_checkable
class WebSearch(Protocol):
    name: str

    async def search(self, query: str, k: int) -> list[SearchHit]: ...


class NoWebSearch:
    """The default provider: no web search at all."""

    name = "none"

    async def search(self, query: str, k: int) -> list[SearchHit]:
        return []


def build_web_search(settings: Settings) -> WebSearch:
    if settings.web_search_provider == "none":
        return NoWebSearch()
    raise ValueError(f"unknown web search provider {settings.web_search_provider!r}")
