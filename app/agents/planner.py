"""Planner (offline): a deterministic decomposition of the task into a DAG of steps.

The shape follows the task, tried in this order:

=============================  ==========================================================
task names http(s) URLs        one retriever per URL (+ a corpus search for the rest)
comparison ("A vs B", ...)     one retriever per item, in parallel
several questions / a list     one retriever per question or list item
anything else (a topic)        two retrievers: overview, and performance/limits/figures
=============================  ==========================================================

Every shape ends with ``analyze`` (depends on every retriever) then ``write``. So a
comparison of two things is exactly the bench DAG: two parallel retrieves, analyze, write.
Retriever instructions read ``<label>: <query> — <focus>``; the retriever reports the label
as its ``topic`` and the writer uses it as a section heading.

Planning costs no cost units: it runs in the API process, before any step is queued.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.agents.text import (
    asks_for_recommendation,
    find_urls,
    remove_urls,
    shorten,
    split_sentences,
    tokenize,
)
from app.errors import PlanError
from app.models import MAX_PLAN_STEPS, Plan, PlanStep

MAX_RETRIEVERS = 6
_MAX_ITEM_WORDS = 8
_MAX_INSTRUCTION_CHARS = 600

_COMPARE_RE = re.compile(
    r"\b(?:compar(?:e|ing|ison\s+(?:of|between))|differences?\s+between|contrast)\s+(.+)", re.I
)
_VERSUS_RE = re.compile(r"\s+(?:vs\.?|versus)\s+", re.I)
_TRAILING_CLAUSE_RE = re.compile(
    r"(?:,\s*|\s+)(?:(?:and|then|and then)\s+)?(?:write|recommend|produce|give|make|summari[sz]e|"
    r"explain|suggest|tell|draft|create|decide|pick|choose|list|provide|outline|describe|which|"
    r"including|include)\b.*$",
    re.I,
)
_CONTEXT_RE = re.compile(
    r"\s+(?:for|in terms of|when|regarding|with respect to|as|on|in|under|at)\s+(.+)$", re.I
)
_ITEM_SPLIT_RE = re.compile(
    r"\s*,\s*(?:and\s+|or\s+)?|\s+(?:and|or|vs\.?|versus|with|to|against|&)\s+", re.I
)
_LEFT_FILLER_RE = re.compile(r"(?:\b(?:use|between|choose|pick|of|is|are|about|on)\s+|:\s*)", re.I)
_LIST_ITEM_RE = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s+(.+?)\s*$", re.M)
_LEADING_ASK_RE = re.compile(
    r"^(?:please\s+)?(?:(?:write|give|produce|draft|prepare|create|make)\s+(?:me\s+)?"
    r"(?:a|an)?\s*(?:short|brief|detailed|quick)?\s*(?:report|brief|summary|overview|note|"
    r"explanation|write-?up)\s+(?:on|about|of)\s+|(?:explain|describe|summari[sz]e|research|"
    r"tell me about|what is|what are|how does|how do|investigate)\s+)",
    re.I,
)


@dataclass(frozen=True, slots=True)
class Decomposition:
    """What the planner understood: how to search, then what to analyze and write."""

    kind: str
    searches: list[str]
    analysis: str
    title: str


class OfflinePlanner:
    """Rule-based planner; same input, same plan."""

    name = "offline"

    def __init__(self, max_steps: int = MAX_PLAN_STEPS) -> None:
        self.max_steps = max(1, min(max_steps, MAX_PLAN_STEPS))

    async def plan(self, user_input: str) -> Plan:
        return make_plan(user_input, self.max_steps)


def make_plan(user_input: str, max_steps: int = MAX_PLAN_STEPS) -> Plan:
    text = re.sub(r"[ \t]+", " ", user_input).strip()
    if not text:
        raise PlanError("the task is empty")
    found = decompose(text)
    return assemble(found, text, max_steps)


def decompose(text: str) -> Decomposition:
    return _by_urls(text) or _by_comparison(text) or _by_subtasks(text) or _by_topic(text)


def assemble(found: Decomposition, text: str, max_steps: int = MAX_PLAN_STEPS) -> Plan:
    """Retrievers in parallel, then ``analyze`` on all of them, then ``write``."""
    budget = min(MAX_RETRIEVERS, max(max_steps - 2, 1))
    retrieves = [
        PlanStep(id=f"retrieve_{i}", agent="retriever", instruction=_fit(query))
        for i, query in enumerate(found.searches[:budget], start=1)
    ]
    analyze = PlanStep(
        id="analyze",
        agent="analyzer",
        instruction=_fit(found.analysis),
        depends_on=[s.id for s in retrieves],
    )
    wants = " Finish with a recommendation." if asks_for_recommendation(text) else ""
    title = shorten(found.title, 120).replace('"', "'")
    write_instruction = f'Write a cited Markdown report titled "{title}".{wants}'
    if max_steps < 3:  # a tiny step budget: search and write, or write alone
        deps = [s.id for s in retrieves[: max_steps - 1]]
        write = PlanStep(id="write", agent="writer", instruction=write_instruction, depends_on=deps)
        return Plan(steps=[*retrieves[: max_steps - 1], write], planner="offline")
    write = PlanStep(
        id="write", agent="writer", instruction=write_instruction, depends_on=["analyze"]
    )
    return Plan(steps=[*retrieves, analyze, write], planner="offline")


# --- the four shapes ------------------------------------------------------------------------


def _by_urls(text: str) -> Decomposition | None:
    urls = find_urls(text)
    if not urls:
        return None
    rest = re.sub(
        r"^(?:and|or|then|also)\s+", "", _strip_ask(_clean(remove_urls(text))), flags=re.I
    )
    about = rest or "the linked pages"
    search_corpus = len(tokenize(rest)) >= 2
    urls = urls[: MAX_RETRIEVERS - 1] if search_corpus else urls  # keep room for the corpus
    searches = [f"Fetch {url} — extract what is relevant to: {about}" for url in urls]
    if search_corpus:
        searches.append(f"Corpus search: {rest}")
    analysis = f"Analyze the fetched pages and passages for: {about}"
    title = _title(rest) if rest else "Linked pages: " + ", ".join(urls)
    return Decomposition("urls", searches, analysis, title)


def _by_comparison(text: str) -> Decomposition | None:
    parsed = parse_comparison(text)
    if parsed is None:
        return None
    items, context = parsed
    items = items[:MAX_RETRIEVERS]
    focus = "how it works, guarantees, performance figures and limits"
    about = f" {context} — {focus}" if context else f" — {focus}"
    searches = [f"{item}: {item}{about}" for item in items]
    subject = _join(items) + (f" for {context}" if context else "")
    analysis = f"Compare {subject}: key points per item, figures, agreements and contradictions."
    title = " vs ".join(items) + (f" for {context}" if context else "")
    return Decomposition("comparison", searches, analysis, _title(title))


def _by_subtasks(text: str) -> Decomposition | None:
    parts, intro = _split_subtasks(text)
    if len(parts) < 2:
        return None
    suffix = f" — context: {intro}" if intro and len(tokenize(intro)) <= 20 else ""
    searches = [f"{part}{suffix}" for part in parts]
    analysis = "Answer each sub-question from the passages: key points, figures, agreements."
    title = _strip_ask(intro) if intro else "; ".join(_strip_ask(p) for p in parts)
    return Decomposition("subtasks", searches, analysis, _title(title))


def _by_topic(text: str) -> Decomposition:
    topic = shorten(_clean(_strip_ask(text)) or text, 300)
    searches = [
        f"Overview: {topic} — what it is, how it works, key concepts",
        f"Performance and limits: {topic} — defaults, throughput, latency, limits, trade-offs",
    ]
    analysis = f"Analyze {topic}: key points, figures, agreements."
    return Decomposition("topic", searches, analysis, _title(topic))


# --- comparison parsing ---------------------------------------------------------------------


def parse_comparison(text: str) -> tuple[list[str], str] | None:
    """``"Compare A and B for X"`` → ``(["A", "B"], "X")``; None if this is no comparison."""
    listed = _list_items(text)
    scope = _without_list(text) if len(listed) >= 2 else text  # a list item is a sub-task
    for clause in _clauses(re.sub(r"\bvs\.", "vs", scope, flags=re.I)):
        match = _COMPARE_RE.search(clause)
        if match:
            found = _items_and_context(match.group(1))
        elif _VERSUS_RE.search(clause):
            found = _versus(clause)
        else:
            continue
        items = listed if len(found[0]) < 2 else found[0]
        if len(items) >= 2 and all(len(i.split()) <= _MAX_ITEM_WORDS for i in items):
            return items, found[1]
    return None


def _clauses(text: str) -> list[str]:
    return [c.strip() for c in re.split(r"[.?!;:\n]+(?:\s+|$)", text) if c.strip()]


def _items_and_context(rest: str) -> tuple[list[str], str]:
    rest = _TRAILING_CLAUSE_RE.sub("", rest).strip()
    context = ""
    match = _CONTEXT_RE.search(rest)
    if match:
        rest, context = rest[: match.start()], match.group(1)
    items = [_clean_item(i) for i in _ITEM_SPLIT_RE.split(rest)]
    return _unique([i for i in items if i]), _clean(context)


def _versus(clause: str) -> tuple[list[str], str]:
    parts = _VERSUS_RE.split(clause)
    left = _LEFT_FILLER_RE.split(parts[0])[-1]
    left = " ".join(left.split()[-4:])
    items, context = _items_and_context(" vs ".join(parts[1:]))
    return _unique([i for i in [_clean_item(left), *items] if i]), context


def _without_list(text: str) -> str:
    return " ".join(line for line in text.splitlines() if not _LIST_ITEM_RE.match(line))


def _list_items(text: str) -> list[str]:
    items = [_clean_item(m) for m in _LIST_ITEM_RE.findall(text)]
    return _unique([i for i in items if i])


# --- sub-tasks ------------------------------------------------------------------------------


def _split_subtasks(text: str) -> tuple[list[str], str]:
    """Numbered or bulleted items, else several questions, else ``X; Y``; plus the intro."""
    listed = [m.strip() for m in _LIST_ITEM_RE.findall(text)]
    if len(listed) >= 2:
        return _unique(listed), _clean(_without_list(text))
    sentences = split_sentences(text)
    questions = [s for s in sentences if s.endswith("?")]
    if len(questions) >= 2:
        intro = " ".join(s for s in sentences if not s.endswith("?"))
        return _unique(questions), _clean(intro)
    parts = [p.strip() for p in text.split(";") if len(tokenize(p)) >= 2]
    return (_unique(parts), "") if len(parts) >= 2 else ([], "")


# --- small helpers --------------------------------------------------------------------------


def _strip_ask(text: str) -> str:
    return _LEADING_ASK_RE.sub("", text.strip()).strip() or text.strip()


def _title(text: str) -> str:
    text = _clean(text)
    return text[:1].upper() + text[1:] if text else "Report"


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip(" \t\n,;:.-—")


def _clean_item(item: str) -> str:
    item = _clean(item).strip("\"'`?!()")
    return re.sub(r"^(?:the|a|an|using)\s+", "", item, flags=re.I)


def _unique(items: list[str]) -> list[str]:
    seen: dict[str, str] = {}
    for item in items:
        seen.setdefault(item.lower(), item)
    return list(seen.values())


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _fit(instruction: str) -> str:
    return shorten(instruction, _MAX_INSTRUCTION_CHARS)
