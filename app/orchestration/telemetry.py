"""Prometheus metrics of the worker process (the API has its own, from the instrumentator)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

STEPS = Counter("agentic_steps_total", "Step attempts by outcome.", ["agent", "outcome"])
STEP_SECONDS = Histogram(
    "agentic_step_run_seconds",
    "Time an agent spent on one step attempt.",
    ["agent"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
RETRIES = Counter(
    "agentic_step_retries_total", "Step attempts that failed and were retried.", ["agent"]
)
DEAD_LETTERED = Counter("agentic_steps_dead_lettered_total", "Steps dead-lettered.", ["agent"])
FENCED = Counter(
    "agentic_step_results_fenced_total",
    "Results dropped because a newer attempt owns the step (duplicate or stale delivery).",
    ["agent"],
)
RECLAIMED = Counter(
    "agentic_entries_reclaimed_total", "Entries taken over from silent consumers.", ["agent"]
)
HANDED_OFF = Counter(
    "agentic_entries_handed_off_total",
    "Entries delivered by the script call that queued them, without a read.",
    ["agent"],
)
INFLIGHT = Gauge(
    "agentic_inflight_entries", "Stream entries this process is working on.", ["agent"]
)
LAG = Gauge(
    "agentic_stream_lag", "Entries in the agent stream not yet delivered to the group.", ["agent"]
)
PENDING = Gauge("agentic_stream_pending", "Entries delivered but not acknowledged.", ["agent"])
DELAYED = Gauge("agentic_delayed_retries", "Retries waiting for their backoff.")
TOKENS = Counter(
    "agentic_llm_tokens_total",
    "LLM tokens spent by step attempts that returned a result (fenced ones included).",
    ["agent", "model", "direction"],
)
COST = Counter(
    "agentic_cost_units_total",
    "Cost units of step attempts that returned a result (fenced ones included).",
    ["agent", "model"],
)
DLQ_DEPTH = Gauge("agentic_dlq_depth", "Entries in the dead-letter stream.")
