"""FastAPI dependencies: tests override these instead of patching module globals."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.agents.base import Planner
from app.api.drain import DrainState
from app.api.hub import EventHub
from app.config import Settings
from app.orchestration.dlq import DeadLetters
from app.orchestration.store import TaskStore


async def get_store(request: Request) -> TaskStore:
    store: TaskStore = request.app.state.store
    return store


async def get_dead_letters(request: Request) -> DeadLetters:
    dlq: DeadLetters = request.app.state.dead_letters
    return dlq


async def get_hub(request: Request) -> EventHub:
    hub: EventHub = request.app.state.hub
    return hub


async def get_drain(request: Request) -> DrainState:
    drain: DrainState = request.app.state.drain
    return drain


async def get_planner(request: Request) -> Planner:
    planner: Planner = request.app.state.planner
    return planner


async def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


StoreDep = Annotated[TaskStore, Depends(get_store)]
HubDep = Annotated[EventHub, Depends(get_hub)]
DeadLettersDep = Annotated[DeadLetters, Depends(get_dead_letters)]
DrainDep = Annotated[DrainState, Depends(get_drain)]
PlannerDep = Annotated[Planner, Depends(get_planner)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
