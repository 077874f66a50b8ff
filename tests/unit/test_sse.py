from __future__ import annotations

import asyncio

import pytest

from app.api.hub import Subscription, parse_id
from app.api.sse import frame, hint, valid_event_id


def test_frame_bytes_are_exact() -> None:
    assert (
        frame("17-0", "step_started", '{"a":1}')
        == b'id: 17-0\nevent: step_started\ndata: {"a":1}\n\n'
    )
    assert hint(1500, "draining") == b": draining\nretry: 1500\n\n"


def test_event_id_validation_and_ordering() -> None:
    for good in ["0", "0-0", "1700000000000-12"]:
        assert valid_event_id(good)
    for bad in [
        "",
        "abc",
        "1-2-3",
        "-1",
        "1-",
        " 1-0",
        "1" * 21,
        "99999999999999999999",
        "1-18446744073709551616",
        "18446744073709551615-18446744073709551615",
    ]:
        assert not valid_event_id(bad)
    assert parse_id("5-10") > parse_id("5-9") > parse_id("4-99") and parse_id("7") == (7, 0)


async def test_a_slow_subscriber_is_cut_not_grown_without_bound() -> None:
    sub = Subscription("t", "0-0", limit=3)
    for i in range(1, 10):
        sub.offer((f"{i}-0", "x", "{}"))
    items = [sub.queue.get_nowait() for _ in range(sub.queue.qsize())]
    # Regression: the end marker used to evict the oldest queued event, which then never
    # reached the client (it resumes after the last id it got). Now the first three stay.
    assert items == [("1-0", "x", "{}"), ("2-0", "x", "{}"), ("3-0", "x", "{}"), None]


async def test_held_events_wait_behind_the_catch_up() -> None:
    sub = Subscription("t", "0-0", held=[])
    sub.offer(("9-0", "x", "{}"))
    assert sub.queue.empty() and sub.held == [("9-0", "x", "{}")]


async def test_inbox_wakes_its_reader_and_survives_a_timed_out_wait() -> None:
    from app.api.hub import Inbox

    inbox = Inbox()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await inbox.get()
    reader = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    inbox.put_nowait(("1-0", "x", "{}"))
    inbox.put_nowait(None)
    assert await reader == ("1-0", "x", "{}")
    assert inbox.qsize() == 1 and inbox.get_nowait() is None and inbox.empty()
    with pytest.raises(IndexError):
        inbox.get_nowait()


def test_raw_xread_replies_become_events_in_both_protocols() -> None:
    from app.api.hub import as_event_flat
    from app.redis_lane import stream_replies

    entries = [["1-0", ["type", "step_started", "data", "{}"]], ["1-1", ["data", "{}", "x", "y"]]]
    resp3 = {"p:task:t:events": entries}
    resp2 = [["p:task:t:events", entries]]
    for reply in (resp3, resp2):
        ((stream, got),) = list(stream_replies(reply))
        assert stream == "p:task:t:events"
        # The scripts' layout is read in place; any other goes through a dict.
        assert [as_event_flat(i, f) for i, f in got] == [
            ("1-0", "step_started", "{}"),
            ("1-1", "message", "{}"),
        ]
