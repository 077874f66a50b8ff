"""Server-side cost: deltas of INFO stats/cpu across a burst (script-internal calls count,
since that is what the server pays)."""

from __future__ import annotations

from dataclasses import dataclass

import redis


@dataclass(frozen=True)
class Snapshot:
    commands: int
    cpu_s: float
    script_us: float  # server time in EVALSHA, script-internal calls included


def snapshot(url: str) -> Snapshot:
    client = redis.Redis.from_url(url)
    try:
        stats, cpu = client.info("stats"), client.info("cpu")
        script_us = client.info("commandstats").get("cmdstat_evalsha", {}).get("usec", 0)
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
