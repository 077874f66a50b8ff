"""The ``agentic`` command line. Client commands talk to the API over HTTP, as a user would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console

from app.config import get_settings
from app.console import dlq_app, run_command, tasks_app

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
    from app.lifetime import die_with_parent

    data_dir = data_dir or get_settings().data_dir

    env = dict(os.environ)
    server = None
    if not env.get("AGENTIC_REDIS_URL"):
        server = start_embedded(data_dir.resolve())
        env["AGENTIC_REDIS_URL"] = server.connection_url
        console.print(f"[green]embedded Valkey[/] {server.connection_url} (AOF in {data_dir}/)")
    env.setdefault("AGENTIC_LOG_FORMAT", "console")

    # Own sessions: a terminal's Ctrl-C reaches only this supervisor, which stops the API and
    # the worker (each drains) and then the server, in that order.
    def spawn(args: list[str]) -> subprocess.Popen[bytes]:
        # They die with this supervisor too, however it dies (die_with_parent).
        return subprocess.Popen(args, env=env, start_new_session=True, preexec_fn=die_with_parent)

    procs = [
        spawn([sys.executable, "-m", "app.cli", "api", "--host", host, "--port", str(port)]),
        spawn([sys.executable, "-m", "worker.agent_worker"]),
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
    signal.signal(signal.SIGHUP, stop)  # its terminal closed: stop as on Ctrl-C
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
    --quick, --json, --compare celery, --plot DIR, --inflight 1,4,16, --tasks, --concurrency,
    --streams, --durable)."""
    from app.bench.__main__ import main as bench_main

    raise typer.Exit(bench_main(list(ctx.args)))


cli.command("run")(run_command)
cli.add_typer(tasks_app, name="tasks")
cli.add_typer(dlq_app, name="dlq")


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
