"""Rendering a :class:`~app.console.state.TaskView` with rich: the live plan tree, the event
lines for a terminal that is not one, the report and the metrics table."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Group, RenderableType
from rich.markdown import Markdown
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from app.console.state import StepView, TaskView, clean

STATE_STYLE = {
    "pending": ("·", "dim"),
    "queued": ("◌", "cyan"),
    "running": ("", "bold blue"),  # a spinner instead of an icon
    "retrying": ("↻", "yellow"),
    "completed": ("✔", "green"),
    "failed": ("✖", "bold red"),
    "cancelled": ("⊘", "dim"),
    "unknown": ("?", "dim"),
}
TASK_STYLE = {"running": "bold blue", "completed": "bold green", "failed": "bold red"}
TEXT_TAIL_LINES = 3
TEXT_LINE_CHARS = 110


def now_ms() -> int:
    return int(time.time() * 1000)


def fmt_ms(ms: float | None) -> str:
    if ms is None:
        return "–"
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.2f} s"
    return f"{int(ms // 60_000)} min {ms % 60_000 / 1000:.0f} s"


def fmt_cost(units: float | None) -> str:
    return "–" if units is None else f"{units:.3f}"


def _timing(step: StepView, now: int) -> str:
    if step.state == "running" and step.started_ms is not None:
        return f"running {fmt_ms(now - step.started_ms)}"
    if step.state == "queued" and step.queued_ms is not None:
        return f"waiting {fmt_ms(now - step.queued_ms)}"
    if step.state == "retrying":
        return f"retry in {fmt_ms(step.retry_delay_ms)}"
    if step.state == "completed":
        return f"run {fmt_ms(step.run_ms)} · {fmt_cost(step.cost_units)} cu"
    return ""


def step_label(step: StepView, now: int) -> RenderableType:
    icon, style = STATE_STYLE.get(step.state, STATE_STYLE["unknown"])
    line = Text()
    line.append(f"{step.id} ", style="bold")
    line.append(f"{step.agent} ", style="magenta")
    line.append(step.state, style=style)
    if step.attempt > 1:
        line.append(f" · attempt {step.attempt}", style="yellow")
    timing = _timing(step, now)
    if timing:
        line.append(f"  {timing}", style="dim")
    if step.depends_on and step.state == "pending":
        line.append(f"  after {', '.join(step.depends_on)}", style="dim")
    if step.state == "running":
        return Spinner("dots", text=line, style="blue")
    return Text.assemble((f"{icon} ", style), line)


def _tail(text: str) -> list[str]:
    lines = [ln for ln in text.splitlines() if ln.strip()][-TEXT_TAIL_LINES:]
    return [ln if len(ln) <= TEXT_LINE_CHARS else ln[: TEXT_LINE_CHARS - 1] + "…" for ln in lines]


def _note(step: StepView) -> Text | None:
    if step.error and step.state in ("failed", "retrying"):
        return Text(f"error: {step.error}", style="red")
    if step.summary and step.state == "completed":
        return Text(step.summary, style="dim green")
    return None


def header(view: TaskView, now: int) -> Text:
    elapsed = view.latency_ms
    if elapsed is None and view.created_ms is not None:
        elapsed = (view.finished_ms or now) - view.created_ms
    out = Text()
    out.append("task ", style="dim")
    out.append(view.task_id, style="bold")
    out.append("  ")
    out.append(view.state, style=TASK_STYLE.get(view.state, "dim"))
    out.append(f"  {view.done}/{len(view.steps)} steps done", style="dim")
    out.append(f" · {fmt_ms(elapsed)} · {fmt_cost(view.cost_units)} cost units", style="dim")
    if view.tokens_in or view.tokens_out:
        out.append(f" · tokens {view.tokens_in} in / {view.tokens_out} out", style="dim")
    return out


def render_live(view: TaskView, now: int | None = None) -> RenderableType:
    """The plan as a tree: each step with its state (a spinner while it runs), attempt, timing,
    and the last lines of its streamed text while it runs."""
    now = now_ms() if now is None else now
    planner = f" ({view.planner})" if view.planner else ""
    tree = Tree(Text(f"plan{planner}", style="bold"), guide_style="dim")
    for step in list(view.steps.values()):
        node = tree.add(step_label(step, now))
        note = _note(step)
        if note is not None:
            node.add(note)
        if step.state == "running" and step.text:
            for line in _tail(step.text):
                node.add(Text(line, style="italic dim"))
    if not view.steps:
        tree.add(Text("planning…", style="dim"))
    parts: list[RenderableType] = [header(view, now), tree]
    if view.error and view.state != "running":
        parts.append(Text(f"{view.state}: {view.error}", style="red"))
    return Group(*parts)


def event_line(data: dict[str, Any]) -> Text:
    """One line per event, for output that is not a terminal (CI logs, pipes)."""
    kind = clean(data.get("type"))
    out = Text(kind, style="cyan")
    if "step_id" in data:
        where = f" {data['step_id']} ({data.get('agent')}, attempt {data.get('attempt')})"
        out.append(clean(where))
    extra = data.get("error") or data.get("summary") or data.get("reason")
    if kind == "step_progress":
        extra = str(data.get("text") or "").strip()
    elif kind == "plan_created":
        extra = f"{len(data.get('plan', {}).get('steps', []))} steps ({data.get('planner')})"
    elif kind == "task_completed":
        extra = f"{fmt_ms(data.get('latency_ms'))}, {fmt_cost(data.get('cost_units'))} cost units"
    if extra:
        out.append(f" {clean(extra)}", style="red" if data.get("error") else "")
    return out


def report(markdown: str) -> Markdown:
    return Markdown(clean(markdown), hyperlinks=False)  # show where a link goes


def metrics_table(m: dict[str, Any]) -> Table:
    title = (
        f"task {m['task_id']} — {m['state']}, latency {fmt_ms(m.get('latency_ms'))}, "
        f"{fmt_cost(m.get('cost_units'))} cost units"
    )
    table = Table(title=title, title_justify="left", show_footer=True)
    table.add_column("step", footer="total")
    table.add_column("agent")
    table.add_column("state")
    table.add_column("attempts", justify="right", footer=str(m.get("attempts_total", "")))
    table.add_column("queue wait", justify="right", footer=fmt_ms(m.get("queue_wait_ms_total")))
    table.add_column("run", justify="right", footer=fmt_ms(m.get("run_ms_total")))
    table.add_column("cost units", justify="right", footer=fmt_cost(m.get("cost_units")))
    tokens = f"{m.get('tokens_in', 0)} / {m.get('tokens_out', 0)}"
    table.add_column("tokens in/out", justify="right", footer=tokens)
    for s in m.get("steps", []):
        _, style = STATE_STYLE.get(s["state"], STATE_STYLE["unknown"])
        table.add_row(
            s["step_id"],
            s["agent"],
            Text(s["state"], style=style),
            str(s["attempts"]),
            fmt_ms(s.get("queue_wait_ms")),
            fmt_ms(s.get("run_ms")),
            fmt_cost(s.get("cost_units")),
            f"{s.get('tokens_in', 0)} / {s.get('tokens_out', 0)}",
        )
    return table
