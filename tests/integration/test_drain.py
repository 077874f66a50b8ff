"""Invariant 8: a draining API pod ends streams at an event boundary and clients resume on
another pod from Last-Event-ID with nothing missing and nothing twice."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.config import Settings
from tests.integration.procs import sse_frames, start_api, start_worker, wait_terminal

pytestmark = pytest.mark.integration
TASK = "Compare Redis Streams and Kafka for job queues"


def follow_across_pods(urls: list[str], task_id: str, out: list[Any], pods: set[str]) -> None:
    """A client that, when a stream ends without the terminal event, resumes on the next pod."""
    last = "0-0"
    for url in urls:
        for frame in sse_frames(f"{url}/stream/{task_id}", headers={"Last-Event-ID": last}):
            out.append(frame)
            pods.add(url)
            last = frame[0]
            if frame[1].startswith("task_"):
                return


def test_sigterm_drains_streams_to_another_pod(settings: Settings, tmp_path: Path) -> None:
    a = start_api(settings, tmp_path, drain_s=3)
    b = start_api(settings, tmp_path)
    worker = start_worker(settings, tmp_path, noop_delay_ms=300)
    try:
        task_ids = [
            httpx.post(f"{a.url}/run-task", json={"user_input": TASK}).json()["task_id"]
            for _ in range(3)
        ]
        results: dict[str, list[Any]] = {t: [] for t in task_ids}
        pods: set[str] = set()
        clients = [
            threading.Thread(target=follow_across_pods, args=([a.url, b.url], t, results[t], pods))
            for t in task_ids
        ]
        for c in clients:
            c.start()
        time.sleep(0.5)
        assert httpx.get(f"{a.url}/metrics").text.count("agentic_sse_open_streams 3.0") == 1
        a.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 2
        while httpx.get(f"{a.url}/readyz").status_code != 503:
            assert time.monotonic() < deadline, "readyz never turned 503"
            time.sleep(0.02)
        late = httpx.get(f"{a.url}/stream/{task_ids[0]}")  # a request that still reaches the pod
        assert late.status_code == 200 and "retry:" in late.text and "event:" not in late.text
        for c in clients:
            c.join(60)
        for t in task_ids:
            wait_terminal(b.url, t)
            whole = list(sse_frames(f"{b.url}/stream/{t}"))
            assert results[t] == whole, "a client saw a gap or a repeat across the drain"
        assert pods == {a.url, b.url}, "the clients never moved to the second pod"
        assert a.popen.wait(15) is not None
    finally:
        worker.terminate()
        b.terminate()
        if a.popen.poll() is None:
            a.kill()


def test_client_disconnect_frees_its_subscription(settings: Settings, tmp_path: Path) -> None:
    api = start_api(settings, tmp_path)  # no worker: the task stays running, the stream idle
    try:
        task_id = httpx.post(f"{api.url}/run-task", json={"user_input": TASK}).json()["task_id"]
        frames = list(sse_frames(f"{api.url}/stream/{task_id}", limit=1))
        assert frames
        deadline = time.monotonic() + 5
        while "agentic_sse_open_streams 0.0" not in httpx.get(f"{api.url}/metrics").text:
            assert time.monotonic() < deadline, "the dropped stream is still open"
            time.sleep(0.05)
    finally:
        api.terminate()


def test_idle_stream_gets_keep_alive_comments(settings: Settings, tmp_path: Path) -> None:
    api = start_api(settings, tmp_path, sse_ping_s=0.2)  # no worker: nothing happens
    try:
        task_id = httpx.post(f"{api.url}/run-task", json={"user_input": TASK}).json()["task_id"]
        pings = 0
        with httpx.stream("GET", f"{api.url}/stream/{task_id}", timeout=10) as resp:
            for line in resp.iter_lines():
                pings += line.startswith(": ping")
                if pings == 2:
                    break
        assert pings == 2
    finally:
        api.terminate()
