"""HTTP routes. The API plans and submits; it never runs a step agent."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import JSONResponse

from app.agents.base import Planner
from app.api.deps import DrainDep, HubDep, PlannerDep, SettingsDep, StoreDep
from app.api.drain import DrainState
from app.api.errors import error_response
from app.api.hub import EventHub
from app.api.sse import hint, replay_body, valid_event_id
from app.api.stream_response import LiveStream, event_stream_response
from app.config import Settings
from app.errors import PlanError
from app.models import ErrorResponse, TaskAccepted, TaskCreate, TaskMetrics, TaskPublic, TaskState
from app.orchestration.store import TaskStore, checked, task_state

router = APIRouter()

ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "Unknown or expired task id"},
    422: {"model": ErrorResponse, "description": "Invalid input"},
}


@router.post(
    "/run-task",
    status_code=202,
    response_model=TaskAccepted,
    responses={413: {"model": ErrorResponse}, 422: ERRORS[422]},
    summary="Plan a task and start it",
)
async def run_task(
    body: TaskCreate,
    store: StoreDep,
    hub: HubDep,
    planner: PlannerDep,
    settings: SettingsDep,
    response: Response,
) -> TaskAccepted | JSONResponse:
    """Served by ``app.api.fast_submit`` for a well-formed body; this route documents it and
    answers everything else (its validation errors are FastAPI's)."""
    accepted = await accept_task(body, store, hub, planner, settings)
    if isinstance(accepted, TaskAccepted):
        response.headers["Location"] = accepted.task_url
    return accepted


async def accept_task(
    body: TaskCreate, store: TaskStore, hub: EventHub, planner: Planner, settings: Settings
) -> TaskAccepted | JSONResponse:
    """Plan the task and submit it: POST /run-task's answer (202 body), or its 422."""
    if len(body.user_input) > settings.max_input_chars:
        return error_response(
            422,
            f"user_input: must be at most {settings.max_input_chars} characters",
            [{"loc": ["body", "user_input"], "msg": "too long", "type": "string_too_long"}],
        )
    plan = await planner.plan(body.user_input)
    if len(plan.steps) > settings.max_plan_steps:
        raise PlanError(f"plan has {len(plan.steps)} steps, more than {settings.max_plan_steps}")
    task_id, first_event = await store.submit_logged(body.user_input, plan)
    if first_event is not None:  # the client's stream, opened next, needs no log read
        hub.remember(task_id, first_event)
    return TaskAccepted(
        task_id=task_id,
        state=TaskState.RUNNING,
        steps_created=plan.steps,
        planner=plan.planner,
        stream_url=f"/stream/{task_id}",
        task_url=f"/tasks/{task_id}",
        metrics_url=f"/metrics/{task_id}",
    )


@router.get(
    "/stream/{task_id}",
    summary="Task events as Server-Sent Events",
    description=(
        "Each event has `id:` (its entry id in the task's log: resume with `Last-Event-ID`), "
        "`event:` (its type) and `data:` (JSON with `type`, `task_id`, `ts`, and `step_id`, "
        "`agent`, `attempt` where they apply). Types: `plan_created`, `step_queued`, "
        "`step_started`, `step_progress`, `step_completed`, `step_retrying`, `step_failed`, "
        "`task_completed`, `task_failed`, `task_cancelled`. A step queued by another event is "
        "listed in that event's `queued` (`plan_created` for the first steps, the "
        "`step_completed` that made it ready), each item `{step_id, agent, attempt}`; "
        "`step_queued` is for a step queued on its own (a retry after its backoff, a redrive). "
        "The stream ends after the task's terminal event."
    ),
    response_class=Response,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "The task's event log, live"},
        204: {"description": "The task has finished and nothing follows Last-Event-ID"},
        400: {"model": ErrorResponse, "description": "Malformed Last-Event-ID"},
        404: ERRORS[404],
    },
)
async def stream(
    task_id: str,
    store: StoreDep,
    hub: HubDep,
    drain: DrainDep,
    settings: SettingsDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    after: Annotated[
        str | None, Query(description="Same as Last-Event-ID, for clients without headers")
    ] = None,
) -> Response:
    return await open_stream(store, hub, drain, settings, task_id, last_event_id or after)


async def open_stream(
    store: TaskStore,
    hub: EventHub,
    drain: DrainState,
    settings: Settings,
    task_id: str,
    last_event_id: str | None,
) -> Response:
    """The answer to GET /stream/{task_id}; served by ``app.api.fast_stream`` (this route
    documents it in the OpenAPI schema and serves it when the app is mounted elsewhere)."""
    retry_ms = settings.sse_retry_ms
    if drain.draining:  # 200 with a retry hint: EventSource gives up for good after a non-200
        return event_stream_response(hint(retry_ms, "draining, reconnect"))
    start = (last_event_id or "0-0").strip()
    if not valid_event_id(start):
        return error_response(400, "Last-Event-ID must be an event id such as 1700000000000-0")
    checked(task_id)
    sub = hub.subscribe_accepted(task_id, start)  # just accepted here: no Redis read at all
    if sub is None:
        # Registered before the log is read, so nothing appended in between is missed (hub.py).
        sub = hub.register(task_id, start)
        try:
            raw_state, events = await hub.read_state_and_log(task_id, start)
            state = task_state(task_id, raw_state)  # 404 for an unknown task
        except BaseException:
            hub.unsubscribe(sub)
            raise
        if state.terminal:
            hub.unsubscribe(sub)
            if not events:
                return Response(status_code=204)  # tells EventSource to stop reconnecting
            return event_stream_response(replay_body(events, retry_ms))
        hub.activate(sub, events)

    async def goes_on(failed_id: str) -> bool:
        return await store.goes_on_after(task_id, failed_id)

    return LiveStream(hub, sub, retry_ms, goes_on)


@router.get("/tasks/{task_id}", response_model=TaskPublic, responses={404: ERRORS[404]})
async def get_task(task_id: str, store: StoreDep) -> TaskPublic:
    return await store.get(task_id)


@router.post(
    "/tasks/{task_id}/cancel",
    status_code=202,
    responses={404: ERRORS[404], 409: {"model": ErrorResponse, "description": "Already finished"}},
)
async def cancel_task(task_id: str, store: StoreDep) -> dict[str, str]:
    await store.cancel(task_id)
    return {"task_id": task_id, "state": TaskState.CANCELLED.value}


@router.get("/metrics/{task_id}", response_model=TaskMetrics, responses={404: ERRORS[404]})
async def task_metrics(task_id: str, store: StoreDep) -> TaskMetrics:
    return await store.metrics(task_id)


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: Redis reachable and not draining")
async def readyz(store: StoreDep, drain: DrainDep) -> JSONResponse:
    if drain.draining:
        return error_response(503, "draining", code="draining")
    try:
        async with asyncio.timeout(2):
            await store.redis.ping()
    except Exception as exc:
        return error_response(503, f"redis unreachable: {type(exc).__name__}", code="redis_down")
    return JSONResponse({"status": "ready"})
