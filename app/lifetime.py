"""Child processes that do not outlive the process that started them."""

from __future__ import annotations

import ctypes
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """A ``preexec_fn``: the child gets SIGTERM (and drains, as on any SIGTERM) when its parent
    dies, however it dies. A supervisor killed with SIGKILL, or by a closed terminal before it
    could stop them, would otherwise leave its children running: holding their ports, and
    taking the next run's work with old code. The kernel watches the thread that started the
    child, so start it from one that lives as long as the child should (the main thread).
    Linux only; elsewhere a no-op."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
