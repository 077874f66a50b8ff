"""LLM analyzer: streamed analysis notes on the retrieved documents, citing them as ``[n]``.

The documents reach the model as quoted data (``prompts`` has the policy); every text delta
goes to ``progress`` as it arrives. Result (``StepOutput.data``)::

    {"analysis": str (Markdown notes), "sources": [{"n", "doc_id", "title", "source"}],
     "usage": {...}, "usage_estimated": bool}

Cost: the endpoint's token usage priced by ``pricing`` (see ``step``).
"""

from __future__ import annotations

from app.agents.base import ProgressFn, StepInput, StepOutput, _no_progress
from app.agents.llm.client import Message
from app.agents.llm.prompts import (
    ANALYZER_SYSTEM,
    numbered_sources,
    public_sources,
    render_documents,
    task_header,
)
from app.agents.llm.step import StreamingLLMAgent


class LLMAnalyzer(StreamingLLMAgent):
    name = "analyzer"

    async def run(self, step: StepInput, progress: ProgressFn = _no_progress) -> StepOutput:
        sources = numbered_sources(step.inputs)
        messages: list[Message] = [
            {"role": "system", "content": ANALYZER_SYSTEM},
            {
                "role": "user",
                "content": f"{task_header(step.user_input, step.instruction)}\n\n"
                f"Documents:\n{render_documents(sources, self.max_context_chars)}",
            },
        ]
        completion = await self.complete(step, messages, progress)
        data = {"analysis": completion.text, "sources": public_sources(sources)}
        summary = (
            f"analysis of {len(sources)} sources by {self.model} "
            f"({completion.usage.tokens_out} tokens)"
        )
        return self.output(data, summary, completion)
