"""The SSE side of a task's event log: frames, replay, live tail.

Every frame carries ``id:`` (the event-log entry id), ``event:`` (the type) and ``data:`` (the
JSON written by the worker's script, passed through untouched: it never holds a raw newline,
JSON escapes them). This module is the one place that turns events into SSE bytes.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, cast

from app.api.hub import EventHub

if TYPE_CHECKING:
    from redis.asyncio import Redis

TERMINAL_EVENTS = frozenset({"task_completed", "task_failed", "task_cancelled"})
EVENT_ID = re.compile(r"^\d{1,20}(-\d{1,20})?$")


def valid_event_id(value: str) -> bool:
    return bool(EVENT_ID.match(value))


def frame(entry_id: str, event_type: str, data: str) -> bytes:
    return f"id: {entry_id}\nevent: {event_type}\ndata: {data}\n\n".encode()


def hint(retry_ms: int, comment: str) -> bytes:
    """A comment and the reconnection delay the client should use: no event, no id."""
    return f": {comment}\nretry: {retry_ms}\n\n".encode()


async def replay(redis: Redis, events_key: str, after_id: str) -> list[tuple[str, dict[str, str]]]:
    entries = await redis.xrange(events_key, f"({after_id}", "+")
    return cast(list[tuple[str, dict[str, str]]], entries)


async def replay_stream(
    entries: list[tuple[str, dict[str, str]]], retry_ms: int
) -> AsyncIterator[bytes]:
    """A finished task: its log from Last-Event-ID to the terminal event, then the end."""
    yield hint(retry_ms, "replay")
    for entry_id, fields in entries:
        yield frame(entry_id, fields.get("type", "message"), fields.get("data", "{}"))


async def hint_only(retry_ms: int) -> AsyncIterator[bytes]:
    """What a draining pod answers: 200, a retry hint, the end (the client reconnects elsewhere)."""
    yield hint(retry_ms, "draining, reconnect")


async def live_stream(
    hub: EventHub, task_id: str, after_id: str, retry_ms: int
) -> AsyncIterator[bytes]:
    sub = await hub.subscribe(task_id, after_id)
    try:
        yield hint(retry_ms, "live")
        while True:
            event = await sub.queue.get()  # each event once, in order (Subscription.offer)
            if event is None:  # drain or a client too slow: resume elsewhere from Last-Event-ID
                yield hint(retry_ms, "reconnect")
                return
            entry_id, event_type, data = event
            yield frame(entry_id, event_type, data)
            if event_type in TERMINAL_EVENTS:
                return
    finally:
        hub.unsubscribe(sub)
