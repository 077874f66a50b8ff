"""Group commit: a lone request goes at once, what arrives meanwhile goes in the next call."""

from __future__ import annotations

import asyncio

import pytest

from app.orchestration.group_commit import GroupCommit


class Server:
    """Answers each item doubled, one call at a time; an item of -1 fails alone."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []
        self.release = asyncio.Event()
        self.fail_next: Exception | None = None

    async def send(self, items: list[int]) -> list[int | Exception]:
        self.calls.append(items)
        await self.release.wait()
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc
        return [ValueError(f"bad {i}") if i < 0 else 2 * i for i in items]


async def test_what_arrives_during_a_call_goes_in_the_next_one() -> None:
    server = Server()
    commit = GroupCommit(server.send, max_batch=3)
    first = asyncio.ensure_future(commit(1))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert server.calls == [[1]]  # alone: at once
    queued = [asyncio.ensure_future(commit(i)) for i in (2, -1, 4, 5)]
    await asyncio.sleep(0)
    server.release.set()
    assert await first == 2
    results = await asyncio.gather(*queued, return_exceptions=True)
    assert results[0] == 4 and isinstance(results[1], ValueError) and results[2:] == [8, 10]
    assert server.calls == [[1], [2, -1, 4], [5]]  # at most max_batch per call
    assert await commit(6) == 12 and server.calls[-1] == [6]  # idle again: at once


async def test_a_failed_call_fails_each_of_its_requests_and_the_next_goes_on() -> None:
    server = Server()
    commit = GroupCommit(server.send, max_batch=8)
    server.fail_next = ConnectionError("gone")
    failing = [asyncio.ensure_future(commit(i)) for i in (1, 2)]
    await asyncio.sleep(0)
    later = asyncio.ensure_future(commit(3))
    cancelled = asyncio.ensure_future(commit(4))
    await asyncio.sleep(0)
    cancelled.cancel()
    server.release.set()
    for request in failing:
        with pytest.raises(ConnectionError):
            await request
    assert await later == 6
    assert cancelled.cancelled()
    assert server.calls == [[1, 2], [3]]  # the cancelled request was not sent


async def test_a_short_answer_fails_the_batch_rather_than_leaving_one_waiting() -> None:
    async def short(items: list[int]) -> list[int | Exception]:
        return items[:-1]

    commit = GroupCommit(short, max_batch=8)
    results = await asyncio.gather(commit(1), commit(2), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)


async def test_cancelled_flusher_cancels_what_waits() -> None:
    server = Server()
    commit = GroupCommit(server.send, max_batch=1)
    requests = [asyncio.ensure_future(commit(i)) for i in (1, 2)]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert commit._flusher is not None
    commit._flusher.cancel()  # the loop shutting down
    results = await asyncio.gather(*requests, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in results)


async def test_a_flusher_cancelled_before_it_ran_leaves_nothing_stuck() -> None:
    server = Server()
    server.release.set()
    commit = GroupCommit(server.send, max_batch=8)
    request = asyncio.ensure_future(commit(1))
    await asyncio.sleep(0)  # queued, its flusher created but not yet run
    assert commit._flusher is not None
    commit._flusher.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request
    assert await commit(2) == 4  # a new flusher, not a wait on the dead one
    assert server.calls == [[2]]
