"""Housekeeping every worker runs (idempotent, so any number of workers may run it at once).

- promote due retries from the delayed set back to their agent streams;
- trim agent streams below the oldest entry the group still needs (never an undelivered or
  unacknowledged one), and the dead-letter stream to a cap;
- forget expired task ids in the index; drop consumers that left nothing pending;
- publish lag/pending/delayed/DLQ gauges.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING

import structlog

from app.config import Settings
from app.keys import Keys
from app.orchestration import telemetry as m
from app.orchestration.scripts import Scripts

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = structlog.get_logger("agentic.maintenance")
DLQ_MAXLEN = 100_000
DEAD_CONSUMER_IDLE_MS = 3_600_000


def _next_id(entry_id: str) -> str:
    ms, seq = entry_id.split("-")
    return f"{ms}-{int(seq) + 1}"


def _min_id(a: str, b: str) -> str:
    return min(a, b, key=lambda i: tuple(int(x) for x in i.split("-")))


class Maintenance:
    def __init__(self, redis: Redis, keys: Keys, settings: Settings, agents: list[str]) -> None:
        self.redis = redis
        self.keys = keys
        self.settings = settings
        self.agents = agents
        self.scripts = Scripts(redis)

    async def promote_loop(self, stop: asyncio.Event) -> None:
        interval_s = self.settings.promote_interval_ms / 1000
        while not stop.is_set():
            wait_s = interval_s
            try:
                moved, next_ms = await self.promote_once()
                if moved:
                    continue
                if next_ms >= 0:
                    wait_s = min(interval_s, next_ms / 1000)
            except Exception:
                log.exception("promote failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=max(0.005, wait_s))

    async def promote_once(self) -> tuple[int, int]:
        moved, next_ms = await self.scripts.call("promote", self.keys.prefix, 100)
        return int(moved), int(next_ms)

    async def trim_loop(self, stop: asyncio.Event) -> None:
        while True:
            try:
                await self.trim_once()
            except Exception:
                log.exception("trim failed")
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.settings.trim_interval_s)
                return
            except TimeoutError:
                pass

    async def trim_once(self) -> None:
        for agent in self.agents:
            await self.trim_stream(agent)
        now_ms = int(time.time() * 1000)
        await self.redis.zremrangebyscore(
            self.keys.tasks_index, "-inf", now_ms - self.settings.task_ttl_s * 1000
        )
        await self.redis.xtrim(self.keys.dlq, maxlen=DLQ_MAXLEN, approximate=True)
        m.DELAYED.set(await self.redis.zcard(self.keys.delayed))
        m.DLQ_DEPTH.set(await self.redis.xlen(self.keys.dlq))

    async def trim_stream(self, agent: str) -> None:
        """XTRIM MINID to the oldest entry any group still needs: delivered and acknowledged
        entries go, undelivered and pending ones stay (and the group's lag stays exact)."""
        stream = self.keys.agent_stream(agent)
        try:
            groups = await self.redis.xinfo_groups(stream)
        except Exception:
            return  # no stream yet
        if not groups:
            return
        keep_from: str | None = None
        for group in groups:
            candidate = _next_id(group["last-delivered-id"])
            if int(group["pending"]) > 0:
                oldest = await self.redis.xpending(stream, group["name"])
                if oldest["min"]:  # None if they were all ACKed since XINFO GROUPS
                    candidate = _min_id(candidate, oldest["min"])
            keep_from = candidate if keep_from is None else _min_id(keep_from, candidate)
            if group["name"] == self.keys.agent_group(agent):
                m.LAG.labels(agent).set(group.get("lag") or 0)
                m.PENDING.labels(agent).set(int(group["pending"]))
                await self._forget_dead_consumers(stream, group["name"])
        if keep_from is not None:
            await self.redis.xtrim(stream, minid=keep_from, approximate=False)

    async def _forget_dead_consumers(self, stream: str, group: str) -> None:
        for consumer in await self.redis.xinfo_consumers(stream, group):
            if int(consumer["pending"]) == 0 and int(consumer["idle"]) > DEAD_CONSUMER_IDLE_MS:
                await self.redis.xgroup_delconsumer(stream, group, consumer["name"])
