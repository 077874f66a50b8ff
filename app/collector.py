"""When the cyclic garbage collector may pause a long-lived API process.

CPython starts a full collection whenever the objects that survived into its oldest generation
have grown by a quarter since the last one. An API process holding SSE streams keeps ~70
tracked objects per open stream (coroutines, tasks, futures, bound methods, the transport):
at 5,000 streams a full collection walks ~340,000 objects and stops the event loop for
100-250 ms. Those collections ran over and over while streams opened, and again in the middle
of an event burst, where the pause was the whole delivery tail of the fan-out benchmark.

So the oldest generation is collected on a clock instead of on growth: once every
``interval_s``, with a backstop should allocations outrun the clock. Young collections keep
their usual thresholds. What the process holds once started (modules, routes, models) is
frozen out of the collector's sight for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator

FULL_COLLECTION_EVERY_S = 60.0
# gc.set_threshold's third value: middle-generation collections between full ones (default 10,
# about 70,000 net allocations, and only once the oldest generation grew by a quarter). A
# backstop rather than a trigger: ~7 million net allocations within one clock period.
BACKSTOP = 1000


async def _collect_every(interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        gc.collect()


@contextlib.asynccontextmanager
async def full_collections_on_a_clock(
    interval_s: float = FULL_COLLECTION_EVERY_S,
) -> AsyncIterator[None]:
    """For the lifetime of an event loop: freeze what exists, then run full collections every
    ``interval_s``, and on growth only past the backstop. On exit the collector is as it was."""
    young, middle, old = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(young, middle, BACKSTOP)
    task = asyncio.create_task(_collect_every(interval_s), name="gc-full-collections")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        gc.set_threshold(young, middle, old)
        gc.unfreeze()
