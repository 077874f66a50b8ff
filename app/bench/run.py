"""Scenarios of ``agentic bench`` and the report they print.

Each system's figures are a flat dict of numbers (the table ``print_report`` prints), plus
``scale_out`` and ``inflight`` (lists of points), ``fanout``, ``rounds`` (each round's own
headline figures) and ``samples``: the raw end-to-end latencies in ms of the idle runs
(``idle_latency_ms``) and of the saturated runs (``saturated_latency_ms``), which the latency
CDF of ``app.bench.plots`` is drawn from.

The headline figures (saturated burst, then idle run) are measured in ``Options.rounds``
rounds, and with ``--compare celery`` the two systems take turns within each round, both
stacks up all along (ours first in even rounds, Celery first in odd ones). These machines'
speed drifts within minutes: measured one system after the other, a ratio partly compared two
machines. Each headline figure is the median of its rounds; the samples are every round's.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import math
import re
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from app.bench import client, probe
from app.bench.stack import Stack, raise_fd_limit, rss_kib, stop

STEPS_PER_TASK = 4
COUNTS = ("tasks", "completed")  # summed over a system's rounds, never a median or a ratio
SAMPLE_DECIMALS = 3  # latency samples are kept in ms to the µs


@dataclass
class Options:
    tasks: int = 2000
    concurrency: int = 64
    idle_tasks: int = 200
    workers: tuple[int, ...] = (1, 2, 4)
    inflight: tuple[int, ...] = (1, 4, 16, 64, 128)
    inflight_tasks: int = 0  # tasks per in-flight point C; 0: max(100, min(tasks // 4, 32 C))
    streams: int = 5000
    compare_celery: bool = False
    durable: bool = False
    rounds: int = 4  # of the headline figures (see the module's docstring): even, balanced turns


@dataclass
class Results:
    system: str
    figures: dict[str, Any] = field(default_factory=dict)


def quick() -> Options:
    return Options(
        tasks=200,
        concurrency=32,
        idle_tasks=30,
        workers=(1, 2),
        inflight=(1, 8),
        inflight_tasks=30,
        streams=200,
        rounds=1,
    )


def ms(latencies_s: list[float]) -> list[float]:
    return [round(x * 1000, SAMPLE_DECIMALS) for x in latencies_s]


@contextlib.contextmanager
def valkey(url: str | None, durable: bool) -> Iterator[str]:
    if url:
        yield url
        return
    import tempfile

    from app.embedded import start_embedded

    server = start_embedded(Path(tempfile.mkdtemp(prefix="bench-valkey-")), durable=durable)
    try:
        yield str(server.connection_url)
    finally:
        server.stop()


def saturated(
    stack: Stack,
    opts: Options,
    tasks: int | None = None,
    concurrency: int | None = None,
    warmup: int = 50,
) -> dict[str, Any]:
    """N tasks with C in flight (after a short warm-up at the same C). The latencies of the
    burst are returned under ``samples`` (ms)."""
    n = tasks or opts.tasks
    c = concurrency or opts.concurrency
    asyncio.run(client.burst(stack.api_url, min(n, warmup), c))  # warm up
    before = probe.snapshot(stack.redis_url)
    out, wall = asyncio.run(client.burst(stack.api_url, n, c))
    after = probe.snapshot(stack.redis_url)
    steps = STEPS_PER_TASK * len(out.latencies_s)
    cmds, cpu_us = probe.per_step(before, after, steps)
    return {
        "tasks": n,
        "completed": len(out.latencies_s),
        "failures": out.failures[:5],
        "tasks_per_s": len(out.latencies_s) / wall,
        "steps_per_s": steps / wall,
        "latency_p50_ms": client.percentile(out.latencies_s, 0.5) * 1000,
        "latency_p99_ms": client.percentile(out.latencies_s, 0.99) * 1000,
        "redis_commands_per_step": cmds,
        "redis_cpu_us_per_step": cpu_us,
        "redis_ceiling_steps_per_s": ceiling(cpu_us),
        "samples": {"saturated_latency_ms": ms(out.latencies_s)},
    }


def idle(stack: Stack, opts: Options) -> dict[str, Any]:
    out = asyncio.run(client.sequential(stack.api_url, opts.idle_tasks))
    return {
        "idle_p50_ms": client.percentile(out.latencies_s, 0.5) * 1000,
        "idle_p99_ms": client.percentile(out.latencies_s, 0.99) * 1000,
        "idle_failures": out.failures[:5],
        "samples": {"idle_latency_ms": ms(out.latencies_s)},
    }


def inflight_sweep(stack: Stack, opts: Options) -> list[dict[str, Any]]:
    """Saturated throughput at each in-flight count of ``opts.inflight`` (the current workers).

    A point at C in flight runs ``opts.inflight_tasks`` tasks, else max(100, min(tasks / 4,
    32 C)): few in flight need few tasks for a steady rate (and one at a time is slow), many
    need some per slot. The stack is warm by then: one task per slot opens the connections.
    """
    curve = []
    for c in opts.inflight:
        n = opts.inflight_tasks or max(100, min(opts.tasks // 4, 32 * c))
        figures = saturated(stack, opts, tasks=n, concurrency=c, warmup=c)
        curve.append(
            {
                "in_flight": c,
                "tasks": n,
                "completed": figures["completed"],
                "steps_per_s": figures["steps_per_s"],
                "latency_p50_ms": figures["latency_p50_ms"],
                "latency_p99_ms": figures["latency_p99_ms"],
                "redis_cpu_us_per_step": figures["redis_cpu_us_per_step"],
                "failures": figures["failures"],
            }
        )
    return curve


def scale_out(stack: Stack, opts: Options) -> list[dict[str, Any]]:
    curve = []
    for n in opts.workers:
        stack.scale_workers(n)
        figures = saturated(stack, opts, tasks=max(100, opts.tasks // 2))
        curve.append(
            {
                "workers": n,
                "steps_per_s": figures["steps_per_s"],
                "redis_cpu_us_per_step": figures["redis_cpu_us_per_step"],
                "failures": figures["failures"],
            }
        )
    stack.scale_workers(1)
    return curve


async def open_streams(http: aiohttp.ClientSession, api_url: str) -> int:
    async with http.get(f"{api_url}/metrics") as resp:
        text = await resp.text()
    found = re.search(r"^agentic_sse_open_streams (\S+)$", text, re.M)
    return int(float(found.group(1))) if found else -1


async def _fanout(stack: Stack, streams: int) -> dict[str, Any]:
    assert stack.api is not None
    per_task = 10
    async with client.session() as http:
        task_ids = [
            await client.submit(http, stack.api_url) for _ in range(max(1, streams // per_task))
        ]
        baseline = rss_kib(stack.api.pid)
        delays = client.Delays()
        kept: set[asyncio.Transport] = set()  # ended streams, closed once measured
        followers = [
            asyncio.create_task(
                client.follow_bare(stack.api_url, task_ids[i % len(task_ids)], delays, keep=kept)
            )
            for i in range(streams)
        ]
        deadline = time.monotonic() + 120
        opened = 0
        # Open on the server and caught up at the client (the server counts a stream from its
        # registration, before its catch-up is read): only then do the tasks start.
        while time.monotonic() < deadline:
            opened = await open_streams(http, stack.api_url)
            if opened >= streams and delays.caught_up >= streams:
                break
            await asyncio.sleep(0.2)  # the condition lives in another process
        loaded = rss_kib(stack.api.pid)
        # The load generator's own collector: full collections over the objects of thousands
        # of open streams paused this process for 250-300 ms in the middle of the burst, and
        # every event that arrived meanwhile counted as the API's delay. What exists now lives
        # to the end: out of the collector's sight until then.
        gc.collect()
        gc.freeze()
        delays.since_ms = time.time() * 1000  # only events written from now on
        try:
            # The tasks start now. In a thread: scale_workers sleeps, and a frozen event loop
            # here would hold back every event that arrives meanwhile and count it as delay.
            await asyncio.to_thread(stack.scale_workers, 1)
            results = await asyncio.gather(*followers, return_exceptions=True)
        finally:
            gc.unfreeze()
            for transport in kept:  # measured: the ended streams' connections may go now
                transport.close()
    errors = [r for r in results if isinstance(r, BaseException)]
    return {
        "streams": streams,
        "opened": opened,
        "stream_errors": len(errors),
        "delivery_p50_ms": client.percentile(delays.values, 0.5),
        "delivery_p99_ms": client.percentile(delays.values, 0.99),
        "api_rss_kib_per_stream": (loaded - baseline) / max(1, opened),
    }


def fanout(stack: Stack, opts: Options) -> dict[str, Any]:
    stack.scale_workers(0)  # tasks wait queued while the streams open
    return asyncio.run(_fanout(stack, opts.streams))


def headline(stack: Stack, opts: Options) -> dict[str, Any]:
    """One round of our headline figures: the saturated burst, then the idle run."""
    figures = saturated(stack, opts)
    quiet = idle(stack, opts)
    figures.update(quiet, samples=figures["samples"] | quiet["samples"])
    return figures


class CelerySide:
    """Celery's worker on its own server, up from :meth:`start` to :meth:`close`, so that its
    rounds can take turns with ours."""

    def __init__(self, url: str) -> None:
        import os

        os.environ["BENCH_REDIS_URL"] = url  # read when celery_side is imported
        from app.bench import celery_side

        self.url = url
        self.side = celery_side
        self.worker: Any = None

    def start(self) -> None:
        self.worker = self.side.start_worker(self.url)

    def headline(self, opts: Options) -> dict[str, Any]:
        """One round, warmed up as ours is (``saturated``): a short burst first."""
        self.side.burst(min(opts.tasks, 50))
        before = probe.snapshot(self.url)
        latencies, wall = self.side.burst(opts.tasks)
        after = probe.snapshot(self.url)
        steps = STEPS_PER_TASK * len(latencies)
        cmds, cpu_us = probe.per_step(before, after, steps)
        idle_lat = self.side.sequential(opts.idle_tasks)
        # Its canvas keeps each result subscribed until fetched; released now, they do not
        # weigh on this process (the load generator) while our next round runs.
        self.side.release_results()
        gc.collect()
        return {
            "tasks": opts.tasks,
            "completed": len(latencies),
            "failures": [],
            "tasks_per_s": len(latencies) / wall,
            "steps_per_s": steps / wall,
            "latency_p50_ms": client.percentile(latencies, 0.5) * 1000,
            "latency_p99_ms": client.percentile(latencies, 0.99) * 1000,
            "redis_commands_per_step": cmds,
            "redis_cpu_us_per_step": cpu_us,
            "redis_ceiling_steps_per_s": ceiling(cpu_us),
            "idle_p50_ms": client.percentile(idle_lat, 0.5) * 1000,
            "idle_p99_ms": client.percentile(idle_lat, 0.99) * 1000,
            "samples": {"saturated_latency_ms": ms(latencies), "idle_latency_ms": ms(idle_lat)},
        }

    def close(self) -> None:
        if self.worker is not None:
            # Its warm shutdown once outlasted 20 s here: killed then, with its pool.
            stop(self.worker, group=True)
            self.worker = None
        self.side.release_results()


def turns(round_no: int) -> tuple[str, str]:
    """Who goes first in a round: we do in even rounds (counting from 0), Celery in odd ones,
    so that a drift of the machine's speed across the rounds favours neither (exactly so for
    an even number of rounds, as the default four)."""
    return ("agentic", "celery") if round_no % 2 == 0 else ("celery", "agentic")


def ceiling(cpu_us: float) -> float:
    """The single-Redis ceiling: steps/s at 100 % of one core at this CPU per step."""
    return 1e6 / cpu_us if cpu_us > 0 else float("nan")


def combine(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One system's rounds as one set of figures: each number the median of its rounds (so
    two rows of the table may come from different rounds; NaN if a round has none),
    ``tasks`` and ``completed`` summed, failures and samples pooled, and each round's numbers
    (with its count of failures) kept under ``rounds``. The ceiling follows from the median
    CPU per step."""
    out: dict[str, Any] = {}
    for key, value in rounds[0].items():
        values = [r[key] for r in rounds]
        if key in COUNTS:
            out[key] = sum(values)
        elif key == "samples":
            out[key] = {name: [x for v in values for x in v[name]] for name in value}
        elif isinstance(value, list):
            out[key] = [x for v in values for x in v]
        elif isinstance(value, int | float):
            out[key] = _median(values)
        else:
            out[key] = value
    if "redis_cpu_us_per_step" in out:
        out["redis_ceiling_steps_per_s"] = ceiling(out["redis_cpu_us_per_step"])
    out["rounds"] = [
        {
            **{k: v for k, v in r.items() if isinstance(v, int | float)},
            "failures": len(r.get("failures", [])) + len(r.get("idle_failures", [])),
        }
        for r in rounds
    ]
    return out


def paired_ratios(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> dict[str, float]:
    """Ours over theirs for each number both rounds have: the median of the rounds' own
    ratios. The two systems of a round ran minutes apart at most, so a slow stretch of the
    machine weighs on both sides of a round's ratio; a ratio of the two medians would pair a
    round of ours with another round of theirs."""
    out: dict[str, float] = {}
    for key, value in ours[0].items():
        if key in COUNTS or not isinstance(value, int | float):
            continue
        if all(isinstance(b.get(key), int | float) for b in theirs):
            pairs = zip(ours, theirs, strict=True)
            out[key] = _median([a[key] / b[key] if b[key] else math.nan for a, b in pairs])
    return out


def _median(values: list[float]) -> float:
    """The median, or NaN if a round measured nothing: sorted with other numbers, a NaN would
    land anywhere, and the median with it."""
    return math.nan if any(math.isnan(v) for v in values) else statistics.median(values)


def run(opts: Options, redis_url: str | None) -> list[Results]:
    """Ours, and Celery's with ``opts.compare_celery``: the headline rounds taking turns, then
    our in-flight sweep, scale-out and fan-out (Celery's worker stopped by then)."""
    raise_fd_limit()
    with contextlib.ExitStack() as up:
        url = up.enter_context(valkey(redis_url, opts.durable))
        stack = Stack(url, env_extra={"AGENTIC_SSE_PING_S": "30"})
        up.callback(stack.close)
        server = probe.describe(url, embedded=redis_url is None)
        stack.start_api()
        stack.scale_workers(1)
        sides: dict[str, Callable[[], dict[str, Any]]] = {"agentic": lambda: headline(stack, opts)}
        rounds: dict[str, list[dict[str, Any]]] = {}
        with contextlib.ExitStack() as theirs:  # Celery's worker and server, up for the rounds
            if opts.compare_celery:
                celery = CelerySide(theirs.enter_context(valkey(redis_url, opts.durable)))
                theirs.callback(celery.close)
                celery.start()
                sides["celery"] = functools.partial(celery.headline, opts)
            rounds = {name: [] for name in sides}
            for n in range(max(1, opts.rounds)):
                for name in turns(n):
                    if name in sides:
                        rounds[name].append(sides[name]())
        figures = combine(rounds["agentic"])
        figures["inflight"] = inflight_sweep(stack, opts)
        figures["scale_out"] = scale_out(stack, opts)
        figures["fanout"] = fanout(stack, opts)
        figures["server"] = server
        figures["shared_server"] = bool(redis_url)  # with Celery's, when it ran
    if "celery" not in rounds:
        return [Results("agentic", figures)]
    figures["vs_celery"] = paired_ratios(rounds["agentic"], rounds["celery"])
    return [Results("agentic", figures), Results("celery", combine(rounds["celery"]))]


def as_dict(results: list[Results]) -> dict[str, Any]:
    """Figures by system, each with its ``samples`` last (so a JSON dump reads top-down)."""
    out = {}
    for r in results:
        figures = asdict(r)["figures"]
        samples = figures.pop("samples", None)
        out[r.system] = figures if samples is None else {**figures, "samples": samples}
    return out
