"""LLM planner: the model proposes the plan as JSON; pydantic decides whether it is one.

1. Ask for ``{"steps": [...]}`` with ``response_format`` of type ``json_schema`` (strict);
   an endpoint that answers 400/422 to that is asked with ``json_object``, then with the
   prompt alone (the first mode that works is remembered). ``AGENTIC_LLM_JSON_MODE`` pins one.
2. Parse (code fences and prose around the object are tolerated) and validate with
   :class:`app.models.Plan` (known agents, unique ids, known dependencies, acyclic, 1 to
   ``max_steps`` steps). Valid: ``planner="llm"``.
3. Invalid: ONE repair round, sending the validation error back. Valid now:
   ``planner="llm-repaired"``.
4. Still invalid, or the endpoint failed (error, timeout, no connection), or the whole thing
   took longer than ``AGENTIC_PLANNER_TIMEOUT_S``: the offline planner's plan, with
   ``planner="offline-fallback"``. Planning runs inside ``POST /run-task``, so it must end.

``Plan.planner`` reaches ``plan_created`` and ``GET /tasks/{id}``, so a client sees which path
was taken. The planner's own tokens are logged, not added to the task's totals (the task does
not exist yet when it runs).
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any, Literal

import structlog
from pydantic import ValidationError

from app.agents.llm.client import LLMClient, Message
from app.agents.llm.errors import LLMRequestRejected
from app.agents.planner import OfflinePlanner
from app.errors import PlanError, StepError
from app.models import MAX_PLAN_STEPS, Plan

log = structlog.get_logger("agentic.planner")

JsonMode = Literal["json_schema", "json_object", "prompt"]
JSON_MODES: tuple[JsonMode, ...] = ("json_schema", "json_object", "prompt")
PLAN_MAX_TOKENS = 2000

PLAN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "steps": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "agent": {"type": "string", "enum": ["retriever", "analyzer", "writer"]},
                    "instruction": {"type": "string"},
                    "depends_on": {"type": "array", "items": {"type": "string"}},
                },
                "required": ["id", "agent", "instruction", "depends_on"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["steps"],
    "additionalProperties": False,
}

PLANNER_SYSTEM = """You are the Planner of a research pipeline. Turn the user's task into a \
plan: a DAG of steps run by three agents.
- retriever: searches a local document corpus; it can also fetch web pages, but only URLs that \
the user wrote in the task. Put each such URL verbatim in the instruction of its own retriever \
step. One retriever per sub-topic or URL; independent retrievers run in parallel.
- analyzer: reads the retrievers' results and extracts key points, figures, agreements and \
contradictions. It should depend on the retrievers.
- writer: writes the final Markdown report from the analysis. It should depend on the \
analyzer. Its instruction reads: Write a cited Markdown report titled "<title>".
Rules: at most {max_steps} steps; ids match [A-Za-z0-9_-]{{1,40}} and are unique; depends_on \
lists ids of earlier steps only (no cycles). Reply with a JSON object only, no prose:
{{"steps": [{{"id": "retrieve_1", "agent": "retriever", "instruction": "...", \
"depends_on": []}}, ...]}}"""

REPAIR_PROMPT = (
    "That plan is invalid: {error}\nReply with the corrected plan as a JSON object only, "
    'of the form {{"steps": [...]}}.'
)


class PlanInvalid(ValueError):  # a verdict on the model's output, not a malfunction
    pass


class LLMPlanner:
    name = "llm"

    def __init__(
        self,
        client: LLMClient,
        model: str,
        *,
        max_steps: int = MAX_PLAN_STEPS,
        timeout_s: float = 20.0,
        json_mode: Literal["auto", "json_schema", "json_object", "prompt"] = "auto",
    ) -> None:
        self.client = client
        self.model = model
        self.max_steps = max(1, min(max_steps, MAX_PLAN_STEPS))
        self.timeout_s = timeout_s
        self.offline = OfflinePlanner(self.max_steps)
        self.modes: tuple[JsonMode, ...] = JSON_MODES if json_mode == "auto" else (json_mode,)

    async def plan(self, user_input: str) -> Plan:
        if not user_input.strip():
            raise PlanError("the task is empty")
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self._plan_with_llm(user_input)
        except (PlanInvalid, StepError) as exc:
            reason = str(exc)
        except TimeoutError:
            reason = f"planning took longer than {self.timeout_s:g} s"
        except Exception as exc:  # anything odd from an endpoint must not fail POST /run-task
            log.exception("LLM planner failed unexpectedly", model=self.model)
            reason = f"{type(exc).__name__}: {exc}"
        log.warning("LLM plan unusable, using the offline planner", model=self.model, reason=reason)
        plan = await self.offline.plan(user_input)
        plan.planner = "offline-fallback"
        return plan

    async def _plan_with_llm(self, user_input: str) -> Plan:
        messages: list[Message] = [
            {"role": "system", "content": PLANNER_SYSTEM.format(max_steps=self.max_steps)},
            {"role": "user", "content": user_input.strip()},
        ]
        reply = await self._ask(messages)
        try:
            return self.validate(reply, "llm")
        except PlanInvalid as exc:
            log.info("LLM plan invalid, asking for a repair", model=self.model, error=str(exc))
            messages += [
                {"role": "assistant", "content": reply},
                {"role": "user", "content": REPAIR_PROMPT.format(error=exc)},
            ]
        return self.validate(await self._ask(messages), "llm-repaired")

    async def _ask(self, messages: list[Message]) -> str:
        """The model's answer, trying the JSON modes in order until the endpoint accepts one."""
        for i, mode in enumerate(self.modes):
            try:
                completion = await self.client.complete(
                    self.model,
                    messages,
                    response_format=response_format(mode),
                    max_tokens=PLAN_MAX_TOKENS,
                    timeout_s=self.timeout_s,
                )
            except LLMRequestRejected as exc:
                if exc.status not in (400, 422) or i == len(self.modes) - 1:
                    raise
                log.info("endpoint rejected a JSON mode; trying the next", mode=mode)
                continue
            self.modes = self.modes[i:]  # remember what this endpoint accepts
            usage = completion.usage
            log.info(
                "LLM planner answered",
                model=self.model,
                mode=mode,
                tokens_in=usage.tokens_in,
                tokens_out=usage.tokens_out,
            )
            return completion.text
        raise AssertionError("unreachable: the last mode re-raises")  # pragma: no cover

    def validate(self, reply: str, label: str) -> Plan:
        """The plan in the model's reply, or :class:`PlanInvalid` saying what is wrong."""
        data = parse_json_object(reply)
        if isinstance(data.get("plan"), dict) and "steps" not in data:
            data = data["plan"]  # a common wrapping
        try:
            plan = Plan.model_validate({**data, "planner": label})
        except ValidationError as exc:
            raise PlanInvalid(_errors(exc)) from None
        if len(plan.steps) > self.max_steps:
            raise PlanInvalid(f"{len(plan.steps)} steps; at most {self.max_steps} are allowed")
        return plan


def response_format(mode: JsonMode) -> dict[str, Any] | None:
    if mode == "json_schema":
        schema = {"name": "plan", "strict": True, "schema": PLAN_SCHEMA}
        return {"type": "json_schema", "json_schema": schema}
    if mode == "json_object":
        return {"type": "json_object"}
    return None


def parse_json_object(reply: str) -> dict[str, Any]:
    text = reply.strip()
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, re.S)
    if fenced:
        text = fenced.group(1).strip()
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        raise PlanInvalid("the reply contains no JSON object")
    try:
        data = json.loads(text[start : end + 1])
    except json.JSONDecodeError as exc:
        raise PlanInvalid(f"the reply is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PlanInvalid("the reply is not a JSON object")
    return data


def _errors(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "plan"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)
