"""The same 4-step DAG on Celery (two parallel retrieves as a chord header, then analyze, then
write), no-op tasks, Redis broker and result backend on a server like ours (its own embedded
Valkey, or ``AGENTIC_REDIS_URL`` shared with ours).

Needs ``pip install -e '.[bench]'``. The worker runs as ``celery -A app.bench.celery_side
worker``; the broker URL comes from ``BENCH_REDIS_URL`` (db 0 broker, db 1 results, db 2 the
completion marks this harness polls).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import redis
from celery import Celery, chain, chord, group

from app.bench.stack import stop
from app.lifetime import die_with_parent

_url = urlsplit(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379"))
BASE = f"{_url.scheme}://{_url.netloc}"  # databases 0-2 are ours to choose
app = Celery("agentic_bench", broker=f"{BASE}/0", backend=f"{BASE}/1")
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    worker_prefetch_multiplier=16,
    task_acks_late=True,
    broker_connection_retry_on_startup=True,
    result_expires=600,
    worker_hijack_root_logger=False,
)
MARKS = redis.Redis.from_url(f"{BASE}/2")


@app.task(name="bench.retrieve")
def retrieve(task_id: str, i: int) -> dict[str, str]:
    return {"doc": f"{task_id}-{i}"}


@app.task(name="bench.analyze")
def analyze(docs: list[Any], task_id: str) -> dict[str, int]:
    return {"n": len(docs)}


@app.task(name="bench.write")
def write(analysis: dict[str, int], task_id: str) -> str:
    MARKS.hset("done", task_id, time.time())
    return "ok"


def dag(task_id: str) -> Any:
    return chain(
        chord(group(retrieve.s(task_id, 0), retrieve.s(task_id, 1)), analyze.s(task_id)),
        write.s(task_id),
    )


def start_worker(redis_url: str, concurrency: int = 2) -> subprocess.Popen[bytes]:
    env = dict(os.environ, BENCH_REDIS_URL=redis_url)
    args = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "app.bench.celery_side",
        "worker",
        "-P",
        "prefork",
        "-c",
        str(concurrency),
        "--loglevel=WARNING",
        "--without-gossip",
        "--without-mingle",
    ]
    # A session of its own: the prefork pool's children are stopped with it (stop(group=True)).
    # And it gets SIGTERM if the bench dies, like our own processes (app.bench.stack).
    proc = subprocess.Popen(
        args,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=die_with_parent,
    )
    try:
        ping_deadline = time.monotonic() + 30
        while time.monotonic() < ping_deadline:
            if app.control.ping(timeout=0.5):
                return proc
        raise RuntimeError("the Celery worker did not answer ping")
    except BaseException:  # no answer, or Ctrl-C meanwhile: not left running, nor its pool
        stop(proc, grace_s=0, group=True)
        raise


def burst(n: int) -> tuple[list[float], float]:
    """Submit n DAGs at once (Celery's best case), wait for all. Returns (latencies s, wall s)."""
    MARKS.delete("done")
    submitted: dict[str, float] = {}
    started = time.time()
    for k in range(n):
        tid = f"t{k}"
        submitted[tid] = time.time()
        dag(tid).apply_async()
    while MARKS.hlen("done") < n and time.time() - started < 600:
        time.sleep(0.02)
    marks: dict[bytes, bytes] = MARKS.hgetall("done")  # type: ignore[assignment]
    done = {k.decode(): float(v) for k, v in marks.items()}
    wall = max(done.values()) - started if done else float("nan")
    return [done[t] - submitted[t] for t in done], wall


def sequential(n: int, timeout_s: float = 60) -> list[float]:
    """One DAG at a time; a DAG unfinished after ``timeout_s`` (a dead worker) fails the run."""
    MARKS.delete("done")
    out = []
    for k in range(n):
        tid = f"l{k}"
        t = time.time()
        dag(tid).apply_async()
        while not MARKS.hexists("done", tid):
            if time.time() - t > timeout_s:
                raise RuntimeError(f"Celery did not finish a DAG in {timeout_s:.0f} s")
            time.sleep(0.0005)
        out.append(float(MARKS.hget("done", tid) or 0) - t)
    return out


def release_results() -> None:
    """Drop the results Celery's canvas keeps subscribed (a chain's parent results call
    ``then``, which holds them strongly until they are fetched, and we never fetch them). Each
    one unsubscribes when released: that must happen while the server still runs, not at
    interpreter exit, where it printed a traceback per result under the report."""
    backend = app.backend
    try:
        for mapping in backend._pending_results:  # private; its layout changed in Celery 5.7
            for waiters in list(mapping.values()):
                results = waiters.values() if isinstance(waiters, Mapping) else [waiters]
                for result in list(results):
                    backend.remove_pending_result(result)
    except Exception as exc:  # a cosmetic cleanup must not hide the run's own outcome
        print(f"could not release Celery's results ({exc!r})", file=sys.stderr)
