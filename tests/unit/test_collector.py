"""app.collector: full collections on a clock, never on growth (the API's SSE tail)."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

from app.collector import full_collections_on_a_clock


def _full_collections() -> int:
    return int(gc.get_stats()[2]["collections"])


async def test_growth_no_longer_starts_a_full_collection() -> None:
    before = gc.get_threshold()
    # Past a quarter of what the process holds already, whatever ran before this test.
    growth = len(gc.get_objects()) // 2 + 300_000
    async with full_collections_on_a_clock(interval_s=3600):
        assert gc.get_freeze_count() > 0
        start = _full_collections()
        # Long-lived tracked objects, as thousands of open streams hold: without the policy,
        # each quarter of growth of the oldest generation starts a full collection.
        kept = [[i] for i in range(growth)]
        assert _full_collections() == start
        del kept
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
    baseline = _full_collections()
    kept = [[i] for i in range(growth)]
    assert _full_collections() > baseline  # the default policy, for contrast
    del kept


async def test_full_collections_run_on_the_clock() -> None:
    seen: list[int] = []

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "stop":
            seen.append(info["generation"])

    gc.callbacks.append(on_gc)
    try:
        async with full_collections_on_a_clock(interval_s=0.01):
            for _ in range(200):
                if 2 in seen:
                    break
                await asyncio.sleep(0.01)
    finally:
        gc.callbacks.remove(on_gc)
    assert 2 in seen
