"""Scaling with real processes: the same backlog on one agent's stream drains about three times
faster with three worker processes than with one (each is bounded by its concurrency slots,
not by CPU), and nothing is done twice. Plus `agentic loadtest` against a real API + worker.

This is what KEDA relies on when it adds pods for consumer-group lag."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest
from redis.asyncio import Redis

from app.config import Settings
from app.keys import Keys
from app.models import Plan, PlanStep
from app.orchestration.store import TaskStore
from tests.integration.procs import ROOT, Proc, env_for, start_api, start_worker

pytestmark = pytest.mark.integration

AGENT = "retriever"
BACKLOG = 120  # tasks of one step each: one stream entry per task
DELAY_MS = 50
CONCURRENCY = 2  # slots per worker process: 2 / 50 ms ≈ 40 steps/s at most


async def wait_consumers(redis: Redis, keys: Keys, n: int, timeout_s: float = 30) -> None:
    """Until n consumers are registered in the agent's group (each has called XREADGROUP)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            consumers = await redis.xinfo_consumers(
                keys.agent_stream(AGENT), keys.agent_group(AGENT)
            )
            if len(consumers) >= n:
                return
        except Exception:
            pass  # the group does not exist yet
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{n} consumers never registered")


async def drain_backlog(redis: Redis, store: TaskStore) -> tuple[float, list[str]]:
    """Submit BACKLOG one-step tasks, wait until all completed; steps per second."""
    plan = Plan(steps=[PlanStep(id="fetch", agent=AGENT, instruction="noop")])
    start = time.perf_counter()
    task_ids = [await store.submit("scale me", plan) for _ in range(BACKLOG)]  # ~1 ms each
    pending = list(task_ids)
    while pending:
        async with redis.pipeline(transaction=False) as pipe:
            for task_id in pending:
                pipe.hget(store.keys.task(task_id), "state")
            states = await pipe.execute()
        assert "failed" not in states and "cancelled" not in states
        pending = [t for t, s in zip(pending, states, strict=True) if s != "completed"]
        if pending:
            assert time.perf_counter() - start < 30, f"{len(pending)} tasks still running"
            await asyncio.sleep(0.01)
    return BACKLOG / (time.perf_counter() - start), list(task_ids)


async def assert_each_step_done_once(redis: Redis, keys: Keys, task_ids: list[str]) -> None:
    for task_id in task_ids:
        events = [orjson.loads(f["data"]) for _, f in await redis.xrange(keys.events(task_id))]
        per_type = Counter((e["type"], e.get("step_id")) for e in events)
        assert per_type[("step_completed", "fetch")] == 1, events
        assert per_type[("step_started", "fetch")] == 1, "a step ran twice"
        assert per_type[("task_completed", None)] == 1


async def test_three_workers_drain_a_backlog_three_times_faster(
    settings: Settings, redis: Redis, tmp_path: Path
) -> None:
    keys = Keys(settings.prefix)
    store = TaskStore(redis, keys, ttl_s=settings.task_ttl_s)
    extra = {
        "noop_delay_ms": DELAY_MS,
        "worker_concurrency": CONCURRENCY,
        "read_count": CONCURRENCY,
    }
    workers: list[Proc] = [start_worker(settings, tmp_path, AGENT, **extra)]
    try:
        await wait_consumers(redis, keys, 1)
        one_rate, first = await drain_backlog(redis, store)
        workers += [start_worker(settings, tmp_path, AGENT, **extra) for _ in range(2)]
        await wait_consumers(redis, keys, 3)
        three_rate, second = await drain_backlog(redis, store)
    finally:
        for w in workers:
            w.terminate()
    print(
        f"\nsteps/s with 1 worker: {one_rate:.1f}, with 3: {three_rate:.1f} "
        f"({three_rate / one_rate:.2f}x)"
    )
    assert one_rate < 1.2 * CONCURRENCY * 1000 / DELAY_MS  # bounded by its slots, as designed
    assert three_rate > 1.8 * one_rate
    await assert_each_step_done_once(redis, keys, first + second)


def test_loadtest_command_against_a_real_api_and_worker(settings: Settings, tmp_path: Path) -> None:
    api = start_api(settings, tmp_path)
    worker = start_worker(settings, tmp_path, noop_delay_ms=10)
    try:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "app.cli",
                "loadtest",
                "--url",
                api.url,
                "--tasks",
                "12",
                "--concurrency",
                "4",
                "--timeout",
                "30",
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=90,
            env=env_for(settings),
            cwd=ROOT,
            check=False,
        )
    finally:
        worker.terminate()
        api.terminate()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    print(f"\nloadtest: {report}")
    assert (report["tasks"], report["completed"], report["failed"]) == (12, 12, 0)
    assert report["failures"] == []
    lat = report["latency_ms"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"]
    assert report["tasks_per_s"] > 0 and report["steps_per_s"] >= report["tasks_per_s"]


def test_loadtest_reports_failures_and_exits_nonzero(settings: Settings, tmp_path: Path) -> None:
    api = start_api(settings, tmp_path, max_input_chars=5)  # every POST gets 422
    try:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "app.cli",
                "loadtest",
                "--url",
                api.url,
                "--tasks",
                "3",
                "--concurrency",
                "3",
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env=env_for(settings),
            cwd=ROOT,
            check=False,
        )
    finally:
        api.terminate()
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert report["failed"] == 3 and all("422" in f["error"] for f in report["failures"])
