"""`agentic loadtest` pieces that need no server: percentiles, the SSE reader, the report."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from app.loadtest import TaskResult, format_report, percentile, sse_events, summarize


@pytest.mark.parametrize(
    ("p", "expected"), [(50, 5.0), (90, 9.0), (99, 10.0), (100, 10.0), (1, 1.0)]
)
def test_nearest_rank_percentile(p: float, expected: float) -> None:
    assert percentile([float(v) for v in range(10, 0, -1)], p) == expected


def test_percentile_of_nothing_is_zero() -> None:
    assert percentile([], 99) == 0.0


async def lines(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def test_sse_reader_yields_whole_events_only() -> None:
    stream = lines(
        b": live\n",
        b"retry: 1000\n",
        b"\n",
        b"id: 1-0\n",
        b"event: plan_created\n",
        b'data: {"type": "plan_created"}\n',
        b"\n",
        b": ping - 2026\n",
        b"\n",
        b"id: 1-1\r\n",
        b'data: {"type": "task_completed",\r\n',
        b'data: "n": 1}\r\n',
        b"\r\n",
        b"id: 1-2\n",
        b'data: {"type": "cut"}\n',  # no blank line: never completed
    )
    events = [e async for e in sse_events(stream)]
    assert events == [
        ("1-0", {"type": "plan_created"}),
        ("1-1", {"type": "task_completed", "n": 1}),
    ]


def test_summary_counts_only_completed_tasks_in_throughput_and_latency() -> None:
    results = [
        TaskResult("a", "task_completed", 100.0, steps=4),
        TaskResult("b", "task_completed", 300.0, steps=4, reconnects=1),
        TaskResult("c", "task_failed", 50.0, steps=1, error="task_failed"),
        TaskResult(None, "error", 5.0, error="POST /run-task: 503"),
    ]
    report = summarize("http://x", 4, 2, 2.0, results)
    assert (report.completed, report.failed, report.reconnects) == (2, 2, 1)
    assert (report.tasks_per_s, report.steps_per_s) == (1.0, 4.0)
    assert report.latency_ms == {"p50": 100.0, "p90": 300.0, "p99": 300.0}
    assert [f["error"] for f in report.failures] == ["task_failed", "POST /run-task: 503"]
    text = format_report(report)
    assert "completed 2, failed 2" in text and "FAILED -: POST /run-task: 503" in text
    assert report.to_dict()["latency_ms"]["p99"] == 300.0
