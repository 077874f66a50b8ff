"""Small text helpers shared by the offline agents: tokens, sentences, URLs, word counts.

Everything here is pure and deterministic (no locale, no randomness), so that the same task
gives the same plan, the same search hits and the same report.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_WORD_RE = re.compile(r"[a-z0-9]+(?:[.\-'][a-z0-9]+)*")
_SENTENCE_END_RE = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9`])")
_URL_RE = re.compile(r"https?://[^\s<>\"'`)\]]+", re.IGNORECASE)
_URL_TRAILING = ".,;:!?"
_RECOMMEND_RE = re.compile(
    r"\b(recommend\w*|should|which|choose|choice|best|pick|decide|prefer\w*)\b", re.I
)
_MARKDOWN_INLINE_RE = re.compile(r"`([^`]*)`|\*\*([^*]*)\*\*|\[([^\]]*)\]\([^)]*\)")

_STOPWORDS_TEXT = """
    a about above after again against all also am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just let me more most my myself no nor not now of off on once only or other our
    ours ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself
    yourselves may might must shall us use used using via etc e.g i.e per vs versus one two
    please write report brief summary summarise summarize explain describe give tell find
    search retrieve fetch compare comparison recommend recommendation make produce create
    draft research need want like know show list get look based context task question
"""
#: Words that carry no search or matching signal (English function words plus task verbs).
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())


def words(text: str) -> list[str]:
    """Lower-cased word tokens, punctuation dropped (``at-least-once`` and ``2.8`` stay whole)."""
    return _WORD_RE.findall(text.lower())


def tokenize(text: str) -> list[str]:
    """Search tokens: words without stopwords, with a light plural fold (``queues`` → ``queue``)."""
    return [_fold(w) for w in words(text) if w not in STOPWORDS and len(w) > 1]


def _fold(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def content_terms(text: str) -> set[str]:
    return set(tokenize(text))


def word_count(text: str) -> int:
    return len(text.split())


def split_sentences(text: str) -> list[str]:
    """Split prose into sentences; list markers and Markdown emphasis are removed first."""
    flat = " ".join(_strip_list_marker(line) for line in text.splitlines())
    flat = strip_inline_markdown(re.sub(r"\s+", " ", flat)).strip()
    if not flat:
        return []
    return [s.strip() for s in _SENTENCE_END_RE.split(flat) if s.strip()]


def _strip_list_marker(line: str) -> str:
    return re.sub(r"^\s*(?:[-*•]|\d+[.)])\s+", "", line)


def strip_inline_markdown(text: str) -> str:
    """``code``, **bold** and [links](url) become plain text."""

    def plain(match: re.Match[str]) -> str:
        return next(g for g in match.groups() if g is not None)

    return _MARKDOWN_INLINE_RE.sub(plain, text)


def find_urls(text: str) -> list[str]:
    """http(s) URLs in order of appearance, de-duplicated, trailing punctuation removed."""
    found = (m.group(0).rstrip(_URL_TRAILING) for m in _URL_RE.finditer(text))
    return list(dict.fromkeys(found))


def remove_urls(text: str) -> str:
    return re.sub(r"\s+", " ", _URL_RE.sub(" ", text)).strip()


def asks_for_recommendation(text: str) -> bool:
    """The task asks for a choice or advice ("recommend", "should", "which", "best", ...)."""
    return _RECOMMEND_RE.search(text) is not None


def jaccard(a: Iterable[str], b: Iterable[str]) -> float:
    sa, sb = set(a), set(b)
    if not sa or not sb:
        return 0.0
    return len(sa & sb) / len(sa | sb)


def shorten(text: str, limit: int) -> str:
    """Cut ``text`` at a word boundary so that it fits in ``limit`` characters."""
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) <= limit:
        return text
    cut = text[: max(limit - 1, 1)].rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:-") + "…"
