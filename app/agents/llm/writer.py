"""LLM writer: a streamed, cited Markdown report from the analysis notes (and any documents).

Inputs: the analyzer's notes (``data["analysis"]``, passed as ``<analysis>`` blocks, quoted
data like documents since they were derived from them) and, if a plan wires retrievers
straight to the writer, their documents. The model writes the report with ``[n]`` citations;
the writer then appends ``## Sources`` (numbered, with links) itself, and sends that as one
last progress delta too, so the concatenated deltas are exactly the final ``markdown``.

Result (``StepOutput.data``)::

    {"markdown": str, "title": str, "sources": [{"n", "doc_id", "title", "source"}],
     "word_count": int, "usage": {...}, "usage_estimated": bool}
"""

from __future__ import annotations

from typing import Any

from app.agents.base import ProgressFn, StepInput, StepOutput, _no_progress
from app.agents.llm.client import Message
from app.agents.llm.prompts import (
    WRITER_SYSTEM,
    block,
    numbered_sources,
    public_sources,
    render_documents,
    render_source_list,
    task_header,
)
from app.agents.llm.step import StreamingLLMAgent
from app.agents.text import word_count
from app.agents.writer import report_title


class LLMWriter(StreamingLLMAgent):
    name = "writer"

    async def run(self, step: StepInput, progress: ProgressFn = _no_progress) -> StepOutput:
        sources = numbered_sources(step.inputs)
        title = report_title(step)
        messages: list[Message] = [
            {"role": "system", "content": WRITER_SYSTEM},
            {"role": "user", "content": self.prompt(step, title, sources)},
        ]
        completion = await self.complete(step, messages, progress)
        appendix = sources_section(sources)
        if appendix:
            await progress(appendix)
        markdown = completion.text + appendix
        words = word_count(markdown)
        data: dict[str, Any] = {
            "markdown": markdown,
            "title": title,
            "sources": public_sources(sources),
            "word_count": words,
        }
        summary = f"report of {words} words citing {len(sources)} sources, by {self.model}"
        return self.output(data, summary, completion)

    def prompt(self, step: StepInput, title: str, sources: list[dict[str, Any]]) -> str:
        notes = [
            block("analysis", {"step": sid}, str(data["analysis"]))
            for sid, data in sorted(step.inputs.items())
            if isinstance(data.get("analysis"), str)
        ]
        parts = [
            task_header(step.user_input, step.instruction),
            f"Title: {title}",
            "Analysis notes:\n" + ("\n\n".join(notes) or "(none)"),
            f"Sources:\n{render_source_list(sources)}",
        ]
        if any(s.get("passage") for s in sources):
            parts.append(f"Documents:\n{render_documents(sources, self.max_context_chars)}")
        return "\n\n".join(parts)


def sources_section(sources: list[dict[str, Any]]) -> str:
    if not sources:
        return ""
    lines = []
    for s in sources:
        name = str(s.get("title") or s.get("doc_id") or s.get("source"))
        link = str(s.get("source") or "")
        entry = f"[{name}]({link})" if link.startswith(("http://", "https://")) else name
        lines.append(f"{s['n']}. {entry}" + (f" — {link}" if link and entry == name else ""))
    return "\n\n## Sources\n\n" + "\n".join(lines) + "\n"
