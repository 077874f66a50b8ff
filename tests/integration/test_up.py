"""`agentic up`, as a newcomer runs it: embedded Valkey, API, worker; Ctrl-C stops it all,
and a second start finds every task of the first (AOF)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.procs import ROOT, free_port, wait_terminal

pytestmark = pytest.mark.integration


def start_up(tmp_path: Path, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTIC_")}
    env.update(PYTHONPATH=str(ROOT), AGENTIC_WORKER_METRICS_PORT="0", AGENTIC_DRAIN_S="0")
    log = (tmp_path / "up.log").open("ab")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app.cli",
            "up",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path / "data"),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
        start_new_session=True,  # its own process group, like a job in a terminal
    )
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        assert proc.poll() is None, (tmp_path / "up.log").read_text()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise AssertionError((tmp_path / "up.log").read_text())


def test_up_runs_a_task_stops_on_ctrl_c_and_keeps_data(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_up(tmp_path, port)
    try:
        r = httpx.post(f"{url}/run-task", json={"user_input": "Write a brief on KEDA autoscaling"})
        task_id = r.json()["task_id"]
        task = wait_terminal(url, task_id)
        assert task["state"] == "completed" and "KEDA" in task["output"]
    finally:
        # Ctrl-C in a terminal: SIGINT to the whole foreground process group. Regression: the
        # embedded server got it too and died first; the worker's last writes then failed.
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(40) == 0
    log = (tmp_path / "up.log").read_text()
    assert "Traceback" not in log and "Connection refused" not in log, log[-3000:]
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/healthz", timeout=1)
    assert list((tmp_path / "data").rglob("*.aof")), "no AOF written"
    proc = start_up(tmp_path, port)
    try:
        again = httpx.get(f"{url}/tasks/{task_id}").json()
        assert again["state"] == "completed" and again["output"] == task["output"]
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(40)


def _listening(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
    except httpx.TransportError:
        return False
    return True


def _gone_within(seconds: float, port: int) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _listening(port):
            return True
        time.sleep(0.2)
    return False


def _valkey_port(tmp_path: Path) -> int:
    """The embedded server's port, from the line ``agentic up`` prints."""
    for line in (tmp_path / "up.log").read_text().splitlines():
        if "embedded Valkey" in line:
            return int(line.split("redis://127.0.0.1:", 1)[1].split()[0].split("/")[0])
    raise AssertionError("no embedded Valkey line")


@pytest.mark.parametrize("how", ["closed terminal", "SIGKILL"])
def test_up_leaves_nothing_running_when_it_dies(tmp_path: Path, how: str) -> None:
    """A closed terminal (SIGHUP) stops it all as Ctrl-C does; a SIGKILLed supervisor, which
    stops nothing, still takes its API, worker and server down (they die with their parent).
    Regression: both left the API and the worker running, holding their ports."""
    port = free_port()
    proc = start_up(tmp_path, port)
    valkey = _valkey_port(tmp_path)
    proc.send_signal(signal.SIGHUP if how == "closed terminal" else signal.SIGKILL)
    proc.wait(40)
    assert _gone_within(30, port), (tmp_path / "up.log").read_text()[-3000:]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", valkey)) != 0:
                break
        time.sleep(0.2)
    else:
        raise AssertionError("the embedded server outlived agentic up")
