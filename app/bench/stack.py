"""The processes a benchmark run needs: a Valkey, the API under uvicorn, worker processes.

Everything runs as it would in production (separate processes, real HTTP), with
``AGENTIC_EXECUTOR=noop`` so only orchestration is measured.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from app.lifetime import die_with_parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def raise_fd_limit() -> int:
    """Thousands of SSE streams need thousands of descriptors (children inherit this)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return int(target)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@dataclass
class Stack:
    redis_url: str
    prefix: str = "bench"
    env_extra: dict[str, str] = field(default_factory=dict)
    api: subprocess.Popen[bytes] | None = None
    api_url: str = ""
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="agentic-bench-")))

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            AGENTIC_REDIS_URL=self.redis_url,
            AGENTIC_PREFIX=self.prefix,
            AGENTIC_EXECUTOR="noop",
            AGENTIC_LOG_LEVEL="WARNING",
            AGENTIC_WORKER_METRICS_PORT="0",
            AGENTIC_DRAIN_S="0",
            AGENTIC_TRIM_INTERVAL_S="2",
        )
        env.update(self.env_extra)
        return env

    def _spawn(self, args: list[str], name: str) -> subprocess.Popen[bytes]:
        log = (self.logdir / f"{name}.log").open("ab")
        return subprocess.Popen(
            args,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            # A worker left behind by a killed bench would reconnect to whatever server takes
            # the same port next and run its steps with stale code.
            preexec_fn=die_with_parent,
        )

    def start_api(self) -> None:
        port = free_port()
        self.api = self._spawn(
            [sys.executable, "-m", "app.cli", "api", "--host", "127.0.0.1", "--port", str(port)],
            "api",
        )
        self.api_url = f"http://127.0.0.1:{port}"
        wait_ready(f"{self.api_url}/readyz", self.api)

    def scale_workers(self, n: int) -> None:
        while len(self.workers) > n:
            stop(self.workers.pop())
        while len(self.workers) < n:
            self.workers.append(
                self._spawn(
                    [sys.executable, "-m", "worker.agent_worker"], f"worker{len(self.workers)}"
                )
            )
        time.sleep(0.5)  # consumer groups exist already; give the loops a moment to block

    def close(self) -> None:
        for proc in [*self.workers, *([self.api] if self.api else [])]:
            stop(proc)
        self.workers.clear()


def wait_ready(url: str, proc: subprocess.Popen[Any], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited while starting ({proc.returncode})")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} never became ready")


def stop(proc: subprocess.Popen[Any], grace_s: float = 15, group: bool = False) -> None:
    """TERM, then KILL if it outlasts ``grace_s``. ``group``: to its whole process group (a
    process started in a session of its own, with children of its own: Celery's pool)."""
    if proc.poll() is not None and not group:
        return

    def send(sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)

    send(signal.SIGTERM)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        proc.wait(5)
