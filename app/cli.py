"""The ``agentic`` command line. Client commands talk to the API over HTTP, as a user would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import orjson
import typer
from rich.console import Console
from rich.markdown import Markdown
from rich.table import Table

from app.config import get_settings

cli = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console(stderr=True)
DEFAULT_URL = "http://127.0.0.1:8000"
UrlOpt = Annotated[str, typer.Option("--url", envvar="AGENTIC_URL", help="API base URL")]


@cli.command()
def api(
    host: Annotated[str | None, typer.Option(help="Bind address")] = None,
    port: Annotated[int | None, typer.Option(help="Port")] = None,
) -> None:
    """Run the HTTP API (uvicorn app.main:app, plus the drain phase on SIGTERM)."""
    from app.api.server import serve_api
    from app.main import app as asgi_app

    settings = get_settings()
    serve_api(asgi_app, host or settings.host, port or settings.port, settings.drain_s)


@cli.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def worker(
    agents: Annotated[
        str | None, typer.Option(help="Comma-separated agents (default: all)")
    ] = None,
) -> None:
    """Run a worker process hosting the given agents (python -m worker.agent_worker)."""
    from worker.agent_worker import main as worker_main

    worker_main(["--agents", agents] if agents else [])


@cli.command()
def up(
    port: Annotated[int, typer.Option(help="API port")] = 8000,
    host: Annotated[str, typer.Option(help="API bind address")] = "127.0.0.1",
    data_dir: Annotated[
        Path | None, typer.Option(help="Embedded Valkey data (AOF) [AGENTIC_DATA_DIR, .agentic]")
    ] = None,
) -> None:
    """All in one: embedded Valkey (unless AGENTIC_REDIS_URL is set), the API and one worker."""
    from app.embedded import start_embedded

    data_dir = data_dir or get_settings().data_dir

    env = dict(os.environ)
    server = None
    if not env.get("AGENTIC_REDIS_URL"):
        server = start_embedded(data_dir.resolve())
        env["AGENTIC_REDIS_URL"] = server.connection_url
        console.print(f"[green]embedded Valkey[/] {server.connection_url} (AOF in {data_dir}/)")
    env.setdefault("AGENTIC_LOG_FORMAT", "console")
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "app.cli", "api", "--host", host, "--port", str(port)], env=env
        ),
        subprocess.Popen([sys.executable, "-m", "worker.agent_worker"], env=env),
    ]
    console.print(f"[green]API[/] http://{host}:{port}  (docs: /docs, live page: /)  Ctrl-C stops")
    code = _supervise(procs)
    if server is not None:
        server.stop(timeout=10)
    raise typer.Exit(code)


def _supervise(procs: list[subprocess.Popen[bytes]]) -> int:
    stopping = False

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    code = 0
    while not stopping:
        dead = [p for p in procs if p.poll() is not None]
        if dead:
            console.print(f"[red]a process exited ({dead[0].returncode}); stopping[/]")
            code = 1
            break
        time.sleep(0.2)
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
    return code


@cli.command()
def run(
    task: Annotated[str, typer.Argument(help="The task, in plain language")],
    url: UrlOpt = DEFAULT_URL,
    json_out: Annotated[bool, typer.Option("--json", help="Print events as NDJSON")] = False,
) -> None:
    """Submit a task, show its progress live, print the report and its metrics."""
    with httpx.Client(base_url=url, timeout=httpx.Timeout(30, read=None)) as client:
        r = client.post("/run-task", json={"user_input": task})
        if r.status_code != 202:
            console.print(f"[red]{r.status_code}[/] {r.text}")
            raise typer.Exit(2)
        accepted = r.json()
        task_id = accepted["task_id"]
        if not json_out:
            console.print(f"task [bold]{task_id}[/] — {len(accepted['steps_created'])} steps")
        final = _follow(client, task_id, json_out)
        if json_out:
            raise typer.Exit(0 if final.get("type") == "task_completed" else 1)
        metrics = client.get(f"/metrics/{task_id}").json()
    if final.get("output"):
        Console().print(Markdown(final["output"]))
    _print_metrics(metrics)
    raise typer.Exit(0 if final.get("type") == "task_completed" else 1)


def _follow(client: httpx.Client, task_id: str, json_out: bool) -> dict[str, Any]:
    """Follow the SSE stream to the terminal event, resuming from Last-Event-ID on a cut."""
    last_id = "0-0"
    while True:
        headers = {"Last-Event-ID": last_id}
        try:
            with client.stream("GET", f"/stream/{task_id}", headers=headers) as resp:
                if resp.status_code == 204:  # finished, and we have seen everything
                    task = client.get(f"/tasks/{task_id}").json()
                    return {"type": f"task_{task['state']}", "output": task.get("output")}
                for event_id, data in _sse_events(resp.iter_lines()):
                    last_id = event_id
                    if json_out:
                        sys.stdout.write(orjson.dumps(data).decode() + "\n")
                        sys.stdout.flush()
                    else:
                        _print_event(data)
                    if data["type"] in ("task_completed", "task_failed", "task_cancelled"):
                        return dict(data)
        except httpx.TransportError:
            time.sleep(0.5)


def _sse_events(lines: Any) -> Any:
    event_id, data = None, []
    for line in lines:
        if line.startswith("id:"):
            event_id = line[3:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())
        elif line == "":
            if event_id and data:
                yield event_id, orjson.loads("\n".join(data))
            event_id, data = None, []


def _print_event(d: dict[str, Any]) -> None:
    what = d["type"]
    step = (
        f" {d['step_id']} ({d.get('agent')}, attempt {d.get('attempt')})" if "step_id" in d else ""
    )
    extra = d.get("error") or d.get("summary") or d.get("text") or ""
    console.print(f"[cyan]{what}[/]{step} {extra}".rstrip())


def _print_metrics(m: dict[str, Any]) -> None:
    title = f"task {m['task_id']} — {m['state']}, {m.get('latency_ms')} ms"
    table = Table(title=f"{title}, {m['cost_units']} cost units")
    for col in ("step", "agent", "state", "attempts", "queue ms", "run ms", "cost"):
        table.add_column(col)
    for s in m["steps"]:
        table.add_row(
            s["step_id"],
            s["agent"],
            s["state"],
            str(s["attempts"]),
            str(s["queue_wait_ms"]),
            str(s["run_ms"]),
            f"{s['cost_units']:.3f}",
        )
    console.print(table)


@cli.command()
def loadtest(
    url: UrlOpt = DEFAULT_URL,
    tasks: Annotated[int, typer.Option(min=1, help="Tasks to submit")] = 100,
    concurrency: Annotated[int, typer.Option(min=1, help="Tasks in flight at once")] = 10,
    user_input: Annotated[str | None, typer.Option("--input", help="Task text")] = None,
    timeout_s: Annotated[float, typer.Option("--timeout", help="Seconds per task")] = 120.0,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
) -> None:
    """Submit tasks, follow each over SSE to its end; print throughput, latency, failures."""
    import asyncio

    from app.loadtest import DEFAULT_INPUT, format_report, run_loadtest

    report = asyncio.run(
        run_loadtest(url, tasks, concurrency, user_input or DEFAULT_INPUT, timeout_s)
    )
    if json_out:
        sys.stdout.write(orjson.dumps(report.to_dict()).decode() + "\n")
    else:
        Console().print(format_report(report), highlight=False)
    raise typer.Exit(1 if report.failed else 0)


@cli.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench(ctx: typer.Context) -> None:
    """Orchestration benchmark through the HTTP API (python -m app.bench --help for options:
    --quick, --json, --compare celery, --tasks, --concurrency, --streams, --durable)."""
    from app.bench.__main__ import main as bench_main

    raise typer.Exit(bench_main(list(ctx.args)))


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
