"""The dead-letter view: a step that lost its worker on its only attempt, redriven from the page.

The task fails for real: with ``max_attempts=1`` a worker is SIGKILLed while it holds the first
steps, and the next worker's reclaim finds the attempt used up, so the step is dead-lettered and
the task fails. Redriving it from the page resumes the task, and the task view, which had seen
``task_failed``, follows it on to ``task_completed``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from tests.ui.conftest import TASK, Stack, Tab, wait_state

pytestmark = pytest.mark.integration


def test_dead_letter_listed_and_redriven_from_the_page(
    stack: Callable[..., Stack], open_tab: Callable[..., Tab]
) -> None:
    s = stack(executor="noop", max_attempts=1)
    s.start_api()
    doomed = s.start_worker(noop_delay_ms=5000)
    task_id = httpx.post(f"{s.url}/run-task", json={"user_input": TASK}).json()["task_id"]
    deadline = time.monotonic() + 15
    while not any(st["state"] == "running" for st in s.task(task_id)["steps"]):
        assert time.monotonic() < deadline, "no step started"
        time.sleep(0.05)
    doomed.kill()
    s.start_worker()  # reclaims after the visibility timeout: no attempt left, dead-lettered
    deadline = time.monotonic() + 20
    while s.task(task_id)["state"] == "running":
        assert time.monotonic() < deadline, "the task did not fail"
        time.sleep(0.1)
    assert s.task(task_id)["state"] == "failed"

    tab = open_tab(f"{s.url}/#/dlq")
    page = tab.page
    row = page.locator("#dlq-table tbody tr", has_text=task_id[:12]).first
    row.wait_for()
    assert page.text_content("#dlq-depth") == str(page.locator("#dlq-table tbody tr").count())
    assert "lost its worker" in (row.locator(".error-text").text_content() or "")
    step = row.locator("td").nth(2).text_content() or ""
    tab.shot("dlq")

    row.locator("button.redrive").click()
    page.wait_for_selector("#dlq-message:not([hidden])")
    assert "requeued" in (page.text_content("#dlq-message") or "")
    page.wait_for_selector("#dlq-table >> text=Nothing dead-lettered.")
    assert page.is_hidden("#dlq-depth")

    page.click("#dlq-message a")  # "Watch it": the task view, from the start of its log
    wait_state(tab, "completed")
    types = page.eval_on_selector_all("#event-log li", "els => els.map(e => e.dataset.type)")
    assert types.index("task_failed") < types.index("task_completed")  # followed past the failure
    states = page.eval_on_selector_all("g.node", "els => els.map(e => e.dataset.state)")
    assert set(states) == {"completed"}
    # The redriven step ran again as attempt 2: on its node and as a second bar on the timeline.
    assert "attempt 2" in (page.text_content(f"g.node[data-step='{step}'] .node-meta") or "")
    page.wait_for_selector(f"svg.gantt rect[data-step='{step}'][data-attempt='2'][data-kind='run']")
    assert tab.events() == s.log_ids(task_id)
    tab.shot("dlq-redriven-task")
