"""`agentic bench --quick` runs end to end and reports every figure (no timing assertions:
these machines are shared and noisy; the numbers are for people, not for pass/fail)."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

from tests.integration.procs import ROOT

pytestmark = pytest.mark.integration


def test_bench_quick_reports_every_figure(redis_url: str) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "app.cli",
            "bench",
            "--quick",
            "--json",
            "--tasks",
            "60",
            "--streams",
            "60",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "AGENTIC_REDIS_URL": redis_url, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    ours = orjson.loads(done.stdout)["agentic"]
    assert ours["completed"] == ours["tasks"] == 60 and ours["failures"] == []
    for key in [
        "steps_per_s",
        "tasks_per_s",
        "latency_p50_ms",
        "latency_p99_ms",
        "idle_p50_ms",
        "idle_p99_ms",
        "redis_cpu_us_per_step",
        "redis_commands_per_step",
        "redis_ceiling_steps_per_s",
    ]:
        assert ours[key] > 0, key
    assert [p["workers"] for p in ours["scale_out"]] == [1, 2]
    assert all(p["steps_per_s"] > 0 and not p["failures"] for p in ours["scale_out"])
    fan = ours["fanout"]
    assert fan["opened"] == fan["streams"] == 60 and fan["stream_errors"] == 0
    assert fan["delivery_p99_ms"] >= 0 and fan["api_rss_kib_per_stream"] != 0
