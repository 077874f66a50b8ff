"""Redis connections: one place that knows how to make a client from settings."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.config import Settings


def make_redis(settings: Settings, *, max_connections: int = 256) -> Redis:
    """An asyncio client that rides out a Redis restart: commands retry with backoff."""
    return Redis.from_url(
        settings.effective_redis_url,
        decode_responses=True,
        max_connections=max_connections,
        health_check_interval=30,
        socket_keepalive=True,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.05), retries=8),
        retry_on_error=[RedisConnectionError, RedisTimeoutError, ConnectionResetError],
    )
