"""Server time of each script phase of the bench DAG: ``python -m app.bench.script_cost``.

No HTTP, no worker processes: tasks are submitted through ``TaskStore`` (8 at a time, the size
of the group commit's batches at saturation), then their steps are recorded phase by phase
(retrieve, analyze, write) as a worker's ``Recorder`` sends them, ``--batch`` records per
``complete.lua`` call, each step run by the no-op agent from its entry. For each phase it
prints the server's µs and commands per task (``INFO commandstats`` deltas; script-internal
calls count). The full bench's figures move 10 % run to run on these machines; these move a
few percent. With ``--instructions`` the server runs under valgrind's callgrind and each
phase's instructions per task are printed too: they move about half a per cent from run to
run, which is what comparing two versions of a script needs (app/bench/instructions.py).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from redis.asyncio import Redis

from app.agents.noop import NoopAgent
from app.agents.planner import OfflinePlanner
from app.bench import instructions, probe
from app.bench.instructions import Counter
from app.keys import Keys
from app.orchestration.consumer import output_text, steps_in_entry
from app.orchestration.recorder import Outcome, ack_args
from app.orchestration.store import TaskStore

TASK = "Compare Redis Streams and Kafka for job queues"
AGENTS = ("retriever", "analyzer", "writer")
SUBMIT_BATCH = 8


@dataclass(frozen=True)
class Phase:
    script_us: float  # the scripts' (FCALL) server time per task, script-internal calls included
    commands: float  # commands per task, script-internal calls included
    cpu_us: float  # server CPU per task (user + sys), the round trips' cost included
    instructions: float | None = None  # the server's, per task (--instructions)


async def _phase(
    url: str, tasks: int, work: Callable[[], Awaitable[None]], counter: Counter | None
) -> Phase:
    before = await asyncio.to_thread(probe.snapshot, url)
    if counter:
        await asyncio.to_thread(counter.start)
    await work()
    instructions = await asyncio.to_thread(counter.take) / tasks if counter else None
    after = await asyncio.to_thread(probe.snapshot, url)
    commands, cpu_us = probe.per_step(before, after, tasks)  # per task here
    return Phase((after.script_us - before.script_us) / tasks, commands, cpu_us, instructions)


async def _records(redis: Redis, keys: Keys, agent: str) -> list[list[Any]]:
    """Every queued entry of ``agent``, delivered to one consumer and run by the no-op agent:
    the records (and the ACKs of entries of several steps) a worker would send."""
    stream = keys.agent_stream(agent)
    reply: Any = await redis.xreadgroup(agent, "probe", {stream: ">"}, count=1_000_000)
    entries: list[tuple[str, dict[str, str]]] = reply[0][1] if reply else []
    records: list[list[Any]] = []
    for entry_id, fields in entries:
        sids = fields["s"].split(",")
        for step, dependents in steps_in_entry(fields["t"], agent, sids, fields["x"], 0):
            out = await NoopAgent(agent).run(step)
            outcome = Outcome(
                kind="f",
                agent=agent,
                task_id=step.task_id,
                step_id=step.step_id,
                attempt=step.attempt,
                entry=entry_id,
                result_json=orjson.dumps(out.data),
                summary=out.summary,
                text=output_text(out),
                run_ms=0,
                cost_units=out.cost_units,
                tokens_in=out.tokens_in,
                tokens_out=out.tokens_out,
                ack_entry=entry_id if len(sids) == 1 else "",
                dependents=dependents,
            )
            records.append(outcome.args())
        if len(sids) > 1:  # ACKed once all its steps are recorded
            records.append(ack_args(agent, entry_id))
    return records


async def measure(
    redis_url: str, tasks: int = 600, batch: int = 8, counter: Counter | None = None
) -> dict[str, Phase]:
    """Per phase (submit, then each agent's records), the server's cost per task; with
    ``counter``, its instructions too (the server must be the counter's)."""
    redis = Redis.from_url(redis_url, decode_responses=True)
    keys = Keys(f"probe{uuid.uuid4().hex[:8]}")
    store = TaskStore(redis, keys, ttl_s=600)
    try:
        for agent in AGENTS:
            await redis.xgroup_create(keys.agent_stream(agent), agent, id="0", mkstream=True)
        plan = await OfflinePlanner().plan(TASK)
        ids: list[str] = []

        async def submit() -> None:
            for start in range(0, tasks, SUBMIT_BATCH):
                group = (store.submit(TASK, plan) for _ in range(min(SUBMIT_BATCH, tasks - start)))
                ids.extend(await asyncio.gather(*group))

        phases = {"submit": await _phase(redis_url, tasks, submit, counter)}
        header = [keys.prefix, 600, 0, 0, "", ""]
        for agent in AGENTS:
            records = await _records(redis, keys, agent)

            async def record(records: list[list[Any]] = records) -> None:
                for start in range(0, len(records), batch):
                    args = [*header]
                    for one in records[start : start + batch]:
                        args += one
                    await store.scripts.call("complete", *args)

            phases[agent] = await _phase(redis_url, tasks, record, counter)
        states = [await redis.hget(keys.task(task_id), "state") for task_id in ids]
        if states.count("completed") != tasks:
            raise RuntimeError(f"{states.count('completed')} of {tasks} tasks completed")
        return phases
    finally:
        await redis.aclose()


def report(phases: dict[str, Phase]) -> str:
    counted = all(p.instructions is not None for p in phases.values())
    head = f"{'phase':10s} {'script µs':>10s} {'commands':>9s} {'CPU µs':>8s}"
    lines = [head + (f" {'instructions':>13s}" if counted else "") + "  (per task)"]
    for name, p in [*phases.items(), ("total", _total(phases))]:
        line = f"{name:10s} {p.script_us:10.1f} {p.commands:9.1f} {p.cpu_us:8.1f}"
        lines.append(line + (f" {p.instructions or 0:13,.0f}" if counted else ""))
    return "\n".join(lines)


def _total(phases: dict[str, Phase]) -> Phase:
    values = phases.values()
    return Phase(
        sum(p.script_us for p in values),
        sum(p.commands for p in values),
        sum(p.cpu_us for p in values),
        sum(p.instructions or 0 for p in values),
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m app.bench.script_cost", description=__doc__)
    parser.add_argument("--tasks", type=int, default=600)
    parser.add_argument("--batch", type=int, default=8, help="records per complete.lua call")
    parser.add_argument("--redis-url", help="default: an embedded Valkey of its own")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="count the server's instructions per task under valgrind's callgrind (its own "
        "server; after a warm-up run of 100 tasks)",
    )
    args = parser.parse_args()
    if args.instructions:
        if args.redis_url:
            parser.error("--instructions runs a server of its own: no --redis-url")
        if why := instructions.missing():
            parser.error(why)
        with instructions.server() as (url, counter):
            asyncio.run(measure(url, min(100, args.tasks), args.batch))  # library, caches
            print(report(asyncio.run(measure(url, args.tasks, args.batch, counter))))
        return
    if args.redis_url:
        print(report(asyncio.run(measure(args.redis_url, args.tasks, args.batch))))
        return
    from app.embedded import start_embedded

    server = start_embedded(Path(tempfile.mkdtemp(prefix="script-cost-")), durable=False)
    try:
        print(report(asyncio.run(measure(str(server.connection_url), args.tasks, args.batch))))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
