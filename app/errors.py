"""Exception tree.

::

    AgenticError
    ├── PlanError            the planner could not produce a valid plan
    ├── TaskNotFound         unknown or expired task id
    ├── DeadLetterNotFound   unknown dead-letter entry id
    ├── TaskConflict         the task's state forbids the request (cancel a finished task)
    └── StepError            an agent failed to run a step
        └── PermanentStepError   ... and retrying cannot help (dead-letter at once)

Control signals carry no ``Error`` suffix.
"""

from __future__ import annotations


class AgenticError(Exception):
    """Root of every error this package raises on purpose."""


class PlanError(AgenticError):
    pass


class TaskNotFound(AgenticError):
    def __init__(self, task_id: str) -> None:
        super().__init__(f"task {task_id!r} not found")
        self.task_id = task_id


class DeadLetterNotFound(AgenticError):
    def __init__(self, entry_id: str) -> None:
        super().__init__(f"dead-letter entry {entry_id!r} not found")
        self.entry_id = entry_id


class TaskConflict(AgenticError):
    pass


class StepError(AgenticError):
    """A step failed; the orchestration retries it (backoff) until its attempts run out."""


class PermanentStepError(StepError):
    """A step failed in a way a retry cannot fix; it is dead-lettered at once."""
