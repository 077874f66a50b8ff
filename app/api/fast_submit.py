"""``POST /run-task`` with a well-formed body, answered below the middleware that counts and
limits requests and above FastAPI's routing.

Intentional divergence, as for ``/stream`` (``fast_stream``): the route's routing, dependency
resolution (four ``Depends``), exception middleware and response-model re-validation were
about a third of the API's CPU for a submission, on every task's critical path (the worker
starts its first step while the API is still answering). This middleware sits inside the
Prometheus instrumentator and the body limit, so requests are counted and bodies limited as
before; it takes only a request it can answer exactly as the route would (``Content-Type:
application/json`` and a body that validates as ``TaskCreate``) and hands anything else, body
included, to the route: error answers stay FastAPI's and the app's handlers'. It reads the
store, hub, planner and settings from ``app.state`` (dependency overrides do not reach it).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import app_error_response
from app.api.routes import accept_task
from app.models import TaskAccepted, TaskCreate

PATH = "/run-task"
JSON = b"application/json"


def _json_content(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            media = value.split(b";", 1)[0].strip().lower()
            return bool(media == JSON)
    return False


class FastSubmit:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] == PATH
            and _json_content(scope)
        ):
            await self.app(scope, receive, send)
            return
        messages = await _read_body(receive)
        last = messages[-1]
        if last["type"] != "http.request" or last.get("more_body", False):
            # The client left before sending it all: the route answers as it would have.
            await self.app(scope, _replay(messages, receive), send)
            return
        body = b"".join(m.get("body", b"") for m in messages)
        try:
            task = TaskCreate.model_validate_json(body)
        except ValidationError:
            await self.app(scope, _replay(messages, receive), send)
            return
        await _answer(scope, receive, send, task)


async def _answer(scope: Scope, receive: Receive, send: Send, task: TaskCreate) -> None:
    state: Any = scope["app"].state
    try:
        accepted = await accept_task(task, state.store, state.hub, state.planner, state.settings)
    except Exception as exc:  # the exception handlers' answer: this path runs outside them
        accepted = app_error_response(exc)
    if not isinstance(accepted, TaskAccepted):
        await accepted(scope, receive, send)
        return
    content = accepted.model_dump_json().encode()
    headers = [
        (b"content-length", str(len(content)).encode()),
        (b"content-type", JSON),
        (b"location", accepted.task_url.encode()),
    ]
    await send({"type": "http.response.start", "status": 202, "headers": headers})
    await send({"type": "http.response.body", "body": content})


async def _read_body(receive: Receive) -> list[Message]:
    """The request's messages up to its last body part, or up to anything else (a
    disconnect)."""
    messages = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            return messages


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """``receive`` for the route: the messages read already, then the live ones."""
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
