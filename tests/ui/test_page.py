"""The web page in a real browser: a task run live, replay, cancel, an API restart mid-task."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from tests.ui.conftest import TASK, Stack, Tab, submit, wait_state

pytestmark = pytest.mark.integration

STEPS = ["retrieve_1", "retrieve_2", "analyze", "write"]


def node_states(tab: Tab) -> dict[str, str]:
    return dict(
        tab.page.eval_on_selector_all(
            "svg.dag g.node", "els => els.map(e => [e.dataset.step, e.dataset.state])"
        )
    )


def test_submit_watch_every_step_done_and_read_the_report(
    stack: Callable[..., Stack], open_tab: Callable[..., Tab]
) -> None:
    s = stack()
    s.start_api()
    s.start_worker()
    tab = open_tab(s.url)
    task_id = submit(tab)
    wait_state(tab, "completed")
    page = tab.page
    page.wait_for_selector("#metrics-table:not([hidden]) tbody tr")

    assert node_states(tab) == dict.fromkeys(STEPS, "completed")
    assert page.text_content("#task-input-text") == TASK
    # The report is Markdown rendered as HTML, with its numbered sources as links.
    assert page.text_content("#report h1") == "Redis Streams vs Kafka for job queues"
    assert page.locator("#report h2", has_text="Sources").count() == 1
    assert page.locator("#report a[href^='https://']").count() >= 3
    assert page.locator("#sources li").count() >= 3
    # Streamed text of each step, timeline bars and per-step metrics.
    assert "searching" in (page.text_content(".step[data-step='retrieve_1'] .step-text") or "")
    assert page.locator("svg.gantt rect[data-kind='run']").count() == 4
    assert page.locator("#metrics-table tbody tr").count() == 4
    assert page.text_content("#totals [data-k='steps'] dd") == "4 / 4 done"
    assert float(page.text_content("#totals [data-k='cost units'] dd") or 0) > 0
    # Every event of the log arrived once, in order.
    assert tab.events() == s.log_ids(task_id)
    assert page.evaluate("window.__duplicates") == 0
    assert tab.errors == []
    tab.shot("task-completed")

    # A recent task opened from the list replays from the event log.
    replay = open_tab(s.url)
    replay.page.click(f"#recent a[data-task='{task_id}']")
    wait_state(replay, "completed")
    replay.page.wait_for_selector("#report h1")
    assert node_states(replay) == dict.fromkeys(STEPS, "completed")
    assert replay.events() == s.log_ids(task_id)
    assert replay.page.text_content("#conn") == "ended"
    replay.shot("task-replayed")


def test_cancel_a_slow_task(stack: Callable[..., Stack], open_tab: Callable[..., Tab]) -> None:
    s = stack(executor="noop")
    s.start_api()
    s.start_worker(noop_delay_ms=3000)
    tab = open_tab(s.url)
    task_id = submit(tab)
    page = tab.page
    page.wait_for_selector("g.node[data-step='retrieve_1'][data-state='running']")
    assert node_states(tab)["write"] == "pending"
    page.wait_for_selector(".node-time >> text=/running \\d/")  # the live timer ticks
    tab.shot("task-running")

    page.click("#cancel-btn")
    wait_state(tab, "cancelled", timeout_ms=10_000)
    assert set(node_states(tab).values()) == {"cancelled"}
    assert page.is_hidden("#cancel-btn")
    assert "cancelled" in (page.text_content("#report") or "")
    assert s.task(task_id)["state"] == "cancelled"
    assert tab.events() == s.log_ids(task_id)
    assert tab.errors == []
    tab.shot("task-cancelled")


def test_page_survives_an_api_restart_mid_task(
    stack: Callable[..., Stack], open_tab: Callable[..., Tab]
) -> None:
    s = stack(executor="noop", drain_s=0.5)
    api = s.start_api()
    s.start_worker(noop_delay_ms=2000)
    tab = open_tab(s.url)
    task_id = submit(tab)
    page = tab.page
    page.wait_for_selector("g.node[data-step='retrieve_1'][data-state='running']")
    seen_before = len(tab.events())

    api.terminate()  # SIGTERM: drain (streams end after a retry hint), then exit
    page.wait_for_selector("#conn[data-state='reconnecting']", timeout=10_000)
    tab.shot("api-down")
    port = int(api.url.rsplit(":", 1)[1])
    time.sleep(1.0)  # the API stays down for a while; the task runs on meanwhile
    s.start_api(port=port)
    assert s.task(task_id)["state"] == "running", "the restart should happen mid-task"

    wait_state(tab, "completed")
    ids = tab.events()
    assert len(ids) > seen_before
    assert ids == s.log_ids(task_id)  # no gap, no repeat, in order
    assert page.evaluate("window.__duplicates") == 0
    assert node_states(tab) == dict.fromkeys(STEPS, "completed")
    # Only the connection attempts made while the API was down may complain.
    assert [e for e in tab.errors if "ERR_CONNECTION_REFUSED" not in e] == []
    tab.shot("api-restarted")
    assert httpx.get(f"{s.url}/readyz").status_code == 200
