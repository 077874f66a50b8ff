"""Through real HTTP: the API under uvicorn and a worker process, as a user runs them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from tests.integration.procs import Proc, sse_frames, start_api, start_worker, wait_terminal

pytestmark = pytest.mark.integration
TASK = "Compare Redis Streams and Kafka for job queues and write a short recommendation"


@pytest.fixture
def offline(settings: Settings) -> Settings:
    return settings.model_copy(update={"executor": "agents"})


@pytest.fixture
def api(offline: Settings, tmp_path: Path) -> Iterator[Proc]:
    proc = start_api(offline, tmp_path)
    yield proc
    proc.terminate()


@pytest.fixture
def worker(offline: Settings, tmp_path: Path) -> Iterator[Proc]:
    proc = start_worker(offline, tmp_path)
    yield proc
    proc.terminate()


def test_full_run_over_http_and_sse(api: Proc, worker: Proc) -> None:
    r = httpx.post(f"{api.url}/run-task", json={"user_input": TASK})
    assert r.status_code == 202, r.text
    body = r.json()
    assert r.headers["location"] == f"/tasks/{body['task_id']}"
    steps = body["steps_created"]
    assert [s["agent"] for s in steps] == ["retriever", "retriever", "analyzer", "writer"]
    frames = list(sse_frames(f"{api.url}{body['stream_url']}"))
    types = [event for _, event, _ in frames]
    assert types[0] == "plan_created" and types[-1] == "task_completed"
    for _id, event, data in frames:
        assert data["type"] == event and data["task_id"] == body["task_id"] and data["ts"] > 0
    for step in steps:  # invariant 5: each step queued, started, completed, in that order
        mine = []  # queued by the event that readied it (plan_created or a step_completed)
        for _, e, d in frames:
            if any(q["step_id"] == step["id"] for q in d.get("queued", [])):
                mine.append("queued")
            if d.get("step_id") == step["id"] and e != "step_progress":
                mine.append(e)
        assert mine == ["queued", "step_started", "step_completed"]
    report = frames[-1][2]["output"]
    assert report.startswith("# ") and "## Sources" in report and "[1]" in report
    task = httpx.get(f"{api.url}/tasks/{body['task_id']}").json()
    assert task["state"] == "completed" and task["output"] == report
    metrics = httpx.get(f"{api.url}/metrics/{body['task_id']}").json()
    assert metrics["latency_ms"] >= 0 and metrics["cost_units"] > 0
    assert all(s["attempts"] == 1 and s["run_ms"] is not None for s in metrics["steps"])
    prom = httpx.get(f"{api.url}/metrics").text
    assert "agentic_sse_open_streams" in prom
    # Answered by app.api.fast_submit, below the instrumentator: counted as the route's.
    assert 'http_requests_total{handler="/run-task",method="POST",status="2xx"} 1.0' in prom


def test_worker_logs_are_json_with_step_context(api: Proc, worker: Proc) -> None:
    import orjson

    task_id = httpx.post(f"{api.url}/run-task", json={"user_input": TASK}).json()["task_id"]
    wait_terminal(api.url, task_id)
    lines = [orjson.loads(line) for line in worker.log().splitlines() if line.startswith("{")]
    done = [e for e in lines if e.get("event") == "step completed" and e.get("task_id") == task_id]
    assert len(done) == 4
    assert all(
        {"step_id", "agent", "status", "attempt", "timestamp", "level"} <= set(e) for e in done
    )


def test_sse_read_in_three_pieces_equals_one_read(
    api: Proc, settings: Settings, tmp_path: Path
) -> None:
    slow = start_worker(settings, tmp_path, noop_delay_ms=150)
    try:
        task_id = httpx.post(f"{api.url}/run-task", json={"user_input": TASK}).json()["task_id"]
        url = f"{api.url}/stream/{task_id}"
        pieces: list[tuple[str, str, dict]] = []  # type: ignore[type-arg]
        pieces += list(sse_frames(url, limit=3))
        pieces += list(sse_frames(url, headers={"Last-Event-ID": pieces[-1][0]}, limit=4))
        pieces += list(sse_frames(url, headers={"Last-Event-ID": pieces[-1][0]}))
        assert pieces[-1][1] == "task_completed"
        whole = list(sse_frames(url))
        assert pieces == whole
        assert len({i for i, _, _ in whole}) == len(whole)
        # After the terminal event there is nothing more: 204 tells EventSource to stop.
        r = httpx.get(url, headers={"Last-Event-ID": whole[-1][0]})
        assert r.status_code == 204
    finally:
        slow.terminate()


def test_sse_frames_are_exact_bytes(api: Proc, worker: Proc) -> None:
    task_id = httpx.post(f"{api.url}/run-task", json={"user_input": TASK}).json()["task_id"]
    url = f"{api.url}/stream/{task_id}"
    # Opened right after the POST on the pod that accepted the task: a live stream (its
    # catch-up comes from memory, so it cannot know whether the task has finished).
    live = httpx.get(url).content.decode()
    assert live.startswith(": live\nretry: 1000\n\n")
    _hint, first, rest = live.split("\n\n", 2)
    lines = first.split("\n")
    assert lines[0].startswith("id: ") and lines[1] == "event: plan_created"
    assert lines[2].startswith('data: {"') and len(lines) == 3
    # The stream ended with the task: from its first event, a replay of the same frames.
    replay = httpx.get(url, headers={"Last-Event-ID": lines[0][len("id: ") :]}).content.decode()
    assert replay == ": replay\nretry: 1000\n\n" + rest


def test_cancel_over_http(api: Proc, settings: Settings, tmp_path: Path) -> None:
    slow = start_worker(settings, tmp_path, noop_delay_ms=2000)
    try:
        task_id = httpx.post(f"{api.url}/run-task", json={"user_input": TASK}).json()["task_id"]
        r = httpx.post(f"{api.url}/tasks/{task_id}/cancel")
        assert r.status_code == 202 and r.json()["state"] == "cancelled"
        frames = list(sse_frames(f"{api.url}/stream/{task_id}"))
        assert frames[-1][1] == "task_cancelled"
        again = httpx.post(f"{api.url}/tasks/{task_id}/cancel")
        assert again.status_code == 409 and again.json()["error"]["code"] == "task_finished"
    finally:
        slow.terminate()


BAD_BODIES = [
    ({}, 422, "user_input"),
    ({"user_input": ""}, 422, "user_input"),
    ({"user_input": "   "}, 422, "user_input"),
    ({"user_input": 42}, 422, "user_input"),
    ({"user_input": ["a"]}, 422, "user_input"),
    ({"user_input": "x" * 9000}, 422, "user_input"),
    ({"user_input": "ok", "extra": 1}, 422, "extra"),
    ([], 422, ""),
]


@pytest.mark.parametrize(("body", "status", "mentions"), BAD_BODIES)
def test_bad_input_gets_clear_json_4xx(api: Proc, body: object, status: int, mentions: str) -> None:
    r = httpx.post(f"{api.url}/run-task", json=body)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] and mentions in error["message"]


def test_malformed_and_oversized_bodies(api: Proc) -> None:
    r = httpx.post(
        f"{api.url}/run-task", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_input"
    r = httpx.post(
        f"{api.url}/run-task", content=b"x" * 200_000, headers={"content-type": "application/json"}
    )
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"

    def chunks() -> Iterator[bytes]:
        yield b'{"user_input": "'
        for _ in range(100):
            yield b"y" * 1000
        yield b'"}'

    r = httpx.post(
        f"{api.url}/run-task", content=chunks(), headers={"content-type": "application/json"}
    )
    assert r.status_code == 413


def test_unknown_task_and_bad_last_event_id(api: Proc, worker: Proc) -> None:
    for method, path in [
        ("GET", "/tasks/nope"),
        ("GET", "/metrics/nope"),
        ("GET", "/stream/nope"),
        ("POST", "/tasks/nope/cancel"),
    ]:
        r = httpx.request(method, f"{api.url}{path}")
        assert r.status_code == 404, path
        assert r.json()["error"]["code"] == "task_not_found"
    task_id = httpx.post(f"{api.url}/run-task", json={"user_input": TASK}).json()["task_id"]
    for bad in ["abc", "1-2-3", "-1", "1-", "9" * 30, "9" * 20]:
        r = httpx.get(f"{api.url}/stream/{task_id}", headers={"Last-Event-ID": bad})
        assert r.status_code == 400, bad
        assert "Last-Event-ID" in r.json()["error"]["message"]
    # Ids that would name other keys are simply unknown tasks, never a 500.
    for path in [f"/tasks/{task_id}:events", f"/metrics/{task_id}:results", "/stream/a:b"]:
        assert httpx.get(f"{api.url}{path}").status_code == 404, path
    assert httpx.post(f"{api.url}/tasks/{task_id}:events/cancel").status_code == 404
    assert httpx.post(f"{api.url}/dlq/abc/redrive").status_code == 404
    # Regression: an id past 2^64-1 once left a broken cursor in the shared reader, and every
    # later stream of the process went silent. Live streams must still work after one.
    frames = list(sse_frames(f"{api.url}/stream/{task_id}"))
    assert frames[-1][1] == "task_completed"


def test_health_and_openapi(api: Proc) -> None:
    assert httpx.get(f"{api.url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{api.url}/readyz").status_code == 200
    paths = httpx.get(f"{api.url}/openapi.json").json()["paths"]
    for path in [
        "/run-task",
        "/stream/{task_id}",
        "/tasks/{task_id}",
        "/tasks/{task_id}/cancel",
        "/metrics/{task_id}",
        "/healthz",
        "/readyz",
    ]:
        assert path in paths
    assert "text/html" in httpx.get(f"{api.url}/").headers["content-type"]


def test_worker_serves_health_and_prometheus_metrics(
    api: Proc, offline: Settings, tmp_path: Path
) -> None:
    from tests.integration.procs import free_port

    port = free_port()
    worker = start_worker(offline, tmp_path, worker_metrics_port=port)
    try:
        task_id = httpx.post(f"{api.url}/run-task", json={"user_input": TASK}).json()["task_id"]
        wait_terminal(api.url, task_id)
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
        text = httpx.get(f"{base}/metrics").text
        assert 'agentic_steps_total{agent="writer",outcome="completed"} 1.0' in text
        assert "agentic_step_run_seconds_bucket" in text and "agentic_stream_lag" in text
        assert httpx.get(f"{base}/nope").status_code == 404
    finally:
        worker.terminate()


def test_agentic_run_prints_report_and_exits_zero(api: Proc, worker: Proc) -> None:
    import subprocess
    import sys

    from tests.integration.procs import ROOT

    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "run", TASK, "--url", api.url],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert "Sources" in done.stdout and "task_completed" in done.stderr
    as_json = subprocess.run(
        [sys.executable, "-m", "app.cli", "run", TASK, "--url", api.url, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    import orjson

    events = [orjson.loads(line) for line in as_json.stdout.splitlines()]
    assert as_json.returncode == 0 and events[-1]["type"] == "task_completed"


def test_operator_endpoints(api: Proc, worker: Proc) -> None:
    task_id = httpx.post(f"{api.url}/run-task", json={"user_input": TASK}).json()["task_id"]
    wait_terminal(api.url, task_id)
    tasks = httpx.get(f"{api.url}/tasks", params={"limit": 5}).json()["tasks"]
    assert tasks[0]["task_id"] == task_id and tasks[0]["state"] == "completed"
    assert httpx.get(f"{api.url}/tasks", params={"limit": 0}).status_code == 422
    assert httpx.get(f"{api.url}/dlq").json() == {"entries": [], "depth": 0}
    r = httpx.post(f"{api.url}/dlq/1-1/redrive")
    assert r.status_code == 404 and r.json()["error"]["code"] == "dead_letter_not_found"
    assert httpx.post(f"{api.url}/dlq/redrive").json() == {"redriven": [], "skipped": []}
