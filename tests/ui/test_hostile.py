"""Text from users, documents and models is shown, never run.

The task's input and the only document of the corpus carry script, ``onerror=`` and
``javascript:`` payloads, each of which would set ``window.__pwned``. The page is first loaded
with its Content-Security-Policy *bypassed*, so that what is proven is the page's own rendering
(textContent for text, DOMPurify for Markdown), not the CSP catching a mistake; then again with
the CSP enforced, where nothing may even be attempted (no violation reported).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from app.api.ui import CONTENT_SECURITY_POLICY
from tests.ui.conftest import Stack, Tab, submit, wait_state

pytestmark = pytest.mark.integration

HOSTILE_INPUT = (
    "Compare Redis Streams and Kafka for job queues "
    "<script>window.__pwned='input-script'</script> "
    "<img src=x onerror=\"window.__pwned='input-img'\"> "
    "[click](javascript:window.__pwned='input-link')"
)
HOSTILE_DOC = """\
# Redis Streams job queues <img src=x onerror="window.__pwned='title'"><script>__pwned=1</script>

Source: javascript:window.__pwned='source' <a href="javascript:window.__pwned='source-a'">docs</a>

## Redis Streams job queues and Kafka guarantees

Redis Streams job queues keep each job as a stream entry; consumer groups deliver it, and XACK
acknowledges it. <img src=x onerror="window.__pwned='passage-img'"> Kafka job queues keep
offsets per partition. <script>window.__pwned='passage-script'</script> Performance figures:
Redis Streams handle 100000 jobs per second on one core and Kafka 500000 records per second
per broker. [read more](javascript:window.__pwned='passage-link') and
<a href="javascript:window.__pwned='passage-a'">this</a>
<svg onload="window.__pwned='passage-svg'"></svg>
<iframe srcdoc="<script>parent.__pwned='iframe'</script>"></iframe>
<details open ontoggle="window.__pwned='toggle'"><summary>x</summary></details>
The limits of both: guarantees are at-least-once, so handlers must be idempotent; how it works
is by consumer groups with pending entries lists, which guarantees redelivery after a crash.
"""

DOM_AUDIT = """() => {
  const bad = [];
  for (const el of document.querySelectorAll('*')) {
    for (const a of el.attributes) {
      if (a.name.toLowerCase().startsWith('on')) bad.push(`${el.tagName} ${a.name}`);
      if (/^\\s*javascript:/i.test(a.value)) bad.push(`${el.tagName} ${a.name}=${a.value}`);
    }
  }
  for (const s of document.scripts) if (!s.src.includes('/static/')) bad.push('inline script');
  for (const el of document.querySelectorAll('#report iframe, #report svg, #report img, '
      + '#report object, #report embed, main iframe')) bad.push(el.tagName);
  return bad;
}"""


@pytest.fixture
def hostile_corpus(tmp_path: Path) -> Path:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "hostile.md").write_text(HOSTILE_DOC)
    return corpus


def audit(tab: Tab) -> None:
    assert tab.page.evaluate("window.__pwned") is None
    assert tab.page.evaluate(DOM_AUDIT) == []


def test_hostile_input_and_documents_execute_nothing(
    stack: Callable[..., Stack], open_tab: Callable[..., Tab], hostile_corpus: Path
) -> None:
    s = stack(corpus_dir=hostile_corpus)
    s.start_api()
    s.start_worker()
    headers = httpx.get(s.url).headers
    assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert (
        "script-src 'self'" in CONTENT_SECURITY_POLICY and "unsafe" not in CONTENT_SECURITY_POLICY
    )

    tab = open_tab(s.url, bypass_csp=True)
    task_id = submit(tab, HOSTILE_INPUT)
    wait_state(tab, "completed")
    tab.page.wait_for_selector("#sources li")
    # Not vacuous: the payloads did reach the report and the page.
    report = s.task(task_id)["output"]
    assert "onerror" in report and "javascript:" in report and "<script>" in report
    assert tab.page.text_content("#task-input-text") == HOSTILE_INPUT  # shown as text
    assert "Redis Streams job queues" in (tab.page.text_content("#report") or "")
    assert "javascript:window.__pwned='source'" in (tab.page.text_content("#sources") or "")
    tab.page.click("g.node[data-step='analyze']")  # interact a little: hover/click handlers
    tab.page.click("#event-log-block summary")
    audit(tab)
    hrefs = tab.page.eval_on_selector_all("main a[href]", "els => els.map(e => e.href)")
    assert all(h.startswith(("http://", "https://")) for h in hrefs), hrefs
    tab.shot("hostile-task")

    # With the CSP enforced, the page does not even try anything the policy would block.
    strict = open_tab(f"{s.url}/#/task/{task_id}")
    wait_state(strict, "completed")
    strict.page.wait_for_selector("#sources li")
    audit(strict)
    assert strict.page.evaluate("window.__cspViolations") == []
    assert strict.errors == []
