"""Group commit: one server call for the requests that arrive while the previous one is in
flight.

A lone request goes at once; under load the requests queue behind the call in flight and go
together in the next one, so the batch grows with the load and the server pays one call and
one round trip for it (the workers' :class:`~app.orchestration.recorder.Recorder` does the
same for step outcomes, with ACK handling of its own). Used for task submissions and for the
reads that open a stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Answer = TypeVar("Answer")


class GroupCommit(Generic[Item, Answer]):
    """``send`` makes the call for a batch and answers each item in order, or with the
    exception that failed that one item; ``max_batch`` bounds a call's size."""

    def __init__(
        self,
        send: Callable[[list[Item]], Awaitable[Sequence[Answer | Exception]]],
        max_batch: int,
    ) -> None:
        self._send = send
        self._max_batch = max_batch
        self._queue: list[tuple[Item, asyncio.Future[Answer]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def __call__(self, item: Item) -> Answer:
        """``item``'s answer, once the call that carries it is back. A failed call raises its
        error in every request it carried; a request cancelled before its call goes is not
        sent."""
        answer: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._queue.append((item, answer))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush())
            self._flusher.add_done_callback(self._flusher_done)
        return await answer

    async def _flush(self) -> None:
        try:
            while self._queue:
                batch = [entry for entry in self._queue[: self._max_batch] if not entry[1].done()]
                del self._queue[: self._max_batch]
                if batch:
                    await self._commit(batch)
        finally:
            # At once, not in the done-callback: a request queued between this task's end and
            # its callbacks must start a new flusher, not wait on this one.
            self._flusher = None
            self._cancel_queued()

    def _flusher_done(self, task: asyncio.Task[None]) -> None:
        if self._flusher is task:  # cancelled before it ever ran: its finally did not either
            self._flusher = None
            self._cancel_queued()

    def _cancel_queued(self) -> None:
        """Only requests of a flusher that was cancelled (the loop shutting down) are left."""
        for _, answer in self._queue:
            answer.cancel()
        self._queue.clear()

    async def _commit(self, batch: list[tuple[Item, asyncio.Future[Answer]]]) -> None:
        try:
            answers = await self._send([item for item, _ in batch])
            if len(answers) != len(batch):
                raise RuntimeError(f"a batch of {len(batch)} got {len(answers)} answers")
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:
            answers = [exc] * len(batch)
        for (_, future), answer in zip(batch, answers, strict=True):
            if future.done():  # its request was cancelled
                continue
            if isinstance(answer, Exception):
                future.set_exception(answer)
            else:
                future.set_result(answer)
