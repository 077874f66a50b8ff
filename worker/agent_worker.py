"""``python -m worker.agent_worker [--agents retriever,analyzer]``: host agents' consumers.

Process concerns only: arguments, logging, /metrics + /healthz, signals. SIGTERM/SIGINT stop
reading at once, let in-flight steps finish within AGENTIC_WORKER_GRACE_S, and hand back the
rest for another worker to reclaim.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import signal

import structlog

from app.agents import build_agents
from app.config import Settings, get_settings
from app.keys import AGENTS
from app.logs import configure_logging
from app.orchestration.runtime import WorkerRuntime
from app.redis_client import make_redis
from worker.health import serve_health

log = structlog.get_logger("agentic.worker")


def parse_agents(value: str | None) -> list[str]:
    if not value:
        return list(AGENTS)
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = sorted(set(names) - set(AGENTS))
    if unknown:
        raise SystemExit(f"unknown agents: {', '.join(unknown)} (known: {', '.join(AGENTS)})")
    return names


async def run_worker(settings: Settings, agent_names: list[str]) -> None:
    redis = make_redis(settings)
    agents = {name: agent for name, agent in build_agents(settings).items() if name in agent_names}
    runtime = WorkerRuntime(redis, settings, agents)
    health = (
        await serve_health(settings.worker_metrics_port) if settings.worker_metrics_port else None
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, runtime.request_stop)
    # As in the API: what is alive at startup lives as long as the process; out of the
    # collector's sight, a full collection no longer walks it.
    gc.freeze()
    try:
        await runtime.run_until_stopped()
    finally:
        if health is not None:
            health.close()
        await redis.aclose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="agentic worker", description=__doc__)
    parser.add_argument("--agents", help="comma-separated agents to host (default: all)")
    args = parser.parse_args(argv)
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    names = parse_agents(args.agents)
    log.info("starting worker", agents=names, executor=settings.executor)
    run = asyncio.run
    with contextlib.suppress(ImportError):  # uvloop: a faster event loop where it is available
        import uvloop

        run = uvloop.run
    run(run_worker(settings, names))


if __name__ == "__main__":
    main()
