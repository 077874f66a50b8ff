"""The ASGI response of a live SSE stream.

Intentional divergence from sse-starlette (which the first version used): it runs a task
group of three or four tasks per stream (body, pings, disconnect listener, shutdown watcher).
At thousands of open streams per process that was ~58 KiB of memory per stream and a large
share of the API's CPU. Here a stream is one coroutine plus one small task that waits for the
client's disconnect: pings, drain and slow-client cuts all arrive through the subscription's
queue (the hub's keep-alive tick, ``Subscription.end``), and events that queued up together go
out in one write.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from app.api.hub import KEEPALIVE, EventHub, Subscription
from app.api.sse import TERMINAL_EVENTS, frame, hint

SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
PING = b": ping\n\n"
MAX_BATCH = 64


def event_stream_response(body: bytes) -> Response:
    """A whole SSE answer known up front (a finished task's replay, a draining pod's hint)."""
    return Response(body, headers={k.decode(): v.decode() for k, v in SSE_HEADERS})


class LiveStream(Response):
    def __init__(
        self,
        hub: EventHub,
        sub: Subscription,
        retry_ms: int,
        goes_on: Callable[[str], Awaitable[bool]],
    ) -> None:
        super().__init__(status_code=200, media_type="text/event-stream")
        #: Asked at a task_failed event (with its id): a task redriven after it failed has its
        #: old task_failed in the log, and its stream must go on past it.
        self.goes_on = goes_on
        self.hub = hub
        self.sub = sub
        self.retry_ms = retry_ms

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        watcher = asyncio.create_task(self._watch_disconnect(receive))
        try:
            await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
            # The live hint goes out with the first batch, not on its own: every write is a
            # syscall here and a wake-up of the client, and the headers already tell it the
            # stream is open.
            first = hint(self.retry_ms, "live")
            while await self._next(send, first):
                first = b""
        except OSError:
            pass  # the client went away mid-write
        finally:
            watcher.cancel()
            self.hub.unsubscribe(self.sub)

    async def _next(self, send: Send, prefix: bytes = b"") -> bool:
        """Send what the queue holds (waiting for it) after ``prefix``; False once the
        response is complete."""
        queue = self.sub.queue
        chunks: list[bytes] = [prefix] if prefix else []
        event = await queue.get()
        while True:
            if event is None:  # drain, disconnect, or a client too slow to keep up
                chunks.append(hint(self.retry_ms, "reconnect"))
                await self._body(send, b"".join(chunks), more=False)
                return False
            if event is KEEPALIVE:  # a whole ping interval without a write
                chunks.append(PING)
            else:
                entry_id, event_type, data = event
                chunks.append(frame(entry_id, event_type, data))
                if event_type in TERMINAL_EVENTS:
                    # Only a failed task can come back (redrive); completed and cancelled are
                    # final, so their stream ends in the same write as their last event (one
                    # write less per stream: 5,000 of them in the bench's fan-out burst), and
                    # asking Redis at each of thousands of streams' last event was a third of
                    # the API's CPU while they ended.
                    if event_type != "task_failed":
                        await self._body(send, b"".join(chunks), more=False)
                        return False
                    await self._body(send, b"".join(chunks))
                    if await self.goes_on(entry_id):
                        return True
                    await self._body(send, b"", more=False)
                    return False
            if queue.empty() or len(chunks) >= MAX_BATCH:
                await self._body(send, b"".join(chunks))
                return True
            event = queue.get_nowait()

    @staticmethod
    async def _body(send: Send, data: bytes, more: bool = True) -> None:
        await send({"type": "http.response.body", "body": data, "more_body": more})

    async def _watch_disconnect(self, receive: Receive) -> None:
        with contextlib.suppress(Exception):
            while (await receive())["type"] != "http.disconnect":
                pass
        self.sub.end()
