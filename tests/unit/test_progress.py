from __future__ import annotations

import asyncio

from app.orchestration.progress import ProgressBatcher


async def test_deltas_are_coalesced_in_order_and_flushed_on_close() -> None:
    writes: list[str] = []

    async def write(text: str) -> None:
        await asyncio.sleep(0)
        writes.append(text)

    batch = ProgressBatcher(write, interval_s=0.05, max_chars=100)
    for i in range(300):
        await batch(f"{i % 10}")
    await batch("tail")
    await batch.close()
    assert "".join(writes) == "".join(f"{i % 10}" for i in range(300)) + "tail"
    assert len(writes) == 4 and all(len(w) <= 100 for w in writes[:-1])


async def test_a_quiet_stream_flushes_after_the_interval() -> None:
    writes: list[str] = []

    async def write(text: str) -> None:
        writes.append(text)

    batch = ProgressBatcher(write, interval_s=0.02)
    await batch("hello")
    assert writes == []
    await asyncio.sleep(0.06)
    assert writes == ["hello"]
    await batch.close()
    assert writes == ["hello"]
