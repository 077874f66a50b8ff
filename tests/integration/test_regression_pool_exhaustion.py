"""Regression: a burst of /stream requests larger than the Redis connection pool got 500s
("Too many connections": redis-py's default async pool raises instead of waiting). Found by
`agentic bench` opening 1,000 streams at once: 744 of them failed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from app.bench import client
from app.config import Settings
from tests.integration.procs import start_api, start_worker

pytestmark = pytest.mark.integration


async def test_burst_of_streams_beyond_the_pool_all_succeed(
    settings: Settings, tmp_path: Path
) -> None:
    api = start_api(settings, tmp_path)
    worker = None
    try:
        async with client.session() as http:
            task_id = await client.submit(http, api.url)
            followers = [
                asyncio.create_task(client.follow(http, api.url, task_id)) for _ in range(300)
            ]
            await asyncio.sleep(1.0)  # all 300 requests are in: 300 > the pool's 64 connections
            worker = start_worker(settings, tmp_path)
            results = await asyncio.gather(*followers, return_exceptions=True)
        assert [r for r in results if isinstance(r, BaseException)] == []
        assert set(results) == {b"event: task_completed"}
    finally:
        if worker:
            worker.terminate()
        api.terminate()
