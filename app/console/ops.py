"""Operator commands: ``agentic tasks`` (list, show, cancel) and ``agentic dlq`` (list, redrive).

Both talk to the API over HTTP (``--url``, or ``AGENTIC_URL``), through the same endpoints the
web page uses. Exit status 1 when the API says no (unknown id, already finished, nothing to
redrive), 4 when it cannot be reached.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from app.console.client import DEFAULT_URL, ApiClient, ApiError
from app.console.run import EXIT_UNREACHABLE, Watch
from app.console.state import TaskView, clean
from app.console.view import (
    TASK_STYLE,
    fmt_ms,
    header,
    metrics_table,
    now_ms,
    report,
    step_label,
)

GroupUrlOpt = Annotated[str, typer.Option("--url", envvar="AGENTIC_URL", help="API base URL")]
UrlOpt = Annotated[str | None, typer.Option("--url", help="API base URL [default: the group's]")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]
INPUT_CHARS = 60

tasks_app = typer.Typer(
    help="Recent tasks: list them, show one, cancel one.",
    invoke_without_command=True,
    no_args_is_help=False,
)
dlq_app = typer.Typer(
    help="Dead-lettered steps: list them with their last error, redrive one or all.",
    invoke_without_command=True,
    no_args_is_help=False,
)


def _out() -> Console:
    return Console(highlight=False)


def _fail(exc: ApiError) -> typer.Exit:
    Console(stderr=True).print(f"[red]{exc.message}[/]", highlight=False)
    return typer.Exit(EXIT_UNREACHABLE if exc.status == 0 else 1)


@contextlib.contextmanager
def _api(url: str) -> Iterator[ApiClient]:
    """A client whose API errors end the command with a message and an exit code."""
    try:
        with ApiClient(url) as client:
            yield client
    except ApiError as exc:
        raise _fail(exc) from exc


def _url(ctx: typer.Context, url: str | None) -> str:
    return url or (ctx.obj or {}).get("url") or DEFAULT_URL


def _age(ms: int | None) -> str:
    return "–" if ms is None else f"{fmt_ms(max(0, now_ms() - ms))} ago"


def _print_json(value: Any) -> None:
    typer.echo(orjson.dumps(value).decode())


# --- agentic tasks ---------------------------------------------------------------------------


@tasks_app.callback()
def tasks_list(
    ctx: typer.Context,
    url: GroupUrlOpt = DEFAULT_URL,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many")] = 20,
    json_out: JsonOpt = False,
) -> None:
    """List recent tasks, newest first (subcommands: show, cancel)."""
    ctx.obj = {"url": url}
    if ctx.invoked_subcommand is not None:
        return
    with _api(url) as client:
        tasks = client.tasks(limit)
    if json_out:
        _print_json(tasks)
        return
    table = Table(title=f"recent tasks ({len(tasks)})", title_justify="left")
    for col in ("task", "state", "created", "took", "steps", "planner", "input"):
        table.add_column(col, no_wrap=col != "input")
    for t in tasks:
        took = None if t.get("finished_at_ms") is None else t["finished_at_ms"] - t["created_at_ms"]
        text = clean(t.get("user_input", "")).replace("\n", " ")
        table.add_row(
            t["task_id"],
            Text(t["state"], style=TASK_STYLE.get(t["state"], "dim")),
            _age(t.get("created_at_ms")),
            fmt_ms(took) if took is not None else "running",
            str(t.get("steps", "")),
            clean(t.get("planner", "")),
            text if len(text) <= INPUT_CHARS else text[: INPUT_CHARS - 1] + "…",
        )
    _out().print(table)


@tasks_app.command("show")
def tasks_show(
    ctx: typer.Context,
    task_id: Annotated[str, typer.Argument(help="Task id")],
    url: UrlOpt = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Replay the log, then watch it live")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Show one task: its plan with step states, report and metrics."""
    if follow:
        with ApiClient(_url(ctx, url)) as client:
            raise typer.Exit(Watch(client, task_id, json_out=json_out).run())
    with _api(_url(ctx, url)) as client:
        task = client.task(task_id)
        metrics = client.metrics(task_id)
    if json_out:
        _print_json({"task": task, "metrics": metrics})
        return
    show_task(_out(), task, metrics)


def show_task(out: Console, task: dict[str, Any], metrics: dict[str, Any]) -> None:
    view = TaskView.from_task(task)
    view.cost_units = float(metrics.get("cost_units") or 0)
    view.tokens_in, view.tokens_out = metrics.get("tokens_in", 0), metrics.get("tokens_out", 0)
    for m in metrics.get("steps", []):
        if (step := view.steps.get(m["step_id"])) is not None:
            step.run_ms, step.cost_units = m.get("run_ms"), m.get("cost_units")
    now = now_ms()
    out.print(header(view, now))
    out.print(Text(view.user_input, style="italic"))
    tree = Tree(Text(f"plan ({view.planner})", style="bold"), guide_style="dim")
    for step in view.steps.values():
        node = tree.add(step_label(step, now))
        if step.error:
            node.add(Text(f"error: {step.error}", style="red"))
    out.print(tree)
    if view.output:
        out.print(report(view.output))
    elif view.error:
        out.print(Text(view.error, style="red"))
    out.print(metrics_table(metrics))


@tasks_app.command("cancel")
def tasks_cancel(
    ctx: typer.Context,
    task_id: Annotated[str, typer.Argument(help="Task id")],
    url: UrlOpt = None,
) -> None:
    """Cancel a running task (its running steps finish, nothing further starts)."""
    with _api(_url(ctx, url)) as client:
        client.cancel(task_id)
    _out().print(f"task {task_id} cancelled")


# --- agentic dlq -----------------------------------------------------------------------------


@dlq_app.callback()
def dlq_list(
    ctx: typer.Context,
    url: GroupUrlOpt = DEFAULT_URL,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many")] = 100,
    json_out: JsonOpt = False,
) -> None:
    """List dead-lettered steps, newest first, with their last error (subcommand: redrive)."""
    ctx.obj = {"url": url}
    if ctx.invoked_subcommand is not None:
        return
    with _api(url) as client:
        body = client.dlq(limit)
    if json_out:
        _print_json(body)
        return
    entries = body.get("entries", [])
    if not entries:
        _out().print("no dead letters")
        return
    table = Table(title=f"dead letters: {body.get('depth', len(entries))}", title_justify="left")
    for col in ("entry", "age", "task", "step", "agent", "attempt", "last error"):
        table.add_column(col, no_wrap=col != "last error", overflow="fold")
    for e in entries:
        table.add_row(
            e["id"],
            _age(e.get("ts")),
            e.get("task_id", ""),
            e.get("step_id", ""),
            e.get("agent", ""),
            str(e.get("attempt", "")),
            Text(clean(e.get("error", "")), style="red"),
        )
    _out().print(table)


@dlq_app.command("redrive")
def dlq_redrive(
    ctx: typer.Context,
    entry_id: Annotated[str | None, typer.Argument(help="Dead-letter entry id")] = None,
    all_entries: Annotated[bool, typer.Option("--all", help="Redrive every entry")] = False,
    url: UrlOpt = None,
) -> None:
    """Requeue a dead-lettered step (or --all): its task resumes where it stopped."""
    if (entry_id is None) == (not all_entries):
        raise typer.BadParameter("give an entry id or --all, not both")
    out = _out()
    with _api(_url(ctx, url)) as client:
        if entry_id is not None:
            r = client.redrive(entry_id)
            out.print(f"redriven: step {r['step_id']} of task {r['task_id']}, which runs again")
            return
        body = client.redrive_all()
    for r in body.get("redriven", []):
        out.print(f"redriven: step {r['step_id']} of task {r['task_id']} ({r['id']})")
    for s in body.get("skipped", []):
        out.print(Text(f"skipped: {s['id']}: {clean(s['reason'])}", style="yellow"))
    out.print(f"{len(body.get('redriven', []))} redriven, {len(body.get('skipped', []))} skipped")
    if body.get("skipped"):
        raise typer.Exit(1)


__all__ = ["dlq_app", "show_task", "tasks_app"]
