"""The SSE bytes of a task's event log: event frames, retry hints, replay bodies.

Every frame carries ``id:`` (the event-log entry id), ``event:`` (the type) and ``data:`` (the
JSON written by the worker's script, passed through untouched: it never holds a raw newline,
JSON escapes them). This module is the one place that turns events into SSE bytes.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.api.hub import Event

TERMINAL_EVENTS = frozenset({"task_completed", "task_failed", "task_cancelled"})
EVENT_ID = re.compile(r"^(\d{1,20})(?:-(\d{1,20}))?$")
MAX_ID_PART = 2**64 - 1  # a stream id is two unsigned 64-bit integers


def valid_event_id(value: str) -> bool:
    found = EVENT_ID.match(value)
    if found is None:
        return False
    parts = [int(p) for p in found.groups() if p is not None]
    # The largest id has nothing after it, and Redis rejects the exclusive range "(max-max".
    return all(p <= MAX_ID_PART for p in parts) and parts != [MAX_ID_PART, MAX_ID_PART]


def frame(entry_id: str, event_type: str, data: str) -> bytes:
    return f"id: {entry_id}\nevent: {event_type}\ndata: {data}\n\n".encode()


def hint(retry_ms: int, comment: str) -> bytes:
    """A comment and the reconnection delay the client should use: no event, no id."""
    return f": {comment}\nretry: {retry_ms}\n\n".encode()


def replay_body(events: list[Event], retry_ms: int) -> bytes:
    """A finished task: its log from Last-Event-ID to the terminal event, in one body."""
    return hint(retry_ms, "replay") + b"".join(frame(*event) for event in events)
