"""Print bench figures as a table (and ratios to Celery when it ran), or as JSON."""

from __future__ import annotations

import math
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

ROWS = [
    ("steps_per_s", "saturated throughput (steps/s)", "higher"),
    ("tasks_per_s", "saturated throughput (tasks/s)", "higher"),
    ("latency_p50_ms", "saturated latency p50 (ms)", "lower"),
    ("latency_p99_ms", "saturated latency p99 (ms)", "lower"),
    ("idle_p50_ms", "idle latency p50 (ms)", "lower"),
    ("idle_p99_ms", "idle latency p99 (ms)", "lower"),
    ("redis_cpu_us_per_step", "Redis CPU per step (µs)", "lower"),
    ("redis_commands_per_step", "Redis commands per step", "lower"),
    ("redis_ceiling_steps_per_s", "single-Redis ceiling (steps/s)", "higher"),
]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:,.1f}"
    return str(value)


def print_report(figures: dict[str, dict[str, Any]], console: Console | None = None) -> None:
    console = console or Console()
    ours, celery = figures.get("agentic", {}), figures.get("celery")
    title = "agentic bench — 4-step DAG, no-op agents, through the HTTP API"
    rounds = len(ours.get("rounds", []))
    if rounds > 1:
        turns = ", the systems taking turns" if celery else ""
        title += f"\n(each figure the median of {rounds} rounds{turns}"
        title += "; each ratio the median of the rounds' ratios)" if celery else ")"
    table = Table(title=title)
    table.add_column("figure")
    table.add_column("agentic", justify="right")
    if celery:
        table.add_column("celery", justify="right")
        table.add_column("ratio", justify="right")
    for key, label, better in ROWS:
        if key not in ours:
            continue
        row = [label, _fmt(ours[key])]
        if celery:
            theirs = celery.get(key)
            row.append(_fmt(theirs) if theirs is not None else "-")
            # The median of the rounds' own ratios when the systems took turns (paired_ratios),
            # else the ratio of the two figures.
            paired = ours.get("vs_celery", {}).get(key)
            row.append(_ratio(ours[key], theirs, better, paired))
        table.add_row(*row)
    console.print(table)
    _print_inflight(console, ours.get("inflight", []))
    _print_scale(console, ours.get("scale_out", []))
    _print_fanout(console, ours.get("fanout"))
    failures = ours.get("failures", []) + ours.get("idle_failures", [])
    failures += [f for point in ours.get("inflight", []) for f in point["failures"]]
    done = f"{ours.get('completed')}/{ours.get('tasks')}"
    console.print(f"completed {done} tasks; failures: {failures or 'none'}")
    if "server" in ours:
        where = ""
        if celery:
            where = (
                " (both systems ran on it)"
                if ours.get("shared_server")
                else " (each system on one of its own)"
            )
        console.print(f"server: {ours['server']}{where}")


def _ratio(ours: Any, theirs: Any, better: str, paired: float | None = None) -> str:
    if paired is not None:
        ratio = paired
        if math.isnan(ratio):
            return "-"
    elif not isinstance(ours, int | float) or not isinstance(theirs, int | float) or not theirs:
        return "-"
    else:
        ratio = ours / theirs
    return f"{ratio:.2f}x ({'better' if (ratio > 1) == (better == 'higher') else 'worse'})"


def to_json(figures: dict[str, dict[str, Any]]) -> str:
    """Indented JSON, except that each list of ``samples`` stays on one line (thousands of
    numbers, one a line, would bury the figures)."""
    placeholders: dict[str, str] = {}
    shown: dict[str, dict[str, Any]] = {}
    for system, figs in figures.items():
        samples = figs.get("samples")
        if not isinstance(samples, dict):
            shown[system] = figs
            continue
        compact = {}
        for name, values in samples.items():
            mark = f"@samples/{system}/{name}@"
            placeholders[orjson.dumps(mark).decode()] = orjson.dumps(values).decode()
            compact[name] = mark
        shown[system] = {**figs, "samples": compact}
    text = orjson.dumps(shown, option=orjson.OPT_INDENT_2).decode()
    for mark, values in placeholders.items():
        text = text.replace(mark, values, 1)
    return text


def _print_inflight(console: Console, curve: list[dict[str, Any]]) -> None:
    if not curve:
        return
    table = Table(title="saturated throughput by tasks in flight (one worker)")
    for col in ("in flight", "tasks", "steps/s", "latency p50 (ms)", "latency p99 (ms)"):
        table.add_column(col, justify="right")
    for point in curve:
        table.add_row(
            str(point["in_flight"]),
            f"{point['completed']}/{point['tasks']}",
            _fmt(point["steps_per_s"]),
            _fmt(point["latency_p50_ms"]),
            _fmt(point["latency_p99_ms"]),
        )
    console.print(table)


def _print_scale(console: Console, curve: list[dict[str, Any]]) -> None:
    if not curve:
        return
    table = Table(title="scale-out: worker processes")
    for col in ("workers", "steps/s", "Redis CPU/step (µs)"):
        table.add_column(col, justify="right")
    for point in curve:
        table.add_row(
            str(point["workers"]), _fmt(point["steps_per_s"]), _fmt(point["redis_cpu_us_per_step"])
        )
    console.print(table)


def _print_fanout(console: Console, fan: dict[str, Any] | None) -> None:
    if not fan:
        return
    table = Table(title="SSE fan-out on one API process")
    for col in (
        "streams",
        "opened",
        "errors",
        "delivery p50 (ms)",
        "delivery p99 (ms)",
        "RSS/stream (KiB)",
    ):
        table.add_column(col, justify="right")
    table.add_row(
        str(fan["streams"]),
        str(fan["opened"]),
        str(fan["stream_errors"]),
        _fmt(fan["delivery_p50_ms"]),
        _fmt(fan["delivery_p99_ms"]),
        _fmt(fan["api_rss_kib_per_stream"]),
    )
    console.print(table)
