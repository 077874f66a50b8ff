"""Plan, task and step models shared by the API, the orchestration and the agents."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

AgentName = Literal["retriever", "analyzer", "writer"]
StepId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_\-]{1,40}$")]
#: Longest plan any planner may produce; bounded so a bad LLM plan cannot flood the streams.
MAX_PLAN_STEPS = 32


class TaskState(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self is not TaskState.RUNNING


class StepState(StrEnum):
    PENDING = "pending"  # waiting for dependencies
    QUEUED = "queued"  # in an agent stream
    RUNNING = "running"
    RETRYING = "retrying"  # waiting in the delayed set for its backoff
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class PlanStep(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: StepId
    agent: AgentName
    instruction: Annotated[str, StringConstraints(min_length=1, max_length=4000)]
    depends_on: list[StepId] = Field(default_factory=list)


class Plan(BaseModel):
    """A DAG of steps. Validation rejects unknown dependencies, duplicates and cycles."""

    model_config = ConfigDict(extra="ignore")

    steps: Annotated[list[PlanStep], Field(min_length=1, max_length=MAX_PLAN_STEPS)]
    planner: str = "offline"

    @model_validator(mode="after")
    def _check_dag(self) -> Plan:
        ids = [s.id for s in self.steps]
        if len(set(ids)) != len(ids):
            raise ValueError("step ids must be unique")
        known = set(ids)
        for step in self.steps:
            missing = set(step.depends_on) - known
            if missing:
                raise ValueError(f"step {step.id!r} depends on unknown steps {sorted(missing)}")
            if step.id in step.depends_on:
                raise ValueError(f"step {step.id!r} depends on itself")
        self.topological_order()  # raises on a cycle
        return self

    def topological_order(self) -> list[PlanStep]:
        by_id = {s.id: s for s in self.steps}
        indegree = {s.id: len(set(s.depends_on)) for s in self.steps}
        ready = [s.id for s in self.steps if indegree[s.id] == 0]
        order: list[PlanStep] = []
        while ready:
            sid = ready.pop(0)
            order.append(by_id[sid])
            for other in self.steps:
                if sid in other.depends_on:
                    indegree[other.id] -= 1
                    if indegree[other.id] == 0:
                        ready.append(other.id)
        if len(order) != len(self.steps):
            raise ValueError("plan has a dependency cycle")
        return order

    def dependents(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {s.id: [] for s in self.steps}
        for step in self.steps:
            for dep in dict.fromkeys(step.depends_on):
                out[dep].append(step.id)
        return out

    def sinks(self) -> list[str]:
        """Steps nobody depends on: their results make the task's output."""
        deps = self.dependents()
        return [s.id for s in self.steps if not deps[s.id]]


# --- HTTP payloads -------------------------------------------------------------------------


class TaskCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_input: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)] = Field(
        description="The task, in plain language.",
        examples=["Compare Redis Streams and Kafka for job queues and write a recommendation"],
    )


class TaskAccepted(BaseModel):
    task_id: str
    state: TaskState
    steps_created: list[PlanStep]
    planner: str
    stream_url: str
    task_url: str
    metrics_url: str


class StepPublic(BaseModel):
    id: str
    agent: str
    instruction: str
    depends_on: list[str]
    state: StepState
    attempt: int
    queued_at_ms: int | None = None
    started_at_ms: int | None = None
    finished_at_ms: int | None = None
    error: str | None = None
    result: dict[str, Any] | None = None


class TaskPublic(BaseModel):
    task_id: str
    state: TaskState
    user_input: str
    planner: str
    created_at_ms: int
    finished_at_ms: int | None = None
    plan: Plan
    steps: list[StepPublic]
    output: str | None = None
    error: str | None = None


class StepMetrics(BaseModel):
    step_id: str
    agent: str
    state: StepState
    attempts: int
    queue_wait_ms: int | None = None
    run_ms: int | None = None
    cost_units: float = 0.0
    tokens_in: int = 0
    tokens_out: int = 0


class TaskMetrics(BaseModel):
    task_id: str
    state: TaskState
    latency_ms: int | None = Field(None, description="Acceptance to terminal event, end to end.")
    created_at_ms: int
    finished_at_ms: int | None = None
    attempts_total: int
    retries_total: int
    queue_wait_ms_total: int
    run_ms_total: int
    cost_units: float
    tokens_in: int
    tokens_out: int
    steps: list[StepMetrics]


class ErrorBody(BaseModel):
    code: str
    message: str
    details: Any | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class TaskSummary(BaseModel):
    task_id: str
    state: TaskState
    user_input: str
    planner: str
    created_at_ms: int
    finished_at_ms: int | None = None
    steps: int


class TaskList(BaseModel):
    tasks: list[TaskSummary]


class DeadLetter(BaseModel):
    id: str = Field(description="Entry id in the dead-letter stream")
    task_id: str
    step_id: str
    agent: str
    attempt: int
    error: str
    ts: int = Field(description="When the step was dead-lettered (ms since the epoch)")


class DeadLetterList(BaseModel):
    entries: list[DeadLetter]
    depth: int


class Redriven(BaseModel):
    id: str
    task_id: str
    step_id: str
    state: TaskState = TaskState.RUNNING


class RedriveSkipped(BaseModel):
    id: str
    reason: str


class RedriveAll(BaseModel):
    redriven: list[Redriven]
    skipped: list[RedriveSkipped]
