"""Server-side cost: deltas of INFO stats/cpu across a burst (script-internal calls count,
since that is what the server pays)."""

from __future__ import annotations

from dataclasses import dataclass

import redis

SCRIPT_COMMANDS = ("fcall", "evalsha")


@dataclass(frozen=True)
class Snapshot:
    commands: int
    cpu_s: float
    script_us: float  # server time in FCALL (the scripts), script-internal calls included


def snapshot(url: str) -> Snapshot:
    client = redis.Redis.from_url(url)
    try:
        stats, cpu = client.info("stats"), client.info("cpu")
        commands = client.info("commandstats")
        # The scripts run as functions (FCALL); EVALSHA counts too, for a Celery-side script.
        script_us = sum(commands.get(f"cmdstat_{c}", {}).get("usec", 0) for c in SCRIPT_COMMANDS)
    finally:
        client.close()
    return Snapshot(
        int(stats["total_commands_processed"]),
        float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]),
        float(script_us),
    )


def per_step(before: Snapshot, after: Snapshot, steps: int) -> tuple[float, float]:
    """(commands per step, server CPU µs per step)."""
    if steps <= 0:
        return float("nan"), float("nan")
    return (after.commands - before.commands) / steps, (after.cpu_s - before.cpu_s) * 1e6 / steps


def describe(url: str, embedded: bool) -> str:
    """The server and its allocator, e.g. "Valkey 9.1.2, jemalloc (preloaded)" (a preload is
    seen only on the embedded server, a process of this machine)."""
    client = redis.Redis.from_url(url)
    try:
        server, memory = client.info("server"), client.info("memory")
    finally:
        client.close()
    name, version = (
        ("Valkey", server["valkey_version"])
        if "valkey_version" in server
        else ("Redis", server.get("redis_version", "?"))
    )
    malloc = str(memory.get("mem_allocator", "?"))
    if embedded:
        from app.embedded import allocator

        found = allocator(int(server["process_id"]))
        malloc = found if found != "as built" else malloc
    return f"{name} {version}, {malloc}"
