"""Inbox.tick: the hub's keep-alive, one timer for every stream instead of one per wait."""

from __future__ import annotations

import asyncio

from app.api.hub import KEEPALIVE, Inbox

EVENT = ("1-0", "step_started", "{}")


async def waiting(inbox: Inbox) -> asyncio.Task[object]:
    task = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)  # the consumer is now waiting
    return task


async def test_a_consumer_waiting_a_whole_interval_gets_a_keep_alive() -> None:
    inbox = Inbox()
    got = await waiting(inbox)
    inbox.tick()  # half an interval: too early
    await asyncio.sleep(0)
    assert not got.done()
    inbox.tick()
    assert await got is KEEPALIVE
    got = await waiting(inbox)
    inbox.tick()  # the next keep-alive is two ticks away again
    await asyncio.sleep(0)
    assert not got.done()
    inbox.tick()
    assert await got is KEEPALIVE


async def test_an_event_resets_the_interval() -> None:
    inbox = Inbox()
    inbox.tick()
    inbox.put_nowait(EVENT)  # written since the tick: not quiet
    assert await inbox.get() == EVENT
    got = await waiting(inbox)
    inbox.tick()
    await asyncio.sleep(0)
    assert not got.done()
    inbox.tick()
    assert await got is KEEPALIVE


async def test_nothing_is_queued_for_a_consumer_that_is_not_waiting() -> None:
    inbox = Inbox()
    for _ in range(3):
        inbox.tick()
    assert inbox.empty()  # busy writing (or not started): it wants no ping behind its events
    inbox.put_nowait(None)
    for _ in range(3):
        inbox.tick()
    assert inbox.qsize() == 1 and await inbox.get() is None
