"""Every Redis key and stream name, built in one place.

Nobody else formats a key string: the Lua scripts receive the prefix and build the same names
with the same layout (see ``app/orchestration/lua``), and the Helm chart's KEDA ScaledObjects
are checked against :func:`agent_stream` / :func:`agent_group`.

Layout (``p`` is ``AGENTIC_PREFIX``)::

    p:agent:<name>          stream, consumer group <name>: batches of ready steps for an agent
    p:task:<id>             hash: task fields and ``<step>|<field>`` step fields (the
                            step's result JSON is ``<step>|result``)
    p:task:<id>:events      stream: the task's event log (the only source for SSE)
    p:delayed               sorted set: retries waiting for their backoff, score = due ms
    p:dlq                   stream: dead-lettered steps
    p:tasks                 sorted set: task ids by creation ms (listing, expiry sweep)
"""

from __future__ import annotations

from dataclasses import dataclass

AGENTS: tuple[str, ...] = ("retriever", "analyzer", "writer")


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "agentic"

    def agent_stream(self, agent: str) -> str:
        return f"{self.prefix}:agent:{agent}"

    @staticmethod
    def agent_group(agent: str) -> str:
        return agent

    def task(self, task_id: str) -> str:
        return f"{self.prefix}:task:{task_id}"

    def events(self, task_id: str) -> str:
        return f"{self.prefix}:task:{task_id}:events"

    def task_keys(self, task_id: str) -> tuple[str, str]:
        return self.task(task_id), self.events(task_id)

    @property
    def delayed(self) -> str:
        return f"{self.prefix}:delayed"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}:dlq"

    @property
    def tasks_index(self) -> str:
        return f"{self.prefix}:tasks"
