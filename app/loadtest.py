"""``agentic loadtest``: submit tasks over HTTP, follow each over SSE to its terminal event.

A client of the public API only, as a user's would be (the k8s load-test Job runs it against
the Service). Each task is timed from the POST to its terminal event; a stream that ends
without one (a draining API pod, a cut connection) is resumed from ``Last-Event-ID``, so a
rolling update under load shows up as reconnects, not failures.

aiohttp rather than httpx: with hundreds of open streams the client must not be the bottleneck,
and aiohttp reads SSE lines several times faster here (optional extra ``agentic[loadtest]``).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import asdict, dataclass, field
from typing import Any

import aiohttp
import orjson

DEFAULT_INPUT = "Compare Redis Streams and Kafka for job queues and write a short recommendation"
TERMINAL = frozenset({"task_completed", "task_failed", "task_cancelled"})
RECONNECT_DELAY_S = 0.2
PERCENTILES = (50, 90, 99)


@dataclass
class TaskResult:
    task_id: str | None
    outcome: str  # task_completed | task_failed | task_cancelled | error
    latency_ms: float
    steps: int = 0
    reconnects: int = 0
    error: str | None = None


@dataclass
class LoadReport:
    url: str
    tasks: int
    concurrency: int
    wall_s: float
    completed: int
    failed: int
    tasks_per_s: float
    steps_per_s: float
    latency_ms: dict[str, float]
    reconnects: int
    failures: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (0 for no values): the smallest value with p% at or below it."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


async def sse_events(
    lines: AsyncIterable[bytes],
) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """(id, data) of each complete SSE event; comments and partial frames are skipped."""
    event_id = ""
    data: list[str] = []
    async for raw in lines:
        line = raw.decode().rstrip("\r\n")
        if not line:
            if data:
                yield event_id, orjson.loads("\n".join(data))
            event_id, data = "", []
        elif line.startswith("id:"):
            event_id = line[3:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())


async def _follow(session: aiohttp.ClientSession, task_id: str, result: TaskResult) -> str:
    """Read the task's events to the terminal one, resuming after cuts; returns its type."""
    last_id = "0-0"
    while True:
        try:
            async with session.get(
                f"/stream/{task_id}", headers={"Last-Event-ID": last_id}
            ) as resp:
                if resp.status == 204:  # finished and nothing after last_id: ask the task
                    async with session.get(f"/tasks/{task_id}") as task:
                        return f"task_{(await task.json())['state']}"
                if resp.status < 500:  # 5xx: a proxy in front of a restarting pod; retry
                    resp.raise_for_status()
                    async for event_id, data in sse_events(resp.content):
                        last_id = event_id or last_id
                        if data.get("type") == "step_completed":
                            result.steps += 1
                        if data.get("type") in TERMINAL:
                            return str(data["type"])
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError):
            pass  # a cut stream or a pod going away: resume from last_id on the next one
        result.reconnects += 1
        await asyncio.sleep(RECONNECT_DELAY_S)


async def _one_task(
    session: aiohttp.ClientSession, user_input: str, timeout_s: float
) -> TaskResult:
    start = time.perf_counter()
    result = TaskResult(task_id=None, outcome="error", latency_ms=0.0)
    try:
        async with asyncio.timeout(timeout_s):
            async with session.post("/run-task", json={"user_input": user_input}) as resp:
                body = await resp.read()
                if resp.status != 202:
                    text = body[:200].decode(errors="replace")
                    result.error = f"POST /run-task: {resp.status} {text}"
                    return result
                task_id = str(orjson.loads(body)["task_id"])
            result.task_id = task_id
            result.outcome = await _follow(session, task_id, result)
            if result.outcome != "task_completed":
                result.error = result.outcome
    except TimeoutError:
        result.error = f"no terminal event within {timeout_s:g} s"
    except (aiohttp.ClientError, OSError, ValueError, KeyError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        result.latency_ms = (time.perf_counter() - start) * 1000
    return result


async def run_loadtest(
    url: str,
    tasks: int,
    concurrency: int,
    user_input: str = DEFAULT_INPUT,
    timeout_s: float = 120.0,
) -> LoadReport:
    """Run ``tasks`` tasks with at most ``concurrency`` in flight; bounded in count and time."""
    limit = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency * 2)
    timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_read=timeout_s)

    async def bounded(session: aiohttp.ClientSession) -> TaskResult:
        async with limit:
            return await _one_task(session, user_input, timeout_s)

    start = time.perf_counter()
    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as session:
        results = await asyncio.gather(*(bounded(session) for _ in range(tasks)))
    wall_s = time.perf_counter() - start
    return summarize(url, tasks, concurrency, wall_s, list(results))


def summarize(
    url: str, tasks: int, concurrency: int, wall_s: float, results: list[TaskResult]
) -> LoadReport:
    ok = [r for r in results if r.outcome == "task_completed"]
    latencies = [r.latency_ms for r in ok]
    return LoadReport(
        url=url,
        tasks=tasks,
        concurrency=concurrency,
        wall_s=round(wall_s, 3),
        completed=len(ok),
        failed=len(results) - len(ok),
        tasks_per_s=round(len(ok) / wall_s, 2) if wall_s > 0 else 0.0,
        steps_per_s=round(sum(r.steps for r in ok) / wall_s, 2) if wall_s > 0 else 0.0,
        latency_ms={f"p{p}": round(percentile(latencies, p), 1) for p in PERCENTILES},
        reconnects=sum(r.reconnects for r in results),
        failures=[
            {"task_id": r.task_id, "outcome": r.outcome, "error": r.error}
            for r in results
            if r.outcome != "task_completed"
        ],
    )


def format_report(report: LoadReport) -> str:
    lat = report.latency_ms
    lines = [
        f"{report.tasks} tasks against {report.url}, concurrency {report.concurrency}, "
        f"{report.wall_s:.2f} s",
        f"completed {report.completed}, failed {report.failed}, reconnects {report.reconnects}",
        f"throughput {report.tasks_per_s:.2f} tasks/s, {report.steps_per_s:.2f} steps/s",
        "latency POST -> terminal event: " + ", ".join(f"{k} {v:.1f} ms" for k, v in lat.items()),
    ]
    lines += [f"  FAILED {f['task_id'] or '-'}: {f['error']}" for f in report.failures[:20]]
    if len(report.failures) > 20:
        lines.append(f"  ... and {len(report.failures) - 20} more")
    return "\n".join(lines)
