"""The one interface every agent brain implements (offline now, LLM-backed later).

An agent gets a :class:`StepInput` and returns a :class:`StepOutput`. It knows nothing of
Redis, HTTP or the event log: progress goes through the ``progress`` callback, which the
worker turns into ``step_progress`` events. Raising :class:`~app.errors.StepError` (or any
exception) makes the orchestration retry the step per its retry policy.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from app.models import Plan

ProgressFn = Callable[[str], Awaitable[None]]


async def _no_progress(_: str) -> None:
    return None


class StepInput(BaseModel):
    task_id: str
    step_id: str
    agent: str
    instruction: str
    user_input: str
    attempt: int = 1
    #: Results of the steps this one depends on, by step id (their ``StepOutput.data``).
    inputs: dict[str, dict[str, Any]] = Field(default_factory=dict)
    #: Tokens the task may still spend (its budget minus what it spent); None = no limit.
    #: LLM agents cap ``max_tokens`` at it and refuse to start at 0.
    budget_tokens_left: int | None = None


class StepOutput(BaseModel):
    #: JSON-serialisable result handed to dependent steps and stored in Redis.
    data: dict[str, Any]
    #: Short human-readable summary for events and logs (a line, not the whole result).
    summary: str = ""
    #: Cost in cost units (see docs/system_design.md, "Cost model").
    cost_units: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    tokens_in: int = 0
    tokens_out: int = 0
    #: The LLM model that ran the step (None for non-LLM agents); a metrics label.
    model: str | None = None
    #: Currency of ``cost_units`` when an LLM priced them (e.g. ``"USD"``); None: cost units.
    currency: str | None = None


@runtime_checkable
class Agent(Protocol):
    name: str

    async def run(self, step: StepInput, progress: ProgressFn = _no_progress) -> StepOutput: ...


@runtime_checkable
class Planner(Protocol):
    async def plan(self, user_input: str) -> Plan: ...
