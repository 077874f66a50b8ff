"""What a stream open costs the server, counted (INFO commandstats), through the real API: the
client's open right after its POST reads nothing, a resume reads the log and nothing else
unless there is nothing to catch up."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from redis import Redis

from app.config import Settings
from app.keys import Keys
from tests.integration.harness import command_calls
from tests.integration.procs import Proc, sse_frames, start_api, start_worker

pytestmark = pytest.mark.integration
TASK = "Compare Redis Streams and Kafka for job queues"


@pytest.fixture
def api(settings: Settings, tmp_path: Path) -> Iterator[Proc]:
    proc = start_api(settings, tmp_path)  # no worker yet: nothing writes while we count
    yield proc
    proc.terminate()


@pytest.fixture
def server(settings: Settings) -> Iterator[Redis]:
    client = Redis.from_url(settings.redis_url, decode_responses=True)
    yield client
    client.close()


def reads(server: Redis) -> Any:
    return command_calls(server.info("commandstats"))


def test_a_stream_opened_right_after_its_post_reads_nothing(
    api: Proc, server: Redis, settings: Settings, tmp_path: Path
) -> None:
    task_id = httpx.post(f"{api.url}/run-task", json={"user_input": TASK}).json()["task_id"]
    before = reads(server)
    frames = sse_frames(f"{api.url}/stream/{task_id}")
    got = [next(frames)]  # plan_created: the open has sent its catch-up
    opened = reads(server) - before
    assert (opened["xrange"], opened["hget"]) == (0, 0)
    worker = start_worker(settings, tmp_path)
    try:
        got += list(frames)
    finally:
        worker.terminate()
    log = server.xrange(Keys(settings.prefix).events(task_id))
    assert got == [(i, f["type"], orjson.loads(f["data"])) for i, f in log]
    assert got[0][1] == "plan_created" and got[-1][1] == "task_completed"


def test_a_resume_reads_the_state_only_with_nothing_to_catch_up(
    api: Proc, server: Redis, settings: Settings, tmp_path: Path
) -> None:
    """The log's last event tells whether the task has ended; its state is read only when the
    catch-up is empty (404 or 204 then)."""
    worker = start_worker(settings, tmp_path)
    try:
        task_id = httpx.post(f"{api.url}/run-task", json={"user_input": TASK}).json()["task_id"]
        whole = list(sse_frames(f"{api.url}/stream/{task_id}"))
    finally:
        worker.terminate()  # a worker's scripts read hashes too
    url = f"{api.url}/stream/{task_id}"
    before = reads(server)
    middle = whole[len(whole) // 2][0]
    assert list(sse_frames(url, headers={"Last-Event-ID": middle})) == whole[len(whole) // 2 + 1 :]
    resumed = reads(server) - before
    assert (resumed["xrange"], resumed["hget"]) == (1, 0)
    before = reads(server)
    assert httpx.get(url, headers={"Last-Event-ID": whole[-1][0]}).status_code == 204
    ended = reads(server) - before
    assert (ended["xrange"], ended["hget"]) == (2, 1)  # the log again, after the state
