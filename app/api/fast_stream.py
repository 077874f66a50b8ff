"""``GET /stream/{task_id}`` served from the ASGI entry point, past the middleware stack.

Intentional divergence from routing it like every other endpoint: an open SSE stream lives
for minutes inside every layer it was routed through, and each frame it sends goes back out
through each layer's ``send`` wrapper. With the middleware stack (server errors, body limit,
Prometheus, exceptions, FastAPI's own) that was ~30% of the API's CPU while thousands of
streams were being fed, and a dozen coroutine frames of memory per open stream. None of those
layers does anything for this route: it has no body, the Prometheus instrumentator excludes it
(``agentic_sse_open_streams`` counts streams), and its errors are ours to render. The FastAPI
route in ``routes.py`` still documents it in the OpenAPI schema; both call
:func:`app.api.routes.open_stream`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from app.api.errors import app_error_response
from app.api.routes import open_stream

if TYPE_CHECKING:
    from starlette.responses import Response

PREFIX = "/stream/"


def is_stream_request(scope: Scope) -> bool:
    return bool(
        scope["type"] == "http" and scope["method"] == "GET" and scope["path"].startswith(PREFIX)
    )


def _last_event_id(scope: Scope) -> str | None:
    """As the route reads it: a non-empty ``Last-Event-ID`` header, else the last ``?after=``."""
    for name, value in scope["headers"]:
        if name == b"last-event-id" and value:
            return str(value.decode("latin-1"))
    after = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("after")
    return after[-1] if after else None


async def serve_stream(app: FastAPI, scope: Scope, receive: Receive, send: Send) -> None:
    state: Any = app.state
    response: Response
    try:
        response = await open_stream(
            state.store,
            state.hub,
            state.drain,
            state.settings,
            scope["path"][len(PREFIX) :],
            _last_event_id(scope),
        )
    except Exception as exc:  # the exception handlers' answer: this path runs outside them
        response = app_error_response(exc)
    await response(scope, receive, send)


class AgenticAPI(FastAPI):
    """FastAPI, with /stream requests taken before the middleware stack (see above)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if is_stream_request(scope):
            await serve_stream(self, scope, receive, send)
            return
        await super().__call__(scope, receive, send)
