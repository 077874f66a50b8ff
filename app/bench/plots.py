"""PNG plots of ``agentic bench`` figures: throughput against tasks in flight and against
worker processes, and the latency CDFs (idle and saturated), with Celery beside ours when
``--compare celery`` ran.

``agentic bench --plot DIR`` draws them after a run; ``python -m app.bench.plots FIGURES.json
DIR`` redraws them from a saved ``agentic bench --json`` output (``-`` reads stdin). Needs
matplotlib (``pip install -e '.[bench]'``); drawn on the Agg backend, no display, no pyplot.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogFormatter

OURS, CELERY = ("agentic", "tab:blue"), ("Celery", "tab:orange")  # (label, colour)
DPI = 120


def write_plots(figures: dict[str, Any], out_dir: Path) -> list[Path]:
    """Draw every plot the figures have data for into ``out_dir``; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    ours, celery = figures.get("agentic", {}), figures.get("celery")
    drawn = [
        ("throughput_vs_inflight.png", _throughput_vs_inflight),
        ("throughput_vs_workers.png", _throughput_vs_workers),
        ("latency_cdf.png", _latency_cdf),
    ]
    written = []
    for name, draw in drawn:
        fig = draw(ours, celery)
        if fig is None:
            continue
        path = out_dir / name
        fig.savefig(path, backend="agg")
        written.append(path)
    return written


def _figure(title: str, columns: int = 1) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(6.4 * columns if columns > 1 else 7, 4.6), dpi=DPI, layout="constrained")
    axes = [fig.add_subplot(1, columns, i + 1) for i in range(columns)]
    fig.suptitle(title)
    for ax in axes:
        ax.grid(True, alpha=0.3)
    return fig, axes


def _celery_line(ax: Axes, celery: dict[str, Any] | None, what: str) -> None:
    """Celery's saturated steps/s as a horizontal reference (it has no in-flight knob and ran
    one worker: every task submitted at once, prefork -c 2)."""
    if celery and isinstance(celery.get("steps_per_s"), int | float):
        ax.axhline(
            celery["steps_per_s"],
            color=CELERY[1],
            linestyle="--",
            label=f"Celery, {what} ({celery['steps_per_s']:,.0f} steps/s)",
        )


def _throughput_vs_inflight(ours: dict[str, Any], celery: dict[str, Any] | None) -> Figure | None:
    fig = _throughput_curve(
        ours.get("inflight") or [],
        "in_flight",
        "Saturated throughput against tasks in flight (one worker process)",
        "tasks in flight (each followed over SSE to its end)",
        celery,
        "all tasks submitted at once",
    )
    if fig is not None:  # 1, 4, 16, 64, 128: evenly spaced, labelled as counts
        (ax,) = fig.axes
        ax.set_xscale("log", base=2)
        ax.set_xticks([p["in_flight"] for p in ours["inflight"]])
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
        ax.minorticks_off()
    return fig


def _throughput_vs_workers(ours: dict[str, Any], celery: dict[str, Any] | None) -> Figure | None:
    return _throughput_curve(
        ours.get("scale_out") or [],
        "workers",
        "Saturated throughput against worker processes (scale-out)",
        "worker processes",
        celery,
        "1 worker, prefork -c 2",
    )


def _throughput_curve(
    curve: list[dict[str, Any]],
    x_key: str,
    title: str,
    x_label: str,
    celery: dict[str, Any] | None,
    celery_what: str,
) -> Figure | None:
    """Our steps/s at each point of ``curve`` (x from ``x_key``), Celery's as a reference line."""
    if not curve:
        return None
    fig, (ax,) = _figure(title)
    xs = [p[x_key] for p in curve]
    ax.plot(xs, [p["steps_per_s"] for p in curve], marker="o", label=OURS[0], color=OURS[1])
    _celery_line(ax, celery, celery_what)
    ax.set_xticks(xs)
    ax.set_xlabel(x_label)
    ax.set_ylabel("throughput (steps/s)")
    ax.set_ylim(bottom=0)
    ax.legend(loc="best")
    return fig


def _latency_cdf(ours: dict[str, Any], celery: dict[str, Any] | None) -> Figure | None:
    panels = [
        ("idle_latency_ms", "idle: one task at a time"),
        ("saturated_latency_ms", "saturated: the throughput burst"),
    ]
    systems = [(ours, OURS), *([(celery, CELERY)] if celery else [])]
    if not any(s.get("samples", {}).get(key) for s, _ in systems for key, _ in panels):
        return None
    fig, axes = _figure("End-to-end task latency (POST to task completed), CDF", columns=2)
    for ax, (key, title) in zip(axes, panels, strict=True):
        for figs, style in systems:
            values = sorted(figs.get("samples", {}).get(key) or [])
            if not values:
                continue
            ys = [(i + 1) / len(values) for i in range(len(values))]
            ax.step(values, ys, where="post", label=style[0], color=style[1])
        for q in (0.5, 0.99):
            ax.axhline(q, color="grey", linewidth=0.8, linestyle=":")
        ax.set_xscale("log")
        # plain ms (12, not 1.2×10¹); minor ticks labelled only when the range is narrow
        ax.xaxis.set_major_formatter(FuncFormatter(_ms))
        ax.xaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))
        ax.set_title(title)
        ax.set_xlabel("latency (ms, log scale)")
        ax.set_ylabel("fraction of tasks")
        ax.set_ylim(0, 1.01)
        if ax.has_data():
            ax.legend(loc="lower right")
    return fig


def _ms(x: float, _: object) -> str:
    return f"{x:,.0f}" if x >= 1 else f"{x:g}"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        sys.stderr.write("usage: python -m app.bench.plots FIGURES.json|- OUT_DIR\n")
        return 2
    source, out_dir = args
    raw = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    for path in write_plots(orjson.loads(raw), Path(out_dir)):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
