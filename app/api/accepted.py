"""The first event of each task this API process has just accepted, kept for a few seconds.

A client usually opens a task's stream right after its ``POST /run-task`` (``agentic run``, the
web page, the bench) and from the start of the log. plan_created is the first entry of every
task's log, and submit.lua hands it back exactly as written (``TaskStore.submit_logged``), so
that open's catch-up is known here without reading Redis (``EventHub.subscribe_accepted``).

Bounded in time and size: an entry serves every such open (the bench opens ten per task) for
``keep_s`` seconds, and at most ``max_tasks`` entries and ``max_bytes`` of event data are
kept, the oldest dropped first (an LLM's plan of 32 long instructions is ~100 KB, an offline
plan 1-2 KB). ``keep_s`` never exceeds half the task TTL, so
a task served from here cannot expire before the shared reader has read its log.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from app.orchestration.store import LogEvent

DEFAULT_KEEP_S = 10.0
DEFAULT_MAX_TASKS = 4096
DEFAULT_MAX_BYTES = 8 * 1024 * 1024


def keep_s_for(task_ttl_s: float, keep_s: float = DEFAULT_KEEP_S) -> float:
    """How long to keep an entry with keys that expire ``task_ttl_s`` after the task ends."""
    return min(keep_s, task_ttl_s / 2)


class AcceptedTasks:
    def __init__(
        self,
        keep_s: float = DEFAULT_KEEP_S,
        max_tasks: int = DEFAULT_MAX_TASKS,
        clock: Callable[[], float] = time.monotonic,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.keep_s = keep_s
        self.max_tasks = max_tasks
        self.max_bytes = max_bytes
        self._bytes = 0  # sum of the kept events' data
        self._clock = clock
        #: task id -> (expiry time, plan_created), oldest first: entries expire in that order.
        self._first: OrderedDict[str, tuple[float, LogEvent]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._first)

    def remember(self, task_id: str, first_event: LogEvent) -> None:
        now = self._clock()
        self._drop(task_id)
        self._first[task_id] = (now + self.keep_s, first_event)
        self._bytes += len(first_event[2])
        first = self._first
        while first and (
            len(first) > self.max_tasks
            or self._bytes > self.max_bytes
            or next(iter(first.values()))[0] <= now
        ):
            self._drop(next(iter(first)))

    def first_event(self, task_id: str) -> LogEvent | None:
        """The task's plan_created, if this process accepted it less than ``keep_s`` ago."""
        found = self._first.get(task_id)
        if found is None:
            return None
        if found[0] <= self._clock():
            self._drop(task_id)
            return None
        return found[1]

    def _drop(self, task_id: str) -> None:
        found = self._first.pop(task_id, None)
        if found is not None:
            self._bytes -= len(found[1][2])
