"""Inbox.tick: the hub's keep-alive, one timer for every stream instead of one per wait."""

from __future__ import annotations

import asyncio

from app.api.hub import KEEPALIVE, Inbox

EVENT = ("1-0", "step_started", "{}")


async def waiting(inbox: Inbox) -> asyncio.Task[object]:
    task = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)  # the consumer is now waiting
    return task


async def keep_alive_on_the_second_tick(inbox: Inbox) -> None:
    """A consumer that starts waiting now gets nothing at the first tick (half an interval:
    too early) and ``KEEPALIVE`` at the second."""
    got = await waiting(inbox)
    inbox.tick()
    await asyncio.sleep(0)
    assert not got.done()
    inbox.tick()
    assert await got is KEEPALIVE


async def test_a_consumer_waiting_a_whole_interval_gets_a_keep_alive() -> None:
    inbox = Inbox()
    await keep_alive_on_the_second_tick(inbox)
    await keep_alive_on_the_second_tick(inbox)  # the next one is two ticks away again


async def test_an_event_resets_the_interval() -> None:
    inbox = Inbox()
    inbox.tick()
    inbox.put_nowait(EVENT)  # written since the tick: not quiet
    assert await inbox.get() == EVENT
    await keep_alive_on_the_second_tick(inbox)


async def test_nothing_is_queued_for_a_consumer_that_is_not_waiting() -> None:
    inbox = Inbox()
    for _ in range(3):
        inbox.tick()
    assert inbox.empty()  # busy writing (or not started): it wants no ping behind its events
    inbox.put_nowait(None)
    for _ in range(3):
        inbox.tick()
    assert inbox.qsize() == 1 and await inbox.get() is None
