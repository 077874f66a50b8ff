"""Rendering of the offline writer's Markdown report, with numbered citations.

Pure functions of the analysis: same analysis, same report. Every claim the report repeats
comes from a passage and carries that passage's citation; the recommendation is assembled
from those claims and says so.
"""

from __future__ import annotations

from typing import Any

from app.agents.text import content_terms, shorten

MAX_FIGURE_ROWS = 12
MAX_SUMMARY_POINTS = 3
_CAVEAT = (
    "_Assembled by the offline writer from the cited passages only; weigh it against your "
    "own workload (throughput, ordering, retention, delivery guarantees, operations)._"
)


class Citations:
    """Numbers sources in order of first citation; uncited sources are listed after them."""

    def __init__(self, sources: list[dict[str, Any]]) -> None:
        self._known: dict[str, dict[str, Any]] = {}
        for s in sources:
            self._known.setdefault(str(s.get("doc_id", "")), s)
        self._order: dict[str, int] = {}

    def cite(self, doc_id: str) -> str:
        self._known.setdefault(doc_id, {"doc_id": doc_id, "title": doc_id, "source": ""})
        return f"[{self._order.setdefault(doc_id, len(self._order) + 1)}]"

    def cite_all(self, doc_ids: list[str]) -> str:
        return "".join(self.cite(d) for d in dict.fromkeys(doc_ids))

    def numbered(self) -> list[dict[str, Any]]:
        ids = [*self._order, *(d for d in self._known if d not in self._order)]
        return [
            {"n": n, "doc_id": d, "title": str(self._known[d].get("title", d)),
             "source": str(self._known[d].get("source", "")), "cited": d in self._order}
            for n, d in enumerate(ids, start=1)
        ]  # fmt: skip


def render(
    title: str, user_input: str, analysis: dict[str, Any], cite: Citations, wants_advice: bool
) -> str:
    blocks = [
        f"# {title}",
        _summary(user_input, analysis, cite),
        *_findings(analysis, cite),
        _figures(analysis, cite),
        _agreements_and_contradictions(analysis, cite),
        recommendation(user_input, analysis, cite) if wants_advice else "",
        _sources(cite),
    ]
    return "\n\n".join(b.strip() for b in blocks if b.strip()) + "\n"


def _summary(user_input: str, analysis: dict[str, Any], cite: Citations) -> str:
    points = _summary_points(analysis)
    lines = ["## Summary", "", f"> {shorten(user_input, 300)}", ""]
    n_docs = len(analysis.get("sources", []))
    if not points:
        lines.append("No relevant material was found in the local corpus for this task.")
    else:
        labels = [t["label"] for t in _topics(analysis)]
        scope = f", comparing {_join(labels)}" if analysis.get("comparison") else ""
        docs = f"{n_docs} document{'s' if n_docs != 1 else ''}"
        lines.append(f"This report draws on {docs} from the local corpus{scope}.")
        lines.extend(f"- {p['text']} {cite.cite(p['doc_id'])}" for p in points)
    urls = [u for t in _topics(analysis) for u in t.get("urls", [])]
    fetched = [u for u in urls if u.get("status") == "fetched"]
    skipped = [u for u in urls if u.get("status") != "fetched"]
    if urls:
        lines.append("")
    if fetched:
        lines.append(f"{len(fetched)} linked page(s) were fetched and read.")
    if skipped:
        lines.append(
            f"{len(skipped)} linked page(s) were not fetched: {skipped[0].get('reason', '')}."
        )
    return "\n".join(lines)


def _summary_points(analysis: dict[str, Any]) -> list[dict[str, Any]]:
    topics = _topics(analysis)
    if analysis.get("comparison") and topics:
        firsts = [t["key_points"][0] for t in topics if t.get("key_points")]
        return firsts[:MAX_SUMMARY_POINTS]
    return list(analysis.get("key_points", []))[:MAX_SUMMARY_POINTS]


def _findings(analysis: dict[str, Any], cite: Citations) -> list[str]:
    topics = _topics(analysis)
    if len(topics) < 2:
        points = analysis.get("key_points", [])
        return ["## Key findings\n\n" + (_bullets(points, cite) or _NOTHING)]
    blocks = []
    for topic in topics:
        body = _bullets(topic.get("key_points", []), cite) or _NOTHING
        for url in topic.get("urls", []):
            if url.get("status") != "fetched":
                body = f"_Not fetched: {url.get('url')} ({url.get('reason')})._\n\n{body}"
        blocks.append(f"## {topic['label']}\n\n{body}")
    return blocks


_NOTHING = "_No relevant passages were found in the local corpus._"


def _bullets(points: list[dict[str, Any]], cite: Citations) -> str:
    return "\n".join(f"- {p['text']} {cite.cite(p['doc_id'])}" for p in points)


def _figures(analysis: dict[str, Any], cite: Citations) -> str:
    figures = analysis.get("figures", [])[:MAX_FIGURE_ROWS]
    if not figures:
        return ""
    labels = {sid: t["label"] for sid, t in analysis.get("topics", {}).items()}
    by_topic = bool(analysis.get("comparison"))
    head = "| Topic | Figure | Context | Source |" if by_topic else "| Figure | Context | Source |"
    rows = ["## Figures", "", head, "|---" * head.count(" | ") + "|---|"]
    for f in figures:
        cells = [f["value"], shorten(f["text"], 160), cite.cite(f["doc_id"])]
        if by_topic:
            cells.insert(0, labels.get(f.get("topic", ""), ""))
        rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(rows)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _agreements_and_contradictions(analysis: dict[str, Any], cite: Citations) -> str:
    lines = ["## Agreements and contradictions", "", "**Agreements.**", ""]
    agreements = analysis.get("agreements", [])
    for a in agreements:
        refs = cite.cite_all(a.get("doc_ids", []))
        lines.append(f"- {shorten(a['text'], 220)} — stated by {len(a['doc_ids'])} sources {refs}")
    if not agreements:
        lines.append("No statement was found in two or more different sources.")
    lines += ["", "**Contradictions.**", ""]
    contradictions = analysis.get("contradictions", [])
    for c in contradictions:
        claims = " vs ".join(
            f"“{shorten(k['text'], 140)}” {cite.cite(k['doc_id'])}" for k in c["claims"]
        )
        lines.append(f"- {c['note']} {claims}")
    if not contradictions:
        lines.append(
            "None detected. (The check is a heuristic: different figures for the same subject, "
            "or conflicting delivery guarantees, between sources on the same topic.)"
        )
    return "\n".join(lines)


def recommendation(user_input: str, analysis: dict[str, Any], cite: Citations) -> str:
    topics = [t for t in _topics(analysis) if t.get("key_points")]
    lines = ["## Recommendation", ""]
    if analysis.get("comparison") and len(topics) >= 2:
        for topic in topics:
            p = _advice(topic)
            lines.append(f"- **{topic['label']}**: {p['text']} {cite.cite(p['doc_id'])}")
        lines += ["", _verdict(user_input, topics)]
    elif analysis.get("key_points"):
        points = analysis.get("advice") or analysis["key_points"][:1]
        lines.extend(f"- {p['text']} {cite.cite(p['doc_id'])}" for p in points)
    else:
        lines.append("The local corpus holds too little on this task to recommend anything.")
    return "\n".join([*lines, "", _CAVEAT])


def _advice(topic: dict[str, Any]) -> dict[str, Any]:
    """The topic's best advice-like sentence (found by the analyzer), else its first point."""
    advice: list[dict[str, Any]] = topic.get("advice") or topic["key_points"]
    return advice[0]


def _verdict(user_input: str, topics: list[dict[str, Any]]) -> str:
    """Which option the retrieved evidence ties most closely to the needs stated in the task."""
    names = set().union(*(content_terms(t["label"]) for t in topics))
    needs = content_terms(user_input) - names
    scores = [sum(len(content_terms(p["text"]) & needs) for p in t["key_points"]) for t in topics]
    best = max(scores)
    if not needs or best == 0 or scores.count(best) > 1:
        return (
            "The retrieved evidence does not single out one option: choose on the trade-offs above."
        )
    winner = topics[scores.index(best)]["label"]
    return (
        f"On the retrieved evidence, **{winner}** matches the needs stated in the task "
        f"({', '.join(sorted(needs)[:5])}) most closely."
    )


def _sources(cite: Citations) -> str:
    lines = ["## Sources", ""]
    for s in cite.numbered():
        source = f" — Source: {s['source']}" if s["source"] else ""
        note = "" if s["cited"] else " (retrieved, not cited)"
        lines.append(f"{s['n']}. {s['title']}{source}{note}")
    return "\n".join(lines)


def _topics(analysis: dict[str, Any]) -> list[dict[str, Any]]:
    return list(analysis.get("topics", {}).values())


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
