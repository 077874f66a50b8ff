"""Invariant 1 and friends, with real processes: SIGKILL a worker, restart Redis, FLUSHALL."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from redis import Redis as SyncRedis

from app.config import Settings
from app.keys import Keys
from tests.conftest import EXTERNAL_URL
from tests.integration.procs import Proc, start_api, start_worker, wait_terminal

pytestmark = pytest.mark.integration
TASK = "Compare Redis Streams and Kafka for job queues"


@pytest.fixture
def api(settings: Settings, tmp_path: Path) -> Iterator[Proc]:
    proc = start_api(settings, tmp_path)
    yield proc
    proc.terminate()


def submit(api: Proc, n: int) -> list[str]:
    with httpx.Client(base_url=api.url) as client:
        return [
            client.post("/run-task", json={"user_input": f"{TASK} #{i}"}).json()["task_id"]
            for i in range(n)
        ]


def completions(redis_url: str, keys: Keys, task_ids: list[str]) -> Counter[tuple[str, str]]:
    client = SyncRedis.from_url(redis_url, decode_responses=True)
    counts: Counter[tuple[str, str]] = Counter()
    for task_id in task_ids:
        for _, fields in client.xrange(keys.events(task_id)):
            data = orjson.loads(fields["data"])
            if data["type"] == "step_completed":
                counts[(task_id, data["step_id"])] += 1
    client.close()
    return counts


def wait_running_steps(redis_url: str, keys: Keys, timeout: float = 20) -> None:
    client = SyncRedis.from_url(redis_url, decode_responses=True)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for stream in [keys.agent_stream(a) for a in ("retriever", "analyzer", "writer")]:
                try:
                    pending = client.xpending(stream, stream.rsplit(":", 1)[1])
                except Exception:
                    continue
                if pending["pending"]:
                    return
            time.sleep(0.02)
    finally:
        client.close()
    raise TimeoutError("no step ever started")


@pytest.mark.parametrize("claim_after_ms", [50, 10_000], ids=["claimed", "unclaimed"])
def test_sigkill_worker_mid_step_loses_nothing_and_doubles_nothing(
    api: Proc, settings: Settings, redis_url: str, tmp_path: Path, claim_after_ms: int
) -> None:
    """Killed inside steps it has claimed, or inside steps still in their unclaimed window
    (run at once, to be started and completed by one call)."""
    keys = Keys(settings.prefix)
    first = start_worker(settings, tmp_path, noop_delay_ms=400, claim_after_ms=claim_after_ms)
    task_ids = submit(api, 12)
    wait_running_steps(redis_url, keys)
    time.sleep(0.2)  # the first worker is now inside steps
    first.kill()
    second = start_worker(settings, tmp_path, noop_delay_ms=50)
    try:
        states = {t: wait_terminal(api.url, t, timeout=90)["state"] for t in task_ids}
        assert set(states.values()) == {"completed"}, states
        counts = completions(redis_url, keys, task_ids)
        assert len(counts) == 4 * len(task_ids)
        assert set(counts.values()) == {1}, [k for k, v in counts.items() if v != 1]
        assert "reclaimed entries" in second.log()
    finally:
        second.terminate()


def test_worker_sigterm_hands_back_unfinished_steps(
    api: Proc, settings: Settings, redis_url: str, tmp_path: Path
) -> None:
    """A worker told to stop mid-step (grace shorter than the step) releases its entries so a
    live worker takes them at once instead of after the visibility timeout."""
    patient = settings.model_copy(update={"visibility_timeout_s": 30.0})
    first = start_worker(patient, tmp_path, noop_delay_ms=3000, worker_grace_s=0.2)
    task_ids = submit(api, 3)
    wait_running_steps(redis_url, Keys(settings.prefix))
    time.sleep(0.2)
    assert first.terminate() == 0
    assert "released unfinished entries" in first.log()
    second = start_worker(patient, tmp_path, visibility_timeout_s=1.0)
    try:
        for t in task_ids:
            assert wait_terminal(api.url, t, timeout=30)["state"] == "completed"
    finally:
        second.terminate()


def test_nogroup_after_flushall_recovers(
    api: Proc, settings: Settings, redis_url: str, tmp_path: Path
) -> None:
    worker = start_worker(settings, tmp_path)
    try:
        assert wait_terminal(api.url, submit(api, 1)[0])["state"] == "completed"
        flusher = SyncRedis.from_url(redis_url)
        # On a shared server only our test database goes (the lane's URL names one).
        flusher.flushdb() if EXTERNAL_URL else flusher.flushall()
        flusher.close()
        time.sleep(0.5)  # the worker's blocked read sees its stream vanish
        task_id = submit(api, 1)[0]
        assert wait_terminal(api.url, task_id)["state"] == "completed"
        assert "re-creating" in worker.log()
    finally:
        worker.terminate()


def test_redis_restart_with_aof_finishes_every_task(settings: Settings, tmp_path: Path) -> None:
    """SIGKILL the durable embedded server mid-run; the restarted one (same AOF) lets every
    accepted task finish: every 202 was fsynced (appendfsync always)."""
    from app.embedded import start_embedded

    data = tmp_path / "valkey"
    server = start_embedded(data)
    port = server.port
    local = settings.model_copy(update={"redis_url": server.connection_url})
    api = start_api(local, tmp_path)
    worker = start_worker(local, tmp_path, noop_delay_ms=100)
    try:
        task_ids = submit(api, 10)
        time.sleep(0.3)
        server.terminate()  # SIGKILL: no shutdown save
        server = start_embedded(data, port=port)
        for t in task_ids:
            assert wait_terminal(api.url, t, timeout=90)["state"] == "completed"
    finally:
        worker.terminate()
        api.terminate()
        server.stop()


async def test_streams_are_trimmed_without_dropping_undelivered(
    settings: Settings, redis_url: str
) -> None:
    from app.orchestration.maintenance import Maintenance
    from tests.integration.harness import BENCH_PLAN, Harness, agents

    h = Harness(settings)
    try:
        await h.start_worker(agents())
        ids = [await h.store.submit("x", BENCH_PLAN) for _ in range(5)]
        for t in ids:
            assert await h.wait_state(t) == "completed"
        await h.runtimes[0].shutdown()  # from here on nobody reads the stream but us
        h.runtimes.clear()
        stream = h.keys.agent_stream("writer")
        held = await h.redis.xadd(stream, {"t": "held", "s": "zz:1"})
        await h.redis.xreadgroup("writer", "someone", {stream: ">"}, count=1)  # pending, not acked
        undelivered = [
            await h.redis.xadd(stream, {"t": f"later{i}", "s": "zz:1"}) for i in range(3)
        ]
        await Maintenance(h.redis, h.keys, settings, ["writer"]).trim_once()
        left = [i for i, _ in await h.redis.xrange(stream)]
        assert left == [held, *undelivered]  # the 5 tasks' acked entries are gone
        groups = await h.redis.xinfo_groups(stream)
        assert groups[0]["lag"] == 3
        ttl = await h.redis.ttl(h.keys.task(ids[0]))
        assert 0 < ttl <= settings.task_ttl_s
    finally:
        await h.close()
    await asyncio.sleep(0)


async def test_trim_survives_pending_entries_acked_while_it_looks(
    settings: Settings, redis_url: str
) -> None:
    """XINFO GROUPS counts a pending entry that is ACKed before XPENDING runs (a worker's
    outcome landed in between): XPENDING then has no oldest id, and trimming goes on."""
    from redis.asyncio import Redis

    from app.orchestration.maintenance import Maintenance

    redis = Redis.from_url(redis_url, decode_responses=True)
    keys = Keys(settings.prefix)
    stream = keys.agent_stream("writer")
    try:
        await redis.xgroup_create(stream, "writer", id="0", mkstream=True)
        done = await redis.xadd(stream, {"t": "a", "s": "w"})
        await redis.xreadgroup("writer", "w1", {stream: ">"}, count=1)
        later = await redis.xadd(stream, {"t": "b", "s": "w"})
        xpending = redis.xpending

        async def acked_meanwhile(name: str, group: str) -> object:
            await redis.xack(name, group, done)
            return await xpending(name, group)

        redis.xpending = acked_meanwhile  # type: ignore[method-assign]
        await Maintenance(redis, keys, settings, ["writer"]).trim_stream("writer")
        assert [i for i, _ in await redis.xrange(stream)] == [later]
    finally:
        await redis.delete(stream)
        await redis.aclose()


def test_two_workers_killed_in_a_row_still_lose_nothing(
    api: Proc, settings: Settings, redis_url: str, tmp_path: Path
) -> None:
    """The reclaimer of a dead worker's entries dies too, mid-step; a third one finishes."""
    keys = Keys(settings.prefix)
    first = start_worker(settings, tmp_path, noop_delay_ms=1500)
    task_ids = submit(api, 6)
    wait_running_steps(redis_url, keys)
    time.sleep(0.2)
    first.kill()
    second = start_worker(settings, tmp_path, noop_delay_ms=1500)
    deadline = time.monotonic() + 20
    while "reclaimed entries" not in second.log():
        assert time.monotonic() < deadline, second.log()
        time.sleep(0.05)
    time.sleep(0.3)  # inside the reclaimed steps now
    second.kill()
    third = start_worker(settings, tmp_path)
    try:
        states = {t: wait_terminal(api.url, t, timeout=90)["state"] for t in task_ids}
        assert set(states.values()) == {"completed"}, states
        counts = completions(redis_url, keys, task_ids)
        assert len(counts) == 4 * len(task_ids) and set(counts.values()) == {1}
    finally:
        third.terminate()
