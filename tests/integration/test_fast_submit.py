"""POST /run-task past FastAPI's routing (app.api.fast_submit): the same answers as the route,
still counted by the instrumentator, and anything it cannot answer exactly goes to the route."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.api import fast_submit
from app.config import Settings
from app.errors import PlanError
from app.main import create_app
from app.models import Plan

pytestmark = pytest.mark.integration
TASK = "Compare Redis Streams and Kafka for job queues"


@pytest.fixture
def taken(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The user inputs the fast path answered (the route calls its own ``accept_task``)."""
    seen: list[str] = []
    accept = fast_submit.accept_task

    async def spy(task: Any, *args: Any) -> Any:
        seen.append(task.user_input)
        return await accept(task, *args)

    monkeypatch.setattr(fast_submit, "accept_task", spy)
    return seen


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield app, client


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(settings) as (_, c):
        yield c


async def test_the_fast_answer_is_the_routes(client: httpx.AsyncClient, taken: list[str]) -> None:
    fast = await client.post("/run-task", json={"user_input": TASK})
    # A JSON type FastAPI reads but the fast path leaves to the route.
    routed = await client.post(
        "/run-task",
        content=f'{{"user_input": "{TASK}"}}',
        headers={"content-type": "application/vnd.example+json"},
    )
    assert taken == [TASK]
    assert fast.status_code == routed.status_code == 202
    for answer in (fast, routed):
        body = answer.json()
        assert answer.headers["content-type"] == "application/json"
        assert answer.headers["location"] == body["task_url"] == f"/tasks/{body['task_id']}"
    a, b = fast.json(), routed.json()
    assert a.keys() == b.keys() and a["task_id"] != b["task_id"]
    assert a["steps_created"] == b["steps_created"] and a["state"] == b["state"] == "running"


@pytest.mark.parametrize(
    "body",
    [b'{"user_input": ""}', b'{"user_input": "ok", "extra": 1}', b"{not json", b"[]"],
)
async def test_a_body_it_cannot_take_goes_to_the_route(
    client: httpx.AsyncClient, taken: list[str], body: bytes
) -> None:
    r = await client.post("/run-task", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_input"
    assert taken == []


class FailingPlanner:
    async def plan(self, user_input: str) -> Plan:
        raise PlanError("no plan for that")


async def test_its_own_errors_are_the_apps_json(settings: Settings, taken: list[str]) -> None:
    async with serving(settings.model_copy(update={"max_input_chars": 60})) as (app, client):
        r = await client.post("/run-task", json={"user_input": "x" * 61})
        assert r.status_code == 422 and "at most 60 characters" in r.json()["error"]["message"]
        app.state.planner = FailingPlanner()
        r = await client.post("/run-task", json={"user_input": TASK})
        assert r.status_code == 422 and r.json()["error"] == {
            "code": "plan_error",
            "message": "no plan for that",
            "details": None,
        }
        app.state.planner = object()  # anything else (here an AttributeError): a 500, in JSON
        r = await client.post("/run-task", json={"user_input": TASK})
        assert r.status_code == 500 and r.json()["error"]["code"] == "internal"
    assert len(taken) == 3


async def test_a_client_gone_mid_body_is_answered_as_the_route_would(
    settings: Settings, taken: list[str]
) -> None:
    """Not left unanswered (the instrumentator would count that a 5xx)."""
    async with serving(settings) as (app, _):
        incoming: list[dict[str, Any]] = [
            {"type": "http.request", "body": b'{"user_in', "more_body": True},
            {"type": "http.disconnect"},
        ]
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return incoming.pop(0) if incoming else {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": "/run-task", "raw_path": b"/run-task",
            "root_path": "", "query_string": b"", "server": ("api", 80),
            "client": ("127.0.0.1", 5000), "headers": [(b"content-type", b"application/json")],
        }  # fmt: skip
        await app(scope, receive, send)
        assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 400
    assert taken == []
