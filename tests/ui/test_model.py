"""model.js, the page's task model, fed recorded event logs in the browser (no API needed)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from app.api.ui import STATIC_DIR
from tests.ui.conftest import Tab
from tests.unit.test_console import COMPLETED, data, queued_lists

if TYPE_CHECKING:
    from playwright.sync_api import Route

ORIGIN = "http://model.test"
#: Applies the log; after each event, every step's [state, attempt, queuedTs of that attempt].
FEED = """async (log) => {
  const { applyEvent, newTask } = await import('/model.js');
  const task = newTask(log[0].task_id);
  const seen = log.map((e) => {
    applyEvent(task, e);
    return Object.fromEntries([...task.steps.values()].map((s) => {
      const run = s.attempts.find((a) => a.attempt === s.attempt);
      return [s.id, [s.state, s.attempt, run ? run.queuedTs : null]];
    }));
  });
  return { seen, events: task.events };
}"""


@pytest.fixture
def model_tab(open_tab: Callable[..., Tab]) -> Tab:
    """A blank page of its own origin that can import model.js, served from the source tree."""
    tab = open_tab("about:blank")

    def serve(route: Route) -> None:
        if route.request.url == f"{ORIGIN}/model.js":
            route.fulfill(path=STATIC_DIR / "model.js", content_type="text/javascript")
        else:
            route.fulfill(body="<!doctype html><title>model.js</title>", content_type="text/html")

    tab.page.route(f"{ORIGIN}/**", serve)
    tab.page.goto(f"{ORIGIN}/")
    return tab


@pytest.mark.parametrize(
    "log", [COMPLETED, queued_lists(COMPLETED)], ids=["step_queued events", "queued lists"]
)
def test_model_marks_steps_queued_by_step_queued_events_or_queued_lists(
    model_tab: Tab, log: list[dict[str, Any]]
) -> None:
    out = model_tab.page.evaluate(FEED, [data(e) for e in log])
    for e, steps in zip(log, out["seen"], strict=True):
        for q in e.get("queued", [e] if e["type"] == "step_queued" else []):
            assert steps[q["step_id"]] == ["queued", q["attempt"], e["ts"]]
    queued_at = {e["step_id"]: e["ts"] for e in COMPLETED if e["type"] == "step_queued"}
    assert len(queued_at) == 4 and out["events"] == len(log)
    assert out["seen"][-1] == {step: ["completed", 1, ts] for step, ts in queued_at.items()}
    assert model_tab.errors == []
