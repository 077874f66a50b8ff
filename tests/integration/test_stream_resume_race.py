"""A resume whose catch-up is empty reads the task's state: a task that ends between that read
and the log read must still send its terminal event, never a 204 (EventSource would stop)."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from redis.asyncio import Redis

from app.api.drain import DrainState
from app.api.hub import EventHub
from app.api.routes import open_stream
from app.config import Settings
from app.keys import Keys
from app.orchestration.store import TaskStore

pytestmark = pytest.mark.integration


async def test_a_task_ending_between_the_log_read_and_the_state_read_is_not_a_204(
    redis_url: str, prefix: str, settings: Settings
) -> None:
    pool = Redis.from_url(redis_url, decode_responses=True)
    reader = Redis.from_url(redis_url, decode_responses=True, max_connections=1)
    keys = Keys(prefix)
    hub = EventHub(pool, reader, keys, block_ms=500)
    await hub.start()
    store = TaskStore(pool, keys, ttl_s=60)
    try:
        task = "race"
        await pool.hset(keys.task(task), mapping={"state": "running", "created_ms": 1})
        last = await pool.xadd(keys.events(task), {"type": "step_completed", "data": "{}"})
        real_pipeline = pool.pipeline
        calls = 0

        def pipeline(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls == 2:  # the state read of an empty catch-up: the task ends just before
                # (what cancel.lua / complete.lua do atomically: state and event together)
                sync = redis.Redis.from_url(redis_url, decode_responses=True)
                sync.hset(keys.task(task), "state", "cancelled")
                sync.xadd(keys.events(task), {"type": "task_cancelled", "data": "{}"})
                sync.close()
            return real_pipeline(*args, **kwargs)

        pool.pipeline = pipeline  # type: ignore[method-assign]
        response = await open_stream(store, hub, DrainState(), settings, task, last)
        pool.pipeline = real_pipeline  # type: ignore[method-assign]
        # The client resumed after `last`; task_cancelled (after it) must reach it. A 204 tells
        # EventSource to stop reconnecting for good: the terminal event is lost.
        assert response.status_code != 204
    finally:
        await hub.close()
        await reader.aclose()
        await pool.aclose()
