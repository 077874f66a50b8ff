"""app.bench.plots draws its PNGs from a figures dict (and from a saved ``--json`` output), with
and without Celery beside ours; app.bench.report.to_json keeps the samples on one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from app.bench.plots import write_plots
from app.bench.report import to_json

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NAMES = ["throughput_vs_inflight.png", "throughput_vs_workers.png", "latency_cdf.png"]
ROOT = Path(__file__).resolve().parents[2]


def ours() -> dict[str, Any]:
    return {
        "tasks": 100,
        "completed": 100,
        "failures": [],
        "steps_per_s": 2900.0,
        "latency_p50_ms": 80.0,
        "inflight": [
            {"in_flight": c, "tasks": 100, "completed": 100, "steps_per_s": s, "failures": []}
            for c, s in [(1, 700.0), (4, 1900.0), (16, 2700.0), (64, 2950.0), (128, 2900.0)]
        ],
        "scale_out": [
            {"workers": w, "steps_per_s": s, "redis_cpu_us_per_step": 100.0, "failures": []}
            for w, s in [(1, 2700.0), (2, 2650.0), (4, 2500.0)]
        ],
        "samples": {
            "idle_latency_ms": [4.0 + i / 10 for i in range(30)],
            "saturated_latency_ms": [40.0 + i for i in range(100)],
        },
    }


def celery() -> dict[str, Any]:
    return {
        "tasks": 100,
        "completed": 100,
        "steps_per_s": 900.0,
        "samples": {
            "idle_latency_ms": [5.0 + i / 5 for i in range(30)],
            "saturated_latency_ms": [1000.0 + 30 * i for i in range(100)],
        },
    }


def assert_pngs(paths: list[Path], out: Path) -> None:
    assert sorted(p.name for p in paths) == sorted(NAMES)
    for name in NAMES:
        assert (out / name).read_bytes()[:8] == PNG_MAGIC, name


@pytest.mark.parametrize("with_celery", [False, True], ids=["ours", "ours+celery"])
def test_write_plots_draws_three_pngs(tmp_path: Path, with_celery: bool) -> None:
    figures = {"agentic": ours(), **({"celery": celery()} if with_celery else {})}
    out = tmp_path / "plots"  # created by write_plots
    assert_pngs(write_plots(figures, out), out)


def test_write_plots_skips_a_plot_without_data(tmp_path: Path) -> None:
    figures = {"agentic": {k: v for k, v in ours().items() if k != "inflight"}}
    names = [p.name for p in write_plots(figures, tmp_path)]
    assert names == ["throughput_vs_workers.png", "latency_cdf.png"]


def test_to_json_keeps_samples_on_one_line_and_round_trips() -> None:
    figures = {"agentic": ours(), "celery": celery()}
    text = to_json(figures)
    assert orjson.loads(text) == figures
    lines = text.splitlines()
    assert sum("_latency_ms" in line for line in lines) == 4
    assert len(lines) < 100  # 260 samples, yet the figures stay readable


def test_plots_module_redraws_a_saved_json(tmp_path: Path) -> None:
    saved = tmp_path / "figures.json"
    saved.write_text(to_json({"agentic": ours(), "celery": celery()}))
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "app.bench.plots", str(saved), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert_pngs([Path(line) for line in done.stdout.splitlines()], out)
