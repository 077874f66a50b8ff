"""The first event of each task this API process has just accepted, kept for a few seconds.

A client usually opens a task's stream right after its ``POST /run-task`` (``agentic run``, the
web page, the bench) and from the start of the log. plan_created is the first entry of every
task's log, and submit.lua hands it back exactly as written (``TaskStore.submit_logged``), so
that open's catch-up is known here without reading Redis (``EventHub.subscribe_accepted``).

Bounded in time and size: an entry serves every such open (the bench opens ten per task) for
``keep_s`` seconds, and at most ``max_tasks`` are kept, the oldest dropped first; with a plan
of 1-2 KB in each, that is a few MB at most. ``keep_s`` never exceeds half the task TTL, so
a task served from here cannot expire before the shared reader has read its log.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from app.orchestration.store import LogEvent

DEFAULT_KEEP_S = 10.0
DEFAULT_MAX_TASKS = 4096


def keep_s_for(task_ttl_s: float, keep_s: float = DEFAULT_KEEP_S) -> float:
    """How long to keep an entry with keys that expire ``task_ttl_s`` after the task ends."""
    return min(keep_s, task_ttl_s / 2)


class AcceptedTasks:
    def __init__(
        self,
        keep_s: float = DEFAULT_KEEP_S,
        max_tasks: int = DEFAULT_MAX_TASKS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.keep_s = keep_s
        self.max_tasks = max_tasks
        self._clock = clock
        #: task id -> (expiry time, plan_created), oldest first: entries expire in that order.
        self._first: OrderedDict[str, tuple[float, LogEvent]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._first)

    def remember(self, task_id: str, first_event: LogEvent) -> None:
        now = self._clock()
        self._first[task_id] = (now + self.keep_s, first_event)
        self._first.move_to_end(task_id)
        first = self._first
        while first and (len(first) > self.max_tasks or next(iter(first.values()))[0] <= now):
            first.popitem(last=False)

    def first_event(self, task_id: str) -> LogEvent | None:
        """The task's plan_created, if this process accepted it less than ``keep_s`` ago."""
        found = self._first.get(task_id)
        if found is None:
            return None
        if found[0] <= self._clock():
            del self._first[task_id]
            return None
        return found[1]
