"""``python -m app.bench [--quick] [--json] [--compare celery] [--plot DIR]`` (same as
``agentic bench``).

``--json`` prints every figure, each system's raw latency samples (ms) last under
``samples``, one line per series, so that a saved output can be redrawn with ``python -m
app.bench.plots FIGURES.json DIR``. ``--plot DIR`` writes the PNGs of ``app.bench.plots``
after the run and prints their paths (on stderr with ``--json``, so stdout stays JSON).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

from app.bench.report import print_report, to_json
from app.bench.run import Options, as_dict, quick, run


def _counts(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of counts: {text!r}"
        ) from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"counts must be positive: {text!r}")
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agentic bench")
    parser.add_argument("--quick", action="store_true", help="small sizes (CI smoke test)")
    parser.add_argument("--json", action="store_true", help="print figures as JSON")
    parser.add_argument("--compare", choices=["celery"], help="run the same DAG on Celery too")
    parser.add_argument("--tasks", type=int)
    parser.add_argument("--concurrency", type=int)
    parser.add_argument("--streams", type=int)
    parser.add_argument(
        "--inflight",
        type=_counts,
        metavar="N,N,...",
        help="tasks in flight of the throughput sweep (default 1,4,16,64,128; --quick 1,8)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        help="rounds of the headline figures, each the median of its rounds; with --compare,"
        " the two systems take turns in each (default 4; --quick 1)",
    )
    parser.add_argument(
        "--durable", action="store_true", help="embedded Valkey with appendfsync always"
    )
    parser.add_argument(
        "--plot",
        type=Path,
        metavar="DIR",
        help="write PNG plots (throughput vs in-flight and workers, latency CDF) into DIR",
    )
    args = parser.parse_args(argv)
    if args.plot:
        _check_matplotlib()  # before a run of a minute, not after it
    opts = quick() if args.quick else Options()
    opts.tasks = args.tasks or opts.tasks
    opts.concurrency = args.concurrency or opts.concurrency
    opts.streams = args.streams or opts.streams
    opts.inflight = args.inflight or opts.inflight
    opts.durable = args.durable
    opts.compare_celery = args.compare == "celery"
    if args.rounds is not None:
        if args.rounds < 1:
            parser.error(f"--rounds must be at least 1, not {args.rounds}")
        opts.rounds = args.rounds
    figures = as_dict(run(opts, os.environ.get("AGENTIC_REDIS_URL")))
    if args.json:
        sys.stdout.write(to_json(figures) + "\n")
    else:
        print_report(figures)
    if args.plot:
        from app.bench.plots import write_plots

        for path in write_plots(figures, args.plot):
            print(f"plot: {path}", file=sys.stderr if args.json else sys.stdout)
    ours = figures["agentic"]
    return 0 if ours["completed"] == ours["tasks"] and not ours["failures"] else 1


def _check_matplotlib() -> None:
    if importlib.util.find_spec("matplotlib") is None:
        raise SystemExit("--plot needs matplotlib: pip install -e '.[bench]'")


if __name__ == "__main__":
    raise SystemExit(main())
