"""The terminal clients, from recorded event logs (``tests/unit/data``, recorded from a real run)
served by an in-process mock of the API: the live view, NDJSON, resume, exit codes, Ctrl-C."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from app.console import dlq_app, ops, run_command, tasks_app
from app.console.client import ApiClient, ApiError, parse_sse
from app.console.run import (
    EXIT_CANCELLED,
    EXIT_COMPLETED,
    EXIT_DETACHED,
    EXIT_FAILED,
    EXIT_REJECTED,
    EXIT_UNREACHABLE,
    Watch,
    run_task,
)
from app.console.state import TaskView
from app.console.view import event_line, render_live

DATA = Path(__file__).with_name("data")
TASK = "Compare Redis Streams and Kafka for job queues and write a short recommendation"


def load(name: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in (DATA / name).read_text().splitlines()]


COMPLETED = load("run_completed.ndjson")
CANCELLED = load("run_cancelled.ndjson")
METRICS = orjson.loads((DATA / "run_completed_metrics.json").read_bytes())
TASK_ID = COMPLETED[0]["task_id"]


def data(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k != "id"}


def failed_log() -> list[dict[str, Any]]:
    """The completed run up to analyze's start, then a retry, a second failure, task_failed."""
    upto = next(
        i
        for i, e in enumerate(COMPLETED)
        if e.get("step_id") == "analyze" and e["type"] == "step_started"
    )
    base = COMPLETED[: upto + 1]
    ts, tid = base[-1]["ts"], TASK_ID
    step = {"task_id": tid, "step_id": "analyze", "agent": "analyzer"}
    tail = [
        {
            "type": "step_retrying",
            **step,
            "attempt": 2,
            "delay_ms": 500,
            "error": "StepError: boom",
            "ts": ts + 5,
        },
        {"type": "step_queued", **step, "attempt": 2, "ts": ts + 505},
        {"type": "step_started", **step, "attempt": 2, "ts": ts + 506},
        {
            "type": "step_failed",
            **step,
            "attempt": 2,
            "error": "StepError: boom again",
            "ts": ts + 520,
        },
        {
            "type": "task_failed",
            "task_id": tid,
            "step_id": "analyze",
            "error": "step analyze failed",
            "latency_ms": 600,
            "ts": ts + 520,
        },
    ]
    return base + [{"id": f"{ts + 600}-{i}", **e} for i, e in enumerate(tail)]


def queued_lists(log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``log`` as the server now writes it: a step_queued right after a plan_created or a
    step_completed (same ts) becomes an item of that event's ``queued`` list."""
    out: list[dict[str, Any]] = []
    for e in log:
        carrier = out[-1] if out else {}
        if (
            e["type"] == "step_queued"
            and carrier.get("type") in {"plan_created", "step_completed"}
            and carrier["ts"] == e["ts"]
        ):
            item = {k: e[k] for k in ("step_id", "agent", "attempt")}
            out[-1] = {**carrier, "queued": [*carrier.get("queued", []), item]}
        else:
            out.append(e)
    return out


def text_of(renderable: Any, width: int = 140) -> str:
    console = Console(record=True, width=width, color_system=None, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


# --- the view, from recorded logs -----------------------------------------------------------


def test_view_rebuilds_a_completed_run() -> None:
    view = TaskView(TASK_ID)
    for e in COMPLETED:
        view.apply(data(e))
    assert view.state == "completed" and view.done == 4 and view.events == len(COMPLETED)
    assert view.output is not None and view.output.startswith("# Redis Streams vs Kafka")
    assert view.cost_units == COMPLETED[-1]["cost_units"]
    shown = text_of(render_live(view))
    assert "completed  4/4 steps done" in shown
    for step in ("retrieve_1", "retrieve_2", "analyze", "write"):
        assert f"✔ {step} " in shown
    assert "report of" in shown and " cu" in shown  # summaries and per-step cost


def test_live_view_mid_run_shows_spinners_timing_and_streamed_text() -> None:
    view = TaskView(TASK_ID)
    upto = next(i for i, e in enumerate(COMPLETED) if e["type"] == "step_progress")
    for e in COMPLETED[: upto + 1]:
        view.apply(data(e))
    started = view.steps["retrieve_1"].started_ms
    assert started is not None
    shown = text_of(render_live(view, now=started + 1234))
    assert "retrieve_1 retriever running  running 1.23 s" in shown
    assert "searching" in shown  # the streamed text of the running step
    assert "analyze analyzer pending  after retrieve_1, retrieve_2" in shown
    assert "0/4 steps done" in shown


def test_view_of_a_cancelled_run() -> None:
    view = TaskView(CANCELLED[0]["task_id"])
    for e in CANCELLED:
        view.apply(data(e))
    assert view.state == "cancelled" and {s.state for s in view.steps.values()} == {"cancelled"}
    assert "cancelled: cancelled by request" in text_of(render_live(view))


def test_view_of_a_retry_then_a_failure_and_a_redrive() -> None:
    view = TaskView(TASK_ID)
    log = failed_log()
    for e in log:
        view.apply(data(e))
    assert view.state == "failed" and view.steps["analyze"].attempt == 2
    assert view.steps["write"].state == "cancelled"
    shown = text_of(render_live(view))
    assert (
        "✖ analyze analyzer failed · attempt 2" in shown and "error: StepError: boom again" in shown
    )
    view.apply(
        {"type": "step_queued", "task_id": TASK_ID, "step_id": "analyze", "attempt": 3, "ts": 1}
    )
    assert view.state == "running" and view.steps["analyze"].state == "queued"


@pytest.mark.parametrize(
    "log", [COMPLETED, queued_lists(COMPLETED)], ids=["step_queued events", "queued lists"]
)
def test_view_marks_steps_queued_by_step_queued_events_or_queued_lists(
    log: list[dict[str, Any]],
) -> None:
    view = TaskView(TASK_ID)
    for e in log:
        view.apply(data(e))
        for q in e.get("queued", [e] if e["type"] == "step_queued" else []):
            step = view.steps[q["step_id"]]
            assert (step.state, step.attempt, step.queued_ms) == ("queued", q["attempt"], e["ts"])
    queued_at = {e["step_id"]: e["ts"] for e in COMPLETED if e["type"] == "step_queued"}
    assert len(queued_at) == 4 and view.events == len(log)
    assert {s.id: (s.state, s.attempt, s.queued_ms) for s in view.steps.values()} == {
        step: ("completed", 1, ts) for step, ts in queued_at.items()
    }


def test_untrusted_text_cannot_drive_the_terminal() -> None:
    view = TaskView(TASK_ID)
    view.apply(data(COMPLETED[0]))
    evil = "\x1b]0;owned\x07ok\x1b[2J\r\u202egnp.exe"
    view.apply(
        {"type": "step_progress", "task_id": TASK_ID, "step_id": "analyze", "text": evil, "ts": 1}
    )
    view.apply({"type": "task_completed", "task_id": TASK_ID, "output": f"# {evil}", "ts": 2})
    assert view.steps["analyze"].text == "]0;ownedok[2Jgnp.exe"
    assert (
        "\x1b" not in (view.output or "")
        and "\x1b" not in event_line({"type": "x", "error": evil}).plain
    )


def test_parse_sse_frames() -> None:
    lines = [
        ": live",
        "retry: 1000",
        "",
        "id: 1-0",
        "event: a",
        "data: {}",
        "",
        "id: 2-0",
        "data: x",
        "data: y",
        "",
    ]
    assert list(parse_sse(lines)) == [("1-0", "a", "{}"), ("2-0", "message", "x\ny")]


# --- against a mock API ---------------------------------------------------------------------


class Interrupt(httpx.SyncByteStream):
    """A response body that stops with Ctrl-C after some bytes."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def __iter__(self) -> Iterator[bytes]:
        yield self.body
        raise KeyboardInterrupt


class MockApi:
    """Serves a recorded log; ``cuts`` are event counts after which a connection drops."""

    def __init__(
        self, log: list[dict[str, Any]], cuts: tuple[int, ...] = (), **behaviour: Any
    ) -> None:
        self.log = log
        self.cuts = list(cuts)
        self.last_event_ids: list[str] = []
        self.calls: list[str] = []
        self.behaviour = behaviour

    def client(self, **kwargs: Any) -> ApiClient:
        return ApiClient(
            "http://api", transport=httpx.MockTransport(self.handle), retry_s=0.001, **kwargs
        )

    def frames(self, after: str) -> list[dict[str, Any]]:
        ids = [e["id"] for e in self.log]
        start = 0 if after == "0-0" else ids.index(after) + 1
        return self.log[start:]

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.calls.append(f"{request.method} {path}")
        if self.behaviour.get("down"):
            raise httpx.ConnectError("refused")
        if request.method == "POST" and path == "/run-task":
            if self.behaviour.get("refuse"):
                return httpx.Response(
                    422, json={"error": {"code": "invalid", "message": "user_input: too long"}}
                )
            steps = self.log[0]["plan"]["steps"]
            return httpx.Response(
                202, json={"task_id": TASK_ID, "steps_created": steps, "planner": "offline"}
            )
        if path.startswith("/stream/"):
            return self.stream(request)
        if path.endswith("/cancel"):
            self.behaviour["cancelled"] = True
            return httpx.Response(202, json={"task_id": TASK_ID, "state": "cancelled"})
        if path.startswith("/metrics/"):
            return httpx.Response(200, json=METRICS)
        return httpx.Response(404, json={"error": {"code": "not_found", "message": "no"}})

    def stream(self, request: httpx.Request) -> httpx.Response:
        after = request.headers["Last-Event-ID"]
        self.last_event_ids.append(after)
        rest = self.frames(after)
        if not rest:
            return httpx.Response(204)
        if self.behaviour.get("flaky") and len(self.last_event_ids) == 2:
            raise httpx.ReadError("connection reset")
        cut = self.cuts.pop(0) if self.cuts else len(rest)
        body = b": live\nretry: 1000\n\n" + b"".join(
            f"id: {e['id']}\nevent: {e['type']}\ndata: ".encode() + orjson.dumps(data(e)) + b"\n\n"
            for e in rest[:cut]
        )
        headers = {"content-type": "text/event-stream"}
        if self.behaviour.pop("interrupt", False):
            return httpx.Response(200, headers=headers, stream=Interrupt(body))
        return httpx.Response(200, headers=headers, content=body)


def consoles() -> tuple[Console, Console]:
    err = Console(file=io.StringIO(), width=140, color_system=None)
    out = Console(file=io.StringIO(), width=140, color_system=None)
    return err, out


def test_json_mode_prints_every_event_once_across_cuts(capsys: pytest.CaptureFixture[str]) -> None:
    api = MockApi(COMPLETED, cuts=(3, 5), flaky=True)
    err, out = consoles()
    code = run_task(api.client(), TASK, json_out=True, err=err, out=out)
    assert code == EXIT_COMPLETED
    printed = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert printed == COMPLETED  # each with its id, none missing, none twice
    ids = [e["id"] for e in COMPLETED]
    # Resumed from the last event each time (the flaky second connect is retried), then 204.
    assert api.last_event_ids == ["0-0", ids[2], ids[2], ids[7], ids[-1]]


def test_human_mode_without_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    api = MockApi(COMPLETED)
    err, out = consoles()
    assert run_task(api.client(), TASK, err=err, out=out) == EXIT_COMPLETED
    log = err.file.getvalue()  # type: ignore[attr-defined]
    assert log.count("step_completed") == 4 and "task_completed" in log
    assert "queue wait" in log and "retrieve_1" in log  # the metrics table
    report = out.file.getvalue()  # type: ignore[attr-defined]
    assert report.startswith("# Redis Streams vs Kafka") and "## Sources" in report  # raw Markdown


@pytest.mark.parametrize(
    ("log", "code"),
    [(COMPLETED, EXIT_COMPLETED), (failed_log(), EXIT_FAILED), (CANCELLED, EXIT_CANCELLED)],
)
def test_exit_code_follows_the_end_of_the_task(log: list[dict[str, Any]], code: int) -> None:
    err, out = consoles()
    assert Watch(MockApi(log).client(), TASK_ID, err=err, out=out).run() == code


def test_refused_or_unreachable() -> None:
    err, out = consoles()
    assert run_task(MockApi(COMPLETED, refuse=True).client(), TASK, err=err) == EXIT_REJECTED
    assert "user_input: too long" in err.file.getvalue()  # type: ignore[attr-defined]
    down = MockApi(COMPLETED, down=True).client(give_up_s=0)
    assert run_task(down, TASK, err=err) == EXIT_UNREACHABLE
    assert Watch(down, TASK_ID, err=err, out=out).run() == EXIT_UNREACHABLE


def test_ctrl_c_then_cancel_follows_to_the_cancelled_end() -> None:
    api = MockApi(CANCELLED, cuts=(4,), interrupt=True)
    err, out = consoles()
    asked: list[str] = []

    def ask(console: Console) -> Any:
        asked.append("?")
        return "cancel"

    code = Watch(api.client(), CANCELLED[0]["task_id"], err=err, out=out, ask=ask).run()
    assert code == EXIT_CANCELLED and asked == ["?"] and api.behaviour["cancelled"]
    assert api.last_event_ids[1] == CANCELLED[3]["id"]  # resumed where the interrupt came


def test_ctrl_c_then_detach_leaves_the_task_running() -> None:
    api = MockApi(COMPLETED, interrupt=True)
    err, out = consoles()
    code = Watch(api.client(), TASK_ID, err=err, out=out, ask=lambda console: "detach").run()
    assert code == EXIT_DETACHED and "cancelled" not in api.behaviour
    assert f"agentic tasks show {TASK_ID} --follow" in err.file.getvalue()  # type: ignore[attr-defined]


def test_client_errors_carry_the_api_message() -> None:
    with pytest.raises(ApiError) as info:
        MockApi(COMPLETED).client().task("nope")
    assert (
        info.value.status == 404 and info.value.message == "no" and info.value.code == "not_found"
    )


# --- the typer commands, wired as app/cli.py wires them -------------------------------------

cli = typer.Typer()
cli.command("run")(run_command)
cli.add_typer(tasks_app, name="tasks")
cli.add_typer(dlq_app, name="dlq")

TASKS = [
    {
        "task_id": TASK_ID,
        "state": "completed",
        "user_input": TASK,
        "planner": "offline",
        "created_at_ms": 1,
        "finished_at_ms": 29,
        "steps": 4,
    }
]
DLQ = {
    "entries": [
        {
            "id": "9-0",
            "task_id": "t1",
            "step_id": "analyze",
            "agent": "analyzer",
            "attempt": 3,
            "error": "StepError: boom",
            "ts": 9,
        }
    ],
    "depth": 1,
}


def ops_handler(request: httpx.Request) -> httpx.Response:
    path, method = request.url.path, request.method
    routes: dict[tuple[str, str], httpx.Response] = {
        ("GET", "/tasks"): httpx.Response(200, json={"tasks": TASKS}),
        ("GET", "/dlq"): httpx.Response(200, json=DLQ),
        ("POST", "/dlq/9-0/redrive"): httpx.Response(
            202, json={"id": "9-0", "task_id": "t1", "step_id": "analyze", "state": "running"}
        ),
        ("POST", "/dlq/redrive"): httpx.Response(
            202, json={"redriven": [], "skipped": [{"id": "9-0", "reason": "task expired"}]}
        ),
        ("POST", f"/tasks/{TASK_ID}/cancel"): httpx.Response(
            409, json={"error": {"code": "task_finished", "message": "task already completed"}}
        ),
        ("GET", f"/metrics/{TASK_ID}"): httpx.Response(200, json=METRICS),
    }
    if (method, path) == ("GET", f"/tasks/{TASK_ID}"):
        steps = [
            {**s, "state": "completed", "attempt": 1, "result": {"summary": "ok"}}
            for s in COMPLETED[0]["plan"]["steps"]
        ]
        return httpx.Response(
            200,
            json={
                **TASKS[0],
                "steps": steps,
                "output": COMPLETED[-1]["output"],
                "plan": COMPLETED[0]["plan"],
            },
        )
    return routes.get((method, path)) or httpx.Response(
        404, json={"error": {"code": "x", "message": "unknown"}}
    )


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    def client(url: str) -> ApiClient:
        assert url == "http://remote:9"
        return ApiClient(url, transport=httpx.MockTransport(ops_handler))

    monkeypatch.setattr(ops, "ApiClient", client)
    monkeypatch.setenv("AGENTIC_URL", "http://remote:9")
    monkeypatch.setenv("COLUMNS", "200")
    return CliRunner()


def test_tasks_list_show_and_cancel(runner: CliRunner) -> None:
    listed = runner.invoke(cli, ["tasks"])
    assert listed.exit_code == 0 and TASK_ID in listed.output and "completed" in listed.output
    as_json = runner.invoke(cli, ["tasks", "--json", "--limit", "5"])
    assert orjson.loads(as_json.output) == TASKS
    shown = runner.invoke(cli, ["tasks", "show", TASK_ID])
    assert shown.exit_code == 0, shown.output
    assert (
        "✔ analyze analyzer completed" in shown.output and "Redis Streams vs Kafka" in shown.output
    )
    refused = runner.invoke(cli, ["tasks", "cancel", TASK_ID])
    assert refused.exit_code == 1 and "task already completed" in refused.output


def test_dlq_list_and_redrive(runner: CliRunner) -> None:
    listed = runner.invoke(cli, ["dlq"])
    assert (
        listed.exit_code == 0
        and "StepError: boom" in listed.output
        and "dead letters: 1" in listed.output
    )
    one = runner.invoke(cli, ["dlq", "redrive", "9-0"])
    assert one.exit_code == 0 and "step analyze of task t1" in one.output
    everything = runner.invoke(cli, ["dlq", "redrive", "--all"])
    assert everything.exit_code == 1 and "skipped: 9-0: task expired" in everything.output
    assert runner.invoke(cli, ["dlq", "redrive"]).exit_code == 2
    assert runner.invoke(cli, ["dlq", "redrive", "9-0", "--all"]).exit_code == 2


def test_commands_document_url_and_exit_codes(runner: CliRunner) -> None:
    helps = [runner.invoke(cli, [*cmd, "--help"]).output for cmd in (["run"], ["tasks"], ["dlq"])]
    assert all("--url" in h for h in helps)
    assert "130 detached" in " ".join(helps[0].split())
