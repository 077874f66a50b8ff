"""`agentic bench --quick` runs end to end, reports every figure and draws its plots (no timing
assertions: these machines are shared and noisy; the numbers are for people, not for
pass/fail)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from app.bench import instructions
from tests.conftest import missing_tool
from tests.integration.procs import ROOT

pytestmark = pytest.mark.integration


def bench(redis_url: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    """``agentic bench --quick --json ARGS`` against the test server (None: on embedded
    servers of its own, as a user runs it); it must succeed."""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    if redis_url is not None:
        env["AGENTIC_REDIS_URL"] = redis_url
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "bench", "--quick", "--json", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def test_bench_quick_reports_every_figure(redis_url: str, tmp_path: Path) -> None:
    done = bench(redis_url, "--tasks", "60", "--streams", "60", "--plot", str(tmp_path))
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
    assert len(ours["samples"]["saturated_latency_ms"]) == 60
    assert len(ours["samples"]["idle_latency_ms"]) == 30
    assert all(ms > 0 for series in ours["samples"].values() for ms in series)
    assert [p["in_flight"] for p in ours["inflight"]] == [1, 8]
    for point in ours["inflight"]:
        assert point["completed"] == point["tasks"] > 0 and not point["failures"], point
        assert point["steps_per_s"] > 0 and point["latency_p99_ms"] > 0, point
    assert [p["workers"] for p in ours["scale_out"]] == [1, 2]
    assert all(p["steps_per_s"] > 0 and not p["failures"] for p in ours["scale_out"])
    fan = ours["fanout"]
    assert fan["opened"] == fan["streams"] == 60 and fan["stream_errors"] == 0
    assert fan["delivery_p99_ms"] >= 0 and fan["api_rss_kib_per_stream"] != 0
    assert ours["server"].startswith(("Valkey ", "Redis ")), ours["server"]  # what it ran on
    plots = sorted(tmp_path.glob("*.png"))
    assert [p.name for p in plots] == [
        "latency_cdf.png",
        "throughput_vs_inflight.png",
        "throughput_vs_workers.png",
    ]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in plots)
    assert all(f"plot: {p}" in done.stderr for p in plots)


def test_bench_compare_celery_runs_both_sides_and_exits_cleanly() -> None:
    """As a user runs it: no server given, so each system gets an embedded one of its own."""
    done = bench(None, "--compare", "celery", "--tasks", "40", "--streams", "20", "--rounds", "2")
    figures = orjson.loads(done.stdout)
    assert figures["agentic"]["shared_server"] is False
    # Each ratio is taken round by round (the systems took turns), then the median.
    vs = figures["agentic"]["vs_celery"]
    assert vs["steps_per_s"] > 0 and vs["redis_cpu_us_per_step"] > 0 and vs["idle_p50_ms"] > 0
    for system in ("agentic", "celery"):
        side = figures[system]
        # Two rounds each (taking turns), every task of both completed.
        assert side["completed"] == side["tasks"] == 80, system
        assert len(side["rounds"]) == 2 and len(side["samples"]["saturated_latency_ms"]) == 80
        for key in ("steps_per_s", "idle_p50_ms", "redis_cpu_us_per_step"):
            assert side[key] > 0, (system, key)
    assert figures["celery"]["redis_commands_per_step"] > 0
    # Celery's results are released while the server runs, not at exit under the report.
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr


def test_script_cost_reports_every_phase(redis_url: str) -> None:
    """``python -m app.bench.script_cost`` (the scripts' server time per phase, for comparing
    versions of a script) runs the DAG to the end and reports each phase."""
    done = subprocess.run(
        [sys.executable, "-m", "app.bench.script_cost", "--tasks", "24", "--redis-url", redis_url],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {line.split()[0]: line.split()[1:] for line in done.stdout.splitlines()[1:]}
    assert list(rows) == ["submit", "retriever", "analyzer", "writer", "total"]
    for name, (script_us, commands, cpu_us) in rows.items():
        assert float(script_us) > 0 and float(commands) > 0 and float(cpu_us) >= 0, name


def test_script_cost_counts_the_servers_instructions() -> None:
    """``--instructions``: the server runs under callgrind and each phase's instruction count
    per task is reported (a warm-up run first, so the library is loaded and its caches full)."""
    if why := instructions.missing():
        missing_tool(why)
    done = subprocess.run(
        [sys.executable, "-m", "app.bench.script_cost", "--instructions", "--tasks", "16"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)},  # where valgrind was found
    )
    assert done.returncode == 0, done.stderr[-2000:]
    header, *lines = done.stdout.splitlines()
    assert "instructions" in header
    rows = {line.split()[0]: line.split()[1:] for line in lines}
    assert list(rows) == ["submit", "retriever", "analyzer", "writer", "total"]
    counts = {name: int(row[3].replace(",", "")) for name, row in rows.items()}
    # Tens of thousands of instructions per task in each phase, and the total is their sum.
    assert all(n > 10_000 for n in counts.values()), counts
    assert counts["total"] == pytest.approx(sum(counts[p] for p in list(rows)[:4]), abs=4)


def test_a_celery_worker_slow_to_stop_is_killed_with_its_pool(tmp_path: Path) -> None:
    """Its warm shutdown once outlasted the harness's wait and the run's figures were lost;
    the prefork pool's children must not outlive it either."""
    from app.bench.stack import stop

    child = tmp_path / "child.pid"
    parent = subprocess.Popen(
        ["sh", "-c", f"sleep 60 & echo $! > {child}; trap '' TERM; wait"],
        start_new_session=True,
    )
    while not child.exists() or not child.read_text().strip():
        assert parent.poll() is None
    stop(parent, grace_s=0.5, group=True)  # TERM ignored by the parent: killed after the grace
    assert parent.returncode is not None
    status = Path(f"/proc/{int(child.read_text())}/status")
    gone = not status.exists() or "\nState:\tZ" in status.read_text()
    assert gone, "the pool's child outlived the worker"
