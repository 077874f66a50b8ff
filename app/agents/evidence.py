"""Sentences as evidence, and the cross-source checks on them: agreements and contradictions.

Both checks are simple, explainable heuristics, and their results say so:

- agreement: two sentences from different documents share at least
  :data:`AGREEMENT_MIN_SHARED` terms, one of them distinctive (found in at most two of the
  sentences under analysis), with an IDF-weighted Jaccard similarity of at least
  :data:`AGREEMENT_WEIGHTED_JACCARD`; or two documents give the same figure for one subject;
- contradiction: two documents give *different* figures of the same quantity for the same
  subject (their subjects share two or more words), or, naming the same product, one says
  "at-least-once" where the other says "exactly-once" (or "at-most-once"). Sources often
  describe different configurations, so each one is reported as *possible*, with both claims.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from app.agents.figures import Figure, extract_figures
from app.agents.text import STOPWORDS, content_terms

AGREEMENT_WEIGHTED_JACCARD = 0.18
AGREEMENT_MIN_SHARED = 3
MAX_AGREEMENTS = 6
MAX_CONTRADICTIONS = 5
_CANDIDATES = 40
_OPPOSING = (
    ("at-least-once", "exactly-once"),
    ("at-most-once", "at-least-once"),
    ("at-most-once", "exactly-once"),
)
_DELIVERY_TERMS = frozenset(t for pair in _OPPOSING for t in pair)
MAX_ADVICE = 3
_PRONOUN_START_RE = re.compile(r"^(?:it|its|this|that|these|those|they|their)\b", re.I)
_ADVICE_RE = re.compile(
    r"\b(?:suits?|suited|(?:better|best|good|weaker|natural|poor) fit|choice|recommend\w*|"
    r"prefer\w*|choose|simplest|should (?:be|use|run)|use \w+(?: \w+)? when)\b",
    re.I,
)


@dataclass(slots=True)
class Sentence:
    text: str
    doc_id: str
    title: str
    source: str
    topic: str
    order: tuple[str, int, int]
    terms: set[str] = field(default_factory=set)
    figures: list[Figure] = field(default_factory=list)
    score: float = 0.0

    @classmethod
    def from_doc(
        cls, text: str, doc: dict[str, Any], topic: str, order: tuple[str, int, int]
    ) -> Sentence:
        doc_id = str(doc.get("doc_id", ""))
        return cls(
            text=text,
            doc_id=doc_id,
            title=str(doc.get("title", doc_id)),
            source=str(doc.get("source", "")),
            topic=topic,
            order=order,
            terms=content_terms(text),
            figures=extract_figures(text),
        )

    def point(self) -> dict[str, str]:
        return {"text": self.text, "doc_id": self.doc_id, "source": self.source,
                "title": self.title, "topic": self.topic}  # fmt: skip


def advice_sentences(ranked: list[Sentence], about: set[str] | None = None) -> list[Sentence]:
    """The best sentences that read like advice ("X suits ...", "a better fit", "use X when"),
    naming one of the ``about`` terms (a topic's name) when given."""
    found = [s for s in ranked if s.score > 0 and _ADVICE_RE.search(s.text)]
    if about:
        found = [s for s in found if is_about(s.text, about)]
    return found[:MAX_ADVICE]


def opens_with_pronoun(text: str) -> bool:
    """ "It is ..." means little out of its paragraph, as a bullet point."""
    return _PRONOUN_START_RE.match(text) is not None


def is_about(text: str, names: set[str]) -> bool:
    """``names`` appear in the first half of the sentence (where its subject is), and the
    sentence does not open with a pronoun ("It is a natural choice ... behind Celery")."""
    if opens_with_pronoun(text):
        return False
    head = content_terms(" ".join(text.split()[: max(len(text.split()) // 2, 4)]))
    return not names.isdisjoint(head)


def figure_dicts(sentences: list[Sentence]) -> list[dict[str, Any]]:
    """Every figure of ``sentences`` (in their order), once per sentence and quantity
    ("168 hours, that is 7 days" gives one figure)."""
    out: dict[tuple[str, str, str, float | str], dict[str, Any]] = {}
    for s in sentences:
        for fig in s.figures:
            measured = fig.kind in {"duration", "size", "percent"}
            quantity = fig.normalized if measured else fig.value.lower()
            out.setdefault((s.doc_id, s.text, fig.kind, quantity), _figure_dict(fig, s))
    return list(out.values())


def _figure_dict(fig: Figure, s: Sentence) -> dict[str, Any]:
    return {
        "value": fig.value, "number": fig.number, "unit": fig.unit, "kind": fig.kind,
        "subject": fig.subject, "text": s.text, "doc_id": s.doc_id, "title": s.title,
        "source": s.source, "topic": s.topic,
    }  # fmt: skip


def find_agreements(ranked: list[Sentence]) -> list[dict[str, Any]]:
    """Statements (then figures) supported by two or more different documents."""
    candidates = _distinct([s for s in ranked if s.score > 0])[:_CANDIDATES]
    idf = _idf(ranked)
    found: list[dict[str, Any]] = []
    used: set[int] = set()
    for i, anchor in enumerate(candidates):
        if i in used:
            continue
        support = [j for j in range(i + 1, len(candidates)) if _agree(anchor, candidates[j], idf)]
        if support:
            used.update(support)
            others = [candidates[j] for j in support]
            shared = set.intersection(anchor.terms, *(o.terms for o in others))
            found.append(_agreement("statement", anchor, others, sorted(shared)))
    found.extend(_figure_agreements(candidates))
    return found[:MAX_AGREEMENTS]


def _agree(a: Sentence, b: Sentence, idf: _Idf) -> bool:
    """Different documents, enough shared terms, one of them distinctive, and a high
    IDF-weighted Jaccard similarity."""
    shared = a.terms & b.terms
    if a.doc_id == b.doc_id or len(shared) < AGREEMENT_MIN_SHARED:
        return False
    if not any(idf.weights[t] >= idf.rare for t in shared):
        return False
    union = sum(idf.weights[t] for t in a.terms | b.terms)
    return union > 0 and sum(idf.weights[t] for t in shared) / union >= AGREEMENT_WEIGHTED_JACCARD


@dataclass(frozen=True, slots=True)
class _Idf:
    weights: dict[str, float]
    rare: float  # the weight of a term found in at most two sentences


def _idf(sentences: list[Sentence]) -> _Idf:
    """Inverse sentence frequency of every term: rare terms say more about agreement."""
    distinct = _distinct(sentences)
    df = Counter(t for s in distinct for t in s.terms)
    n = max(len(distinct), 2)
    return _Idf({t: math.log(n / k) for t, k in df.items()}, math.log(n / 2) - 1e-9)


def _distinct(sentences: list[Sentence]) -> list[Sentence]:
    """First occurrence of each sentence text (two topics may retrieve the same passage)."""
    seen: dict[tuple[str, str], Sentence] = {}
    for s in sentences:
        seen.setdefault((s.doc_id, s.text), s)
    return list(seen.values())


def _figure_agreements(candidates: list[Sentence]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    seen: set[tuple[str, float]] = set()
    for (a, fa), (b, fb) in combinations(_figures_of(candidates), 2):
        key = (fa.kind, fa.normalized)
        same = fa.same_quantity(fb) and fa.normalized == fb.normalized
        if a.doc_id != b.doc_id and same and _subject_overlap(fa, fb) >= 1 and key not in seen:
            seen.add(key)
            found.append(_agreement("figure", a, [b], [fa.value], value=fa.value))
    return found


def _agreement(
    kind: str, anchor: Sentence, others: list[Sentence], shared: list[str], value: str = ""
) -> dict[str, Any]:
    claims = [anchor, *others]
    return {
        "kind": kind,
        "text": anchor.text,
        "value": value,
        "shared_terms": shared,
        "doc_ids": list(dict.fromkeys(s.doc_id for s in claims)),
        "supporting": [_claim(s) for s in claims],
    }


def find_contradictions(ranked: list[Sentence], across_topics: bool) -> list[dict[str, Any]]:
    """Possible contradictions: conflicting figures or delivery guarantees on one subject.

    In a comparison, two topics differing is the point, not a contradiction: only sentences
    of the same topic are checked against each other unless ``across_topics``.
    """
    candidates = _distinct([s for s in ranked if s.score > 0])[:_CANDIDATES]
    found = _figure_conflicts(candidates, across_topics)
    found.extend(_guarantee_conflicts(candidates, across_topics))
    return found[:MAX_CONTRADICTIONS]


def _comparable(a: Sentence, b: Sentence, across_topics: bool) -> bool:
    return a.doc_id != b.doc_id and (across_topics or a.topic == b.topic)


def _figure_conflicts(candidates: list[Sentence], across_topics: bool) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for (a, fa), (b, fb) in combinations(_figures_of(candidates), 2):
        if not _comparable(a, b, across_topics) or not fa.same_quantity(fb):
            continue
        if fa.normalized != fb.normalized and _subject_overlap(fa, fb) >= 2:
            note = (
                f"Possible contradiction: {fa.value!r} and {fb.value!r} for {fa.subject!r}; "
                "the sources may describe different versions or settings."
            )
            found.append(_contradiction("figure", fa.subject, note, [(a, fa.value), (b, fb.value)]))
    return found


def _guarantee_conflicts(candidates: list[Sentence], across_topics: bool) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    claims = [(s, g) for s in candidates if len(g := s.terms & _DELIVERY_TERMS) == 1]
    for (a, ga), (b, gb) in combinations(claims, 2):
        names = _names(a.text) & _names(b.text)
        if ga == gb or not names or not _comparable(a, b, across_topics):
            continue
        subject = ", ".join(sorted(names))
        note = (
            f"Possible contradiction: {min(ga)} vs {min(gb)} for {subject}; "
            "check which configuration each source describes."
        )
        found.append(_contradiction("guarantee", subject, note, [(a, min(ga)), (b, min(gb))]))
    return found


def _names(text: str) -> set[str]:
    """Product-like names in a sentence: capitalised words, bar a plain sentence opener."""
    tokens = re.findall(r"[A-Za-z][\w-]*", text)
    names = {t for i, t in enumerate(tokens) if t[0].isupper() and (i > 0 or _name_like(t))}
    return {n for n in names if n.lower() not in STOPWORDS}


def _name_like(word: str) -> bool:
    return any(c.isupper() for c in word[1:]) or not word.lower().endswith(("ing", "ed", "s"))


def _contradiction(
    kind: str, subject: str, note: str, claims: list[tuple[Sentence, str]]
) -> dict[str, Any]:
    return {
        "kind": kind,
        "subject": subject,
        "note": note,
        "claims": [{**_claim(s), "value": value} for s, value in claims],
    }


def _claim(s: Sentence) -> dict[str, str]:
    return {"text": s.text, "doc_id": s.doc_id, "title": s.title, "source": s.source}


def _figures_of(sentences: list[Sentence]) -> list[tuple[Sentence, Figure]]:
    return [(s, f) for s in sentences for f in s.figures if f.subject]


def _subject_overlap(a: Figure, b: Figure) -> int:
    return len(set(a.subject.split()) & set(b.subject.split()))
