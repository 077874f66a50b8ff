"""Terminal clients of the HTTP API: ``agentic run`` (a live view of one task), and the operator
commands ``agentic tasks`` and ``agentic dlq``. They talk to the API over HTTP only, as any
user's client would, so they work as well against a remote deployment (``--url``).

Wiring (``app/cli.py``)::

    cli.command("run")(run_command)
    cli.add_typer(tasks_app, name="tasks")
    cli.add_typer(dlq_app, name="dlq")
"""

from __future__ import annotations

from app.console.ops import dlq_app, tasks_app
from app.console.run import run_command

__all__ = ["dlq_app", "run_command", "tasks_app"]
