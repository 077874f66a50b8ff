"""Drain state of an API process.

On SIGTERM the process keeps listening for ``AGENTIC_DRAIN_S`` seconds while /readyz answers
503 (so the endpoint controller and load balancers stop sending traffic), every open SSE stream
ends at an event boundary after a ``retry:`` hint (clients resume on another pod with
Last-Event-ID), and a /stream request that still arrives gets a 200 that only carries the hint:
a browser's EventSource gives up for good after a non-200 answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class DrainState:
    def __init__(self) -> None:
        self.event = asyncio.Event()
        self._callbacks: list[Callable[[], None]] = []

    def on_start(self, callback: Callable[[], None]) -> None:
        self._callbacks.append(callback)

    @property
    def draining(self) -> bool:
        return self.event.is_set()

    def start(self) -> None:
        if self.event.is_set():
            return
        self.event.set()
        for callback in self._callbacks:
            callback()

    async def wait(self) -> None:
        await self.event.wait()
