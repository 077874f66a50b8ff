"""Operator endpoints: recent tasks and the dead-letter queue (used by the page and the CLI)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.deps import DeadLettersDep, StoreDep
from app.models import DeadLetterList, ErrorResponse, RedriveAll, Redriven, TaskList

router = APIRouter(tags=["operations"])
LIMIT = Annotated[int, Query(ge=1, le=1000)]


@router.get("/tasks", response_model=TaskList, summary="Recent tasks, newest first")
async def list_tasks(store: StoreDep, limit: LIMIT = 50) -> TaskList:
    return TaskList(tasks=await store.recent(limit))


@router.get("/dlq", response_model=DeadLetterList, summary="Dead-lettered steps, newest first")
async def list_dead_letters(dlq: DeadLettersDep, limit: LIMIT = 100) -> DeadLetterList:
    return DeadLetterList(entries=await dlq.entries(limit), depth=await dlq.depth())


@router.post(
    "/dlq/{entry_id}/redrive",
    status_code=202,
    response_model=Redriven,
    summary="Resume the task of one dead-lettered step where it stopped",
    responses={
        404: {"model": ErrorResponse, "description": "No such dead-letter entry"},
        409: {"model": ErrorResponse, "description": "The task expired or is not failed on it"},
    },
)
async def redrive(entry_id: str, dlq: DeadLettersDep) -> Redriven:
    return await dlq.redrive(entry_id)


@router.post(
    "/dlq/redrive", status_code=202, response_model=RedriveAll, summary="Redrive every entry"
)
async def redrive_all(dlq: DeadLettersDep) -> RedriveAll:
    done, skipped = await dlq.redrive_all()
    return RedriveAll(redriven=done, skipped=skipped)
