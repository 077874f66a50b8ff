"""The dead-letter stream: list what failed for good, and redrive it.

Redriving resumes the step's task where it stopped (``lua/redrive.lua``): finished steps keep
their results, the dead step and the steps its failure cancelled run again.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from app.errors import DeadLetterNotFound, TaskConflict
from app.keys import Keys
from app.models import DeadLetter, Redriven, RedriveSkipped
from app.orchestration.scripts import Scripts

if TYPE_CHECKING:
    from redis.asyncio import Redis

ENTRY_ID = re.compile(r"^\d{1,19}-\d{1,19}$")


def _entry(entry_id: str, fields: dict[str, str]) -> DeadLetter | None:
    if "task_id" not in fields or "step_id" not in fields:
        return None  # a malformed stream entry parked by a worker: listed by depth only
    return DeadLetter(
        id=entry_id,
        task_id=fields["task_id"],
        step_id=fields["step_id"],
        agent=fields.get("agent", ""),
        attempt=int(fields.get("attempt", 0)),
        error=fields.get("error", ""),
        ts=int(entry_id.split("-")[0]),
    )


class DeadLetters:
    def __init__(self, redis: Redis, keys: Keys, *, max_attempts: int) -> None:
        self.redis = redis
        self.keys = keys
        self.max_attempts = max_attempts
        self.scripts = Scripts(redis)

    async def depth(self) -> int:
        return int(await self.redis.xlen(self.keys.dlq))

    async def entries(self, limit: int = 100) -> list[DeadLetter]:
        raw: Any = await self.redis.xrevrange(self.keys.dlq, count=limit)
        return [e for e in (_entry(i, f) for i, f in raw) if e is not None]

    async def redrive(self, entry_id: str) -> Redriven:
        if not ENTRY_ID.match(entry_id):
            raise DeadLetterNotFound(entry_id)
        reply = await self.scripts.call("redrive", self.keys.prefix, entry_id, self.max_attempts)
        code = int(reply[0])
        if code == -1:
            raise DeadLetterNotFound(entry_id)
        task_id, step_id = reply[1], reply[2]
        if code == -2:
            raise TaskConflict(f"task {task_id!r} has expired; its step {step_id!r} cannot resume")
        if code == -3:
            raise TaskConflict(f"task {task_id!r} is not failed on step {step_id!r}")
        return Redriven(id=entry_id, task_id=task_id, step_id=step_id)

    async def redrive_all(self, limit: int = 1000) -> tuple[list[Redriven], list[RedriveSkipped]]:
        done: list[Redriven] = []
        skipped: list[RedriveSkipped] = []
        for entry in reversed(await self.entries(limit)):  # oldest first
            try:
                done.append(await self.redrive(entry.id))
            except (TaskConflict, DeadLetterNotFound) as exc:
                skipped.append(RedriveSkipped(id=entry.id, reason=str(exc)))
        return done, skipped
