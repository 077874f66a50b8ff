"""What a live SSE stream hands the server, message by message: every ``send`` is a socket
write and a wake-up of the client, so the writes a stream makes are part of its contract."""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis

from app.api.hub import KEEPALIVE, EventHub, Subscription
from app.api.sse import frame, hint
from app.api.stream_response import LiveStream
from app.keys import Keys

LIVE = hint(1000, "live")


async def run_stream(
    events: list[Any], running_after_failure: bool = False, later: list[Any] | None = None
) -> tuple[list[dict[str, Any]], int]:
    """The ASGI messages a stream sends for ``events`` queued before it starts and ``later``
    ones queued once it waits (None: the end marker), and how often it asked whether the task
    still runs."""
    redis = Redis()  # never connected: the stream's hub only forgets the subscription
    hub = EventHub(redis, redis, Keys("t"))
    sub = Subscription("task-1", "0-0")
    for event in events:
        sub.queue.put_nowait(event)
    asked = 0

    async def goes_on(failed_id: str) -> bool:
        nonlocal asked
        asked += 1
        queued = [*events, *(later or [])]
        assert failed_id == next(e[0] for e in queued if e and e[1] == "task_failed")
        return running_after_failure

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()  # the client stays connected
        return {"type": "http.disconnect"}

    stream = LiveStream(hub, sub, 1000, goes_on)
    running = asyncio.create_task(stream({"type": "http"}, receive, send))
    for _ in range(5):
        await asyncio.sleep(0)  # the stream waits on its queue by now
    if later:  # it waits with its headers out, and nothing else
        assert [m["type"] for m in sent] == ["http.response.start"]
    for event in later or []:
        sub.queue.put_nowait(event)
    await asyncio.wait_for(running, timeout=5)
    await redis.aclose()
    return sent, asked


def bodies(sent: list[dict[str, Any]]) -> list[tuple[bytes, bool]]:
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    return [(m["body"], m["more_body"]) for m in sent[1:]]


STARTED = ("1-0", "step_started", '{"type":"step_started"}')
COMPLETED = ("2-0", "task_completed", '{"type":"task_completed"}')
FAILED = ("2-0", "task_failed", '{"type":"task_failed"}')


async def test_a_stream_that_has_its_events_writes_them_and_its_end_at_once() -> None:
    """The live hint goes with the first batch, and a completed task's last event with the
    end of the response: one write for the whole stream, not three."""
    sent, asked = await run_stream([STARTED, COMPLETED])
    assert bodies(sent) == [(LIVE + frame(*STARTED) + frame(*COMPLETED), False)]
    assert asked == 0  # completed is final: no Redis read at the end


async def test_the_live_hint_leads_the_first_write_whatever_it_holds() -> None:
    sent, _ = await run_stream([KEEPALIVE, None])
    assert bodies(sent) == [(LIVE + b": ping\n\n" + hint(1000, "reconnect"), False)]


async def test_a_failed_task_is_asked_about_before_its_stream_ends() -> None:
    """A failed task can be redriven: its stream writes task_failed, asks, and only then
    ends (or goes on, for a redriven task)."""
    sent, asked = await run_stream([FAILED])
    assert bodies(sent) == [(LIVE + frame(*FAILED), True), (b"", False)]
    assert asked == 1
    later = ("3-0", "task_completed", '{"type":"task_completed"}')
    sent, asked = await run_stream([FAILED, later], running_after_failure=True)
    assert bodies(sent) == [(LIVE + frame(*FAILED), True), (frame(*later), False)]
    assert asked == 1


async def test_a_stream_that_waits_for_its_first_event_sends_the_hint_with_it() -> None:
    """Nothing to catch up on: the headers go out at once, the hint with the first event."""
    sent, _ = await run_stream([], later=[STARTED, COMPLETED])
    assert sent[0]["type"] == "http.response.start"
    assert bodies(sent) == [(LIVE + frame(*STARTED) + frame(*COMPLETED), False)]
