"""``agentic run "TASK"``: submit a task, watch it live, then print its report and metrics.

Where the output goes:

- stderr is a terminal: a live tree of the plan (rich ``Live``): each step's state with a spinner
  while it runs, its attempt and timing, and the tail of its streamed text;
- stderr is not a terminal (CI logs, pipes): one line per event on stderr;
- ``--json``: each event as one JSON object per line (NDJSON) on stdout, with its ``id`` (resume
  from it with ``Last-Event-ID``), and nothing else on stdout.

Then, unless ``--json``: the report on stdout (rendered if stdout is a terminal, the Markdown
itself otherwise, so ``agentic run ... > report.md`` works) and the metrics table on stderr.

Ctrl-C asks whether to cancel the task, detach (it runs on; ``agentic tasks show ID --follow``
picks it up again) or keep watching; without a terminal to ask on, it detaches.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Literal

import orjson
import typer
from rich.console import Console
from rich.live import Live
from rich.prompt import Prompt

from app.console.client import DEFAULT_URL, ApiClient, ApiError
from app.console.state import TaskView, clean
from app.console.view import event_line, metrics_table, render_live, report

EXIT_COMPLETED = 0
EXIT_FAILED = 1
EXIT_REJECTED = 2  # the API refused the task (4xx)
EXIT_CANCELLED = 3
EXIT_UNREACHABLE = 4  # API unreachable, or the task unknown/expired
EXIT_DETACHED = 130  # Ctrl-C, then "detach": the task runs on
EXIT_CODES = {"completed": EXIT_COMPLETED, "failed": EXIT_FAILED, "cancelled": EXIT_CANCELLED}

Choice = Literal["cancel", "detach", "watch"]
UrlOpt = Annotated[str, typer.Option("--url", envvar="AGENTIC_URL", help="API base URL")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the events as NDJSON on stdout")]


def ask_on_terminal(console: Console) -> Choice:
    """What to do after Ctrl-C; detach when there is no terminal to ask on."""
    if not sys.stdin.isatty():
        return "detach"
    try:
        answer = Prompt.ask(
            r"[bold]Interrupted.[/] \[c]ancel the task, \[d]etach (it keeps running), \[w]atch on?",
            choices=["c", "d", "w"],
            default="d",
            console=console,
        )
    except (KeyboardInterrupt, EOFError):
        return "detach"
    return {"c": "cancel", "w": "watch"}.get(answer, "detach")  # type: ignore[return-value]


@dataclass
class Watch:
    """Follow one task to its end and show it; ``run()`` returns the exit code."""

    client: ApiClient
    task_id: str
    err: Console = field(default_factory=lambda: Console(stderr=True))
    out: Console = field(default_factory=Console)
    json_out: bool = False
    ask: Callable[[Console], Choice] = ask_on_terminal
    last_id: str = "0-0"

    def __post_init__(self) -> None:
        self.view = TaskView(self.task_id)

    def run(self) -> int:
        while True:
            try:
                self._follow()
                break
            except KeyboardInterrupt:
                choice = self.ask(self.err)
                if choice == "detach":
                    self.err.print(
                        f"detached; task {self.task_id} runs on "
                        f"(agentic tasks show {self.task_id} --follow)"
                    )
                    return EXIT_DETACHED
                if choice == "cancel":
                    self._cancel()
            except ApiError as exc:
                self.err.print(f"[red]{exc.message}[/]")
                return EXIT_UNREACHABLE
        return self._finish()

    def _events(self) -> None:
        for event_id, data in self.client.follow(self.task_id, self.last_id):
            self.last_id = event_id
            self.view.apply(data)
            if self.json_out:
                sys.stdout.write(orjson.dumps({"id": event_id, **data}).decode() + "\n")
                sys.stdout.flush()
            elif not self.err.is_terminal:
                self.err.print(event_line(data), highlight=False)

    def _follow(self) -> None:
        if self.json_out or not self.err.is_terminal:
            self._events()
            return
        with Live(
            console=self.err,
            get_renderable=lambda: render_live(self.view),
            refresh_per_second=8,
            transient=False,
        ):
            self._events()

    def _cancel(self) -> None:
        try:
            self.client.cancel(self.task_id)
            self.err.print("cancelling…")
        except ApiError as exc:
            self.err.print(f"[yellow]{exc.message}[/]")

    def _finish(self) -> int:
        code = EXIT_CODES.get(self.view.state, EXIT_FAILED)
        if self.json_out:
            return code
        if self.view.output:
            if self.out.is_terminal:
                self.out.print(report(self.view.output))
            else:
                self.out.file.write(clean(self.view.output) + "\n")
                self.out.file.flush()
        try:
            self.err.print(metrics_table(self.client.metrics(self.task_id)))
        except ApiError as exc:
            self.err.print(f"[yellow]metrics unavailable: {exc.message}[/]")
        return code


def run_task(
    client: ApiClient,
    text: str,
    *,
    json_out: bool = False,
    err: Console | None = None,
    out: Console | None = None,
) -> int:
    err = err or Console(stderr=True)
    try:
        accepted = client.submit(text)
    except ApiError as exc:
        err.print(f"[red]task refused ({exc.status or 'no answer'}):[/] {exc.message}")
        return EXIT_REJECTED if 400 <= exc.status < 500 else EXIT_UNREACHABLE
    task_id = accepted["task_id"]
    if not json_out:
        err.print(
            f"task [bold]{task_id}[/] — {len(accepted['steps_created'])} steps "
            f"(planner: {accepted.get('planner')})",
            highlight=False,
        )
    return Watch(client, task_id, err=err, out=out or Console(), json_out=json_out).run()


def run_command(
    task: Annotated[str, typer.Argument(help="The task, in plain language")],
    url: UrlOpt = DEFAULT_URL,
    json_out: JsonOpt = False,
) -> None:
    """Submit a task, watch it live, then print its report and metrics.

    Exit status: 0 completed, 1 failed, 2 refused by the API, 3 cancelled, 4 API unreachable or
    task unknown, 130 detached with Ctrl-C.
    """
    with ApiClient(url) as client:
        code = run_task(client, task, json_out=json_out)
    raise typer.Exit(code)
