"""What the streaming LLM agents share: the token cap, the streamed call, the step's result.

Token cap per call: ``AGENTIC_LLM_MAX_OUTPUT_TOKENS``, lowered to ``StepInput.budget_tokens_left``
when the orchestration passes one; a budget already spent raises :class:`BudgetExhausted`
before any request is sent.

Every result carries, in ``data["usage"]``: ``model``, ``tokens_in``, ``tokens_out``,
``cost_units``, ``currency``, ``priced`` and ``usage_estimated`` (true when the endpoint sent
no usage and :func:`app.agents.llm.client.estimate_usage` counted instead); the same numbers go
to ``StepOutput.tokens_in``/``tokens_out``/``cost_units``/``model``/``currency``.
"""

from __future__ import annotations

from typing import Any

from app.agents.base import ProgressFn, StepInput, StepOutput
from app.agents.llm.client import Completion, LLMClient, Message
from app.agents.llm.errors import BudgetExhausted
from app.agents.llm.pricing import PriceTable


def token_cap(step: StepInput, max_output_tokens: int) -> int:
    left = step.budget_tokens_left
    if left is None:
        return max_output_tokens
    if left <= 0:
        raise BudgetExhausted(f"task token budget exceeded ({left} tokens left)")
    return min(max_output_tokens, left)


class StreamingLLMAgent:
    """Base of the analyzer and the writer: one streamed chat completion per step."""

    name = "llm"

    def __init__(
        self,
        client: LLMClient,
        model: str,
        prices: PriceTable,
        *,
        max_output_tokens: int = 1500,
        max_context_chars: int = 24_000,
    ) -> None:
        self.client = client
        self.model = model
        self.prices = prices
        self.max_output_tokens = max_output_tokens
        self.max_context_chars = max_context_chars

    async def complete(
        self, step: StepInput, messages: list[Message], progress: ProgressFn
    ) -> Completion:
        cap = token_cap(step, self.max_output_tokens)
        return await self.client.stream(self.model, messages, progress, max_tokens=cap)

    def output(self, data: dict[str, Any], summary: str, completion: Completion) -> StepOutput:
        usage = completion.usage
        cost = self.prices.cost(self.model, usage.tokens_in, usage.tokens_out)
        data["usage"] = {
            "model": self.model,
            "tokens_in": usage.tokens_in,
            "tokens_out": usage.tokens_out,
            "cost_units": cost.units,
            "currency": cost.currency,
            "priced": cost.priced,
            "usage_estimated": usage.estimated,
        }
        data["usage_estimated"] = usage.estimated
        if completion.finish_reason == "length":
            data["truncated"] = True
        return StepOutput(
            data=data,
            summary=summary,
            cost_units=cost.units,
            tokens_in=usage.tokens_in,
            tokens_out=usage.tokens_out,
            model=self.model,
            currency=cost.currency,
        )
