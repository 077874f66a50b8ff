"""Coalesces an agent's streamed text into few ``step_progress`` events.

An LLM streams a token every few milliseconds; one event per token would make a 2,000-token
answer 2,000 Redis writes and 2,000 SSE frames. Deltas are buffered and flushed as one event
when ``MAX_CHARS`` have gathered or ``INTERVAL_S`` has passed since the first unflushed one,
and whatever is left is flushed before the step's completion is recorded (the progress script
refuses text once the step is no longer running, so order is kept).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

INTERVAL_S = 0.1
MAX_CHARS = 512

Writer = Callable[[str], Awaitable[object]]


class ProgressBatcher:
    def __init__(
        self, write: Writer, interval_s: float = INTERVAL_S, max_chars: int = MAX_CHARS
    ) -> None:
        self._write = write
        self._interval_s = interval_s
        self._max_chars = max_chars
        self._parts: list[str] = []
        self._size = 0
        self._timer: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # flushes go out one at a time, in order

    @property
    def pending(self) -> bool:
        """Text is buffered, not yet written."""
        return bool(self._parts)

    async def __call__(self, text: str) -> None:
        if not text:
            return
        self._parts.append(text)
        self._size += len(text)
        if self._size >= self._max_chars:
            await self.flush()
        elif self._timer is None:
            self._timer = asyncio.create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(self._interval_s)
        self._timer = None
        await self.flush()

    async def flush(self) -> None:
        async with self._lock:
            if not self._parts:
                return
            text, self._parts, self._size = "".join(self._parts), [], 0
            await self._write(text)

    async def close(self) -> None:
        """Flush what is left; call before the step's outcome is recorded."""
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer
        await self.flush()
