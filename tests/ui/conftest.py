"""Browser tests: headless Chromium from Debian's ``chromium`` package, driven by Playwright
(``executable_path``; Playwright's own browser download cannot work here), against a real API
and real worker processes started with :mod:`tests.integration.procs`.

Screenshots go to ``test-artifacts/ui/`` (gitignored); a failing test also leaves
``<test>-failed.png`` there.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from app.config import Settings
from tests.conftest import missing_tool
from tests.integration.procs import ROOT, Proc, sse_frames, start_api, start_worker

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = Path(os.environ.get("AGENTIC_TEST_CHROMIUM", "/usr/bin/chromium"))
#: As the machine notes prescribe for a closed network: without the background-networking
#: flags Chromium keeps trying to reach Google and gets refused.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "test-artifacts" / "ui"
TASK = "Compare Redis Streams and Kafka for job queues and write a short recommendation"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Per module, not per session: Playwright's sync API keeps an asyncio loop running in the
    main thread while it is open, and every pytest-asyncio test collected after it would then
    fail with "Cannot run the event loop while another loop is running" (seen in CI)."""
    if not CHROMIUM.exists():
        missing_tool(
            f"{CHROMIUM} not found: install Debian's Chromium (apt-get install -y chromium) "
            "or point AGENTIC_TEST_CHROMIUM at a Chromium binary"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Tab:
    """A page plus what its console said."""

    page: Page
    errors: list[str] = field(default_factory=list)

    def shot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def events(self) -> list[str]:
        return list(self.page.evaluate("window.__events"))


@pytest.fixture
def open_tab(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Callable[..., Tab]]:
    """Open a tab in a fresh browser context; ``bypass_csp=True`` to test without the CSP."""
    contexts: list[Any] = []
    tabs: list[Tab] = []

    def _open(url: str, *, bypass_csp: bool = False) -> Tab:
        context = browser.new_context(
            viewport={"width": 1400, "height": 1000}, bypass_csp=bypass_csp
        )
        contexts.append(context)
        tab = Tab(context.new_page())
        tab.page.set_default_timeout(20_000)
        tab.page.on("pageerror", lambda exc: tab.errors.append(f"pageerror: {exc}"))
        tab.page.on(
            "console", lambda msg: tab.errors.append(msg.text) if msg.type == "error" else None
        )
        tab.page.goto(url)
        tabs.append(tab)
        return tab

    yield _open
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        for i, tab in enumerate(tabs):
            tab.shot(f"{request.node.name}-failed-{i}")
    for context in contexts:
        context.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]


@dataclass
class Stack:
    """An API and its workers, as real processes; stopped in reverse order at the end."""

    settings: Settings
    tmp: Path
    procs: list[Proc] = field(default_factory=list)
    api: Proc | None = None

    def start_api(self, port: int | None = None) -> Proc:
        self.api = start_api(self.settings, self.tmp, port=port)
        self.procs.append(self.api)
        if "content-security-policy" not in httpx.get(self.api.url).headers:
            pytest.fail(
                "GET / is not the page of app/api/ui.py: app/main.py must include "
                "app.api.ui.router (before app.api.routes.router, or without its GET /)",
                pytrace=False,
            )
        return self.api

    def start_worker(self, **extra: Any) -> Proc:
        proc = start_worker(self.settings, self.tmp, **extra)
        self.procs.append(proc)
        return proc

    @property
    def url(self) -> str:
        assert self.api is not None
        return self.api.url

    def log_ids(self, task_id: str) -> list[str]:
        """The task's whole event log, as the server replays it."""
        return [i for i, _, _ in sse_frames(f"{self.url}/stream/{task_id}")]

    def task(self, task_id: str) -> dict[str, Any]:
        return dict(httpx.get(f"{self.url}/tasks/{task_id}", timeout=5).json())

    def stop(self) -> None:
        for proc in reversed(self.procs):
            try:
                proc.terminate(timeout=15)
            except Exception:
                proc.kill()


@pytest.fixture
def stack(settings: Settings, tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    """``stack(**settings)``: settings for an API and its workers, which the test starts."""
    made: list[Stack] = []

    def _make(**update: Any) -> Stack:
        # Short drain: teardown should not wait; the restart test exercises the drain anyway.
        merged = {"executor": "agents", "drain_s": 0.3, **update}
        made.append(Stack(settings.model_copy(update=merged), tmp_path))
        return made[-1]

    yield _make
    for s in made:
        s.stop()


def task_id_of(tab: Tab) -> str:
    tab.page.wait_for_url("**/#/task/*")
    return str(tab.page.url.rsplit("/", 1)[-1])


def submit(tab: Tab, text: str = TASK) -> str:
    tab.page.fill("#task-input", text)
    tab.page.click("#submit-btn")
    return task_id_of(tab)


def wait_state(tab: Tab, state: str, timeout_ms: int = 30_000) -> None:
    tab.page.wait_for_selector(f"#task-state.st-{state}", timeout=timeout_ms)
