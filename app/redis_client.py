"""Redis connections: one place that knows how to make a client from settings."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.config import Settings


def make_redis(settings: Settings, *, max_connections: int = 64) -> Redis:
    """An asyncio client that rides out a Redis restart (commands retry with backoff) and,
    under a burst, waits for a pooled connection instead of failing the request: the default
    pool raises ``Too many connections`` once ``max_connections`` are in use."""
    pool = BlockingConnectionPool.from_url(
        settings.effective_redis_url,
        decode_responses=True,
        max_connections=max_connections,
        timeout=30,
        # A server that accepts but never answers must not hang requests or worker loops; the
        # read timeout stays above the longest BLOCK any caller uses (the SSE reader's 5 s).
        socket_connect_timeout=5,
        socket_timeout=15 + settings.block_ms / 1000,
        health_check_interval=30,
        socket_keepalive=True,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.05), retries=8),
        retry_on_error=[RedisConnectionError, RedisTimeoutError, ConnectionResetError],
    )
    return Redis.from_pool(pool)
