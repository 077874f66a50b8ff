"""A task as the terminal sees it, rebuilt from its event log (live or replayed).

The same rules as the web page's ``model.js``: the log is the only source, a redriven task that
goes on after a terminal event is running again, and steps still open when the task ends are
shown cancelled (the server's ``close_task`` does the same).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

TERMINAL_EVENTS = frozenset({"task_completed", "task_failed", "task_cancelled"})
FINISHED_STEP_STATES = frozenset({"completed", "failed", "cancelled"})
#: Characters of streamed text kept per step (the tail is what a live view shows anyway).
MAX_STEP_TEXT = 100_000
#: Control characters (but tab and newline) and bidi overrides: text from users, documents and
#: models must not move the cursor, retitle the terminal or reorder what is shown.
_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def clean(value: object) -> str:
    """Untrusted text made safe to print on a terminal."""
    return _UNSAFE.sub("", str(value))


def _opt(value: object) -> str | None:
    return None if value is None else clean(value)


@dataclass
class StepView:
    id: str
    agent: str
    instruction: str = ""
    depends_on: list[str] = field(default_factory=list)
    state: str = "pending"
    attempt: int = 1
    queued_ms: int | None = None
    started_ms: int | None = None
    finished_ms: int | None = None
    run_ms: int | None = None
    cost_units: float | None = None
    summary: str | None = None
    error: str | None = None
    retry_delay_ms: int | None = None
    text: str = ""


@dataclass
class TaskView:
    task_id: str
    user_input: str = ""
    planner: str = ""
    state: str = "running"
    steps: dict[str, StepView] = field(default_factory=dict)
    created_ms: int | None = None
    finished_ms: int | None = None
    latency_ms: int | None = None
    cost_units: float = 0.0
    tokens_in: int = 0
    tokens_out: int = 0
    output: str | None = None
    error: str | None = None
    events: int = 0
    last_ms: int | None = None

    @property
    def done(self) -> int:
        return sum(1 for s in self.steps.values() if s.state == "completed")

    def apply(self, d: dict[str, Any]) -> None:
        """Apply one event (an SSE frame's ``data``)."""
        self.events += 1
        self.last_ms = d.get("ts", self.last_ms)
        kind = d.get("type")
        if kind == "plan_created":
            self._plan(d)
        elif kind in TERMINAL_EVENTS:
            self._end(d)
        else:
            self._step(d)
        # plan_created and step_completed list the steps they queued (older logs have a
        # step_queued event for each instead): each item is that event, applied after this one.
        for item in d.get("queued") or ():
            self._step(
                {**item, "type": "step_queued", "task_id": d.get("task_id"), "ts": d.get("ts")}
            )

    def _step(self, d: dict[str, Any]) -> None:
        if self.state != "running":  # redriven after its terminal event
            self.state, self.finished_ms, self.error = "running", None, None
        step = self.steps.get(str(d.get("step_id")))
        if step is not None:
            _apply_step(step, d)
            if d["type"] == "step_completed":
                self.cost_units = round(self.cost_units + float(d.get("cost_units") or 0), 6)

    def _plan(self, d: dict[str, Any]) -> None:
        self.planner = str(d.get("planner") or "")
        self.created_ms = d.get("ts")
        # A new dict, assigned at once: a live view may be drawing the old one meanwhile.
        self.steps = {
            s["id"]: StepView(
                id=s["id"],
                agent=s.get("agent", ""),
                instruction=clean(s.get("instruction", "")),
                depends_on=list(s.get("depends_on") or []),
            )
            for s in d.get("plan", {}).get("steps", [])
        }

    def _end(self, d: dict[str, Any]) -> None:
        self.finished_ms = d.get("ts")
        self.latency_ms = d.get("latency_ms", self.latency_ms)
        if d["type"] == "task_completed":
            self.state, self.output, self.error = "completed", _opt(d.get("output")), None
            self.cost_units = float(d.get("cost_units", self.cost_units))
            self.tokens_in = int(d.get("tokens_in", self.tokens_in))
            self.tokens_out = int(d.get("tokens_out", self.tokens_out))
            return
        self.state = "failed" if d["type"] == "task_failed" else "cancelled"
        self.error = _opt(d.get("error") or d.get("reason"))
        for step in self.steps.values():
            if step.state not in FINISHED_STEP_STATES:
                step.state = "cancelled"

    @classmethod
    def from_task(cls, task: dict[str, Any]) -> TaskView:
        """From ``GET /tasks/{id}`` (a snapshot, without streamed text)."""
        view = cls(
            task_id=task["task_id"],
            user_input=clean(task.get("user_input", "")),
            planner=task.get("planner", ""),
            state=task["state"],
            created_ms=task.get("created_at_ms"),
            finished_ms=task.get("finished_at_ms"),
            output=_opt(task.get("output")),
            error=_opt(task.get("error")),
        )
        for s in task.get("steps", []):
            result = s.get("result") or {}
            view.steps[s["id"]] = StepView(
                id=s["id"],
                agent=s["agent"],
                instruction=clean(s.get("instruction", "")),
                depends_on=list(s.get("depends_on") or []),
                state=s["state"],
                attempt=s.get("attempt", 1),
                queued_ms=s.get("queued_at_ms"),
                started_ms=s.get("started_at_ms"),
                finished_ms=s.get("finished_at_ms"),
                error=_opt(s.get("error")),
                summary=_opt(result.get("summary")) if isinstance(result, dict) else None,
            )
        if view.created_ms is not None and view.finished_ms is not None:
            view.latency_ms = view.finished_ms - view.created_ms
        return view


def _apply_step(step: StepView, d: dict[str, Any]) -> None:
    kind = d["type"]
    attempt = int(d.get("attempt") or step.attempt)
    ts = d.get("ts")
    if kind == "step_queued":
        step.state, step.attempt, step.queued_ms = "queued", attempt, ts
    elif kind == "step_started":
        if attempt > 1 and step.text:
            step.text += f"\n— attempt {attempt} —\n"
        step.state, step.attempt, step.started_ms = "running", attempt, ts
    elif kind == "step_progress":
        if len(step.text) < MAX_STEP_TEXT:
            step.text += clean(d.get("text") or "")
    elif kind == "step_completed":
        step.state, step.finished_ms = "completed", ts
        step.run_ms, step.cost_units = d.get("run_ms"), d.get("cost_units")
        step.summary, step.error = _opt(d.get("summary")), None
    elif kind == "step_retrying":
        step.state, step.attempt = "retrying", attempt
        step.error, step.retry_delay_ms = _opt(d.get("error")), d.get("delay_ms")
    elif kind == "step_failed":
        step.state = "cancelled" if d.get("cancelled") else "failed"
        step.finished_ms, step.error = ts, _opt(d.get("error"))
