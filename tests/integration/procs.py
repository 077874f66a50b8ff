"""Real processes for integration tests: the API under uvicorn and workers, as users run them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from app.bench.stack import free_port
from app.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def env_for(settings: Settings, **extra: Any) -> dict[str, str]:
    env = dict(os.environ)
    values = settings.model_dump(exclude_none=True)
    for key, value in values.items():
        if key in ("openai_api_key",):
            continue
        env[f"AGENTIC_{key.upper()}"] = str(value)
    for key, value in extra.items():
        env[f"AGENTIC_{key.upper()}"] = str(value)
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class Proc:
    popen: subprocess.Popen[bytes]
    log_path: Path
    url: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(10)

    def terminate(self, timeout: float = 30) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        return self.popen.wait(timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _spawn(args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    out = log_path.open("ab")
    return subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)


def start_api(settings: Settings, tmp: Path, port: int | None = None, **extra: Any) -> Proc:
    port = port or free_port()
    log_path = tmp / f"api-{port}.log"
    popen = _spawn(
        [sys.executable, "-m", "app.cli", "api", "--host", "127.0.0.1", "--port", str(port)],
        env_for(settings, **extra),
        log_path,
    )
    proc = Proc(popen, log_path, url=f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            raise RuntimeError(f"API exited early:\n{proc.log()}")
        try:
            if httpx.get(f"{proc.url}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"API did not become ready:\n{proc.log()}")


def start_worker(settings: Settings, tmp: Path, agents: str | None = None, **extra: Any) -> Proc:
    n = len(list(tmp.glob("worker-*.log")))
    log_path = tmp / f"worker-{n}.log"
    args = [sys.executable, "-m", "worker.agent_worker"] + (["--agents", agents] if agents else [])
    return Proc(_spawn(args, env_for(settings, **extra), log_path), log_path)


def sse_frames(
    url: str, headers: dict[str, str] | None = None, limit: int | None = None, timeout: float = 60
) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(id, event, data) for each event frame, in order, until the server ends the stream
    or ``limit`` frames were read (then the connection is dropped, as a cut client would)."""
    count = 0
    with httpx.stream("GET", url, headers=headers or {}, timeout=timeout) as resp:
        resp.raise_for_status()
        frame: dict[str, str] = {}
        for line in resp.iter_lines():
            if line == "":
                if "data" in frame:
                    yield frame.get("id", ""), frame.get("event", ""), orjson.loads(frame["data"])
                    count += 1
                    if limit is not None and count >= limit:
                        return
                frame = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(":")
                frame[name] = value[1:] if value.startswith(" ") else value


def wait_terminal(api_url: str, task_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = httpx.get(f"{api_url}/tasks/{task_id}", timeout=5).json()
        if task["state"] != "running":
            return dict(task)
        time.sleep(0.1)
    raise TimeoutError(f"task {task_id} still running after {timeout}s")
