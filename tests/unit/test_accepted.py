"""The API's memory of the tasks it has just accepted is bounded in time and in size."""

from __future__ import annotations

from app.api.accepted import DEFAULT_KEEP_S, AcceptedTasks, keep_s_for


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def first(task_id: str) -> tuple[str, str, str]:
    return f"1-{task_id}", "plan_created", f'{{"task_id":"{task_id}"}}'


def test_an_entry_serves_every_open_until_it_expires() -> None:
    clock = Clock()
    accepted = AcceptedTasks(keep_s=10, clock=clock)
    accepted.remember("a", first("a"))
    assert accepted.first_event("a") == first("a")
    clock.now += 9.9
    assert accepted.first_event("a") == first("a")  # again: the bench opens ten per task
    clock.now += 0.1
    assert accepted.first_event("a") is None
    assert len(accepted) == 0  # the expired entry went at the look-up
    assert accepted.first_event("never") is None


def test_expired_entries_go_when_another_task_is_remembered() -> None:
    clock = Clock()
    accepted = AcceptedTasks(keep_s=10, clock=clock)
    accepted.remember("a", first("a"))
    clock.now += 5
    accepted.remember("b", first("b"))
    clock.now += 5
    accepted.remember("c", first("c"))  # a is 10 s old: dropped without a look-up
    assert len(accepted) == 2
    assert [accepted.first_event(t) for t in "abc"] == [None, first("b"), first("c")]


def test_at_most_max_tasks_are_kept_oldest_dropped_first() -> None:
    accepted = AcceptedTasks(keep_s=10, max_tasks=3, clock=Clock())
    for task_id in "abcde":
        accepted.remember(task_id, first(task_id))
    assert len(accepted) == 3
    assert [accepted.first_event(t) is not None for t in "abcde"] == [False] * 2 + [True] * 3


def test_at_most_max_bytes_of_plans_are_kept_oldest_dropped_first() -> None:
    """An LLM's plan can be ~100 KB: the memory is bounded by its data too, not by count alone."""
    big = ("1-1", "plan_created", "x" * 400)
    accepted = AcceptedTasks(keep_s=10, max_bytes=1000, clock=Clock())
    for task_id in "abc":
        accepted.remember(task_id, big)
    assert [accepted.first_event(t) is not None for t in "abc"] == [False, True, True]
    accepted.remember("b", first("b"))  # remembered again: counted once, with its new size
    accepted.remember("d", big)
    assert [accepted.first_event(t) is not None for t in "bcd"] == [True, True, True]


def test_never_kept_longer_than_half_the_task_ttl() -> None:
    """A task served from memory must still have its log when the shared reader reads it."""
    assert keep_s_for(7 * 24 * 3600) == DEFAULT_KEEP_S
    assert keep_s_for(6) == 3
    clock = Clock()
    accepted = AcceptedTasks(keep_s_for(6), clock=clock)
    accepted.remember("a", first("a"))
    clock.now += 3
    assert accepted.first_event("a") is None
