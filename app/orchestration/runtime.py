"""A worker process: the consumers of the agents it hosts, plus housekeeping.

``worker/agent_worker.py`` owns process concerns (arguments, signals, logging); this class owns
the loops and their orderly stop: stop reading, let in-flight steps finish within the grace
period, hand back what is left so that another worker reclaims it at once.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING

import structlog

from app.agents.base import Agent
from app.config import Settings
from app.keys import Keys
from app.orchestration.consumer import AgentConsumer
from app.orchestration.maintenance import Maintenance
from app.orchestration.recorder import Recorder
from app.orchestration.retry import RetryPolicy
from app.orchestration.scripts import Scripts
from app.redis_lane import Lane

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = structlog.get_logger("agentic.worker")


def consumer_name() -> str:
    """Unique per process, so a restarted pod never inherits a dead one's pending entries."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class WorkerRuntime:
    def __init__(
        self,
        redis: Redis,
        settings: Settings,
        agents: Mapping[str, Agent],
        policy: RetryPolicy | None = None,
        name: str | None = None,
    ) -> None:
        self.redis = redis
        self.settings = settings
        self.keys = Keys(settings.prefix)
        self.name = name or consumer_name()
        # One recorder for all the agents hosted here: outcomes batch across agents too.
        # Its calls are on every chain's critical path: a connection of their own (a lane).
        self.lane = Lane(redis)
        recorder = Recorder(Scripts(redis, self.lane), self.keys.prefix, settings)
        self.consumers = [
            AgentConsumer(redis, self.keys, agent, settings, self.name, policy, recorder)
            for agent in agents.values()
        ]
        recorder.hand_off_to(self.name, {c.name: c for c in self.consumers})
        self.maintenance = Maintenance(redis, self.keys, settings, list(agents))
        self.stop_event = asyncio.Event()
        # Leases outlive the read loops: steps still running during the drain must keep them.
        self._lease_stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._lease_tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await self._check_server()
        for consumer in self.consumers:
            await consumer.ensure_group()
        stop = self.stop_event
        for c in self.consumers:
            self._tasks += [
                asyncio.create_task(c.read_loop(stop), name=f"read:{c.name}"),
                asyncio.create_task(c.reclaim_loop(stop), name=f"reclaim:{c.name}"),
            ]
            self._lease_tasks.append(
                asyncio.create_task(c.lease_loop(self._lease_stop), name=f"lease:{c.name}")
            )
        self._tasks += [
            asyncio.create_task(self.maintenance.promote_loop(stop), name="promote"),
            asyncio.create_task(self.maintenance.trim_loop(stop), name="trim"),
        ]
        log.info("worker started", consumer=self.name, agents=[c.name for c in self.consumers])

    async def _check_server(self) -> None:
        """Warn when the server may evict keys: a queue must never lose entries to memory
        pressure. (Managed services often forbid CONFIG: then we cannot tell.)"""
        try:
            policy = (await self.redis.config_get("maxmemory-policy")).get("maxmemory-policy")
        except Exception:
            return
        if policy and policy != "noeviction":
            log.warning(
                "Redis maxmemory-policy is not noeviction: keys may be evicted and work lost",
                maxmemory_policy=policy,
            )

    async def run_until_stopped(self) -> None:
        await self.start()
        await self.stop_event.wait()
        await self.shutdown()

    def request_stop(self) -> None:
        self.stop_event.set()

    async def shutdown(self) -> None:
        self.stop_event.set()
        # Read loops finish their current XREADGROUP (at most block_ms), then take nothing new.
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(
            *(c.drain(self.settings.worker_grace_s) for c in self.consumers), return_exceptions=True
        )
        self._lease_stop.set()
        await asyncio.gather(*self._lease_tasks, return_exceptions=True)
        self.lane.close()
        log.info("worker stopped", consumer=self.name)
