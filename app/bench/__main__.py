"""``python -m app.bench [--quick] [--json] [--compare celery]`` (same as ``agentic bench``)."""

from __future__ import annotations

import argparse
import os
import sys

import orjson

from app.bench.report import print_report
from app.bench.run import Options, as_dict, quick, run_celery, run_ours


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agentic bench")
    parser.add_argument("--quick", action="store_true", help="small sizes (CI smoke test)")
    parser.add_argument("--json", action="store_true", help="print figures as JSON")
    parser.add_argument("--compare", choices=["celery"], help="run the same DAG on Celery too")
    parser.add_argument("--tasks", type=int)
    parser.add_argument("--concurrency", type=int)
    parser.add_argument("--streams", type=int)
    parser.add_argument(
        "--durable", action="store_true", help="embedded Valkey with appendfsync always"
    )
    args = parser.parse_args(argv)
    opts = quick() if args.quick else Options()
    opts.tasks = args.tasks or opts.tasks
    opts.concurrency = args.concurrency or opts.concurrency
    opts.streams = args.streams or opts.streams
    opts.durable = args.durable
    url = os.environ.get("AGENTIC_REDIS_URL")
    results = [run_ours(opts, url)]
    if args.compare == "celery":
        results.append(run_celery(opts, url))
    figures = as_dict(results)
    if args.json:
        sys.stdout.write(orjson.dumps(figures, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print_report(figures)
    ours = figures["agentic"]
    return 0 if ours["completed"] == ours["tasks"] and not ours["failures"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
