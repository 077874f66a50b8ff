from __future__ import annotations

import random

import pytest

from app.errors import PermanentStepError, StepError
from app.orchestration.retry import RetryPolicy


def test_delays_grow_exponentially_and_are_capped() -> None:
    policy = RetryPolicy(initial_interval_s=0.5, backoff_factor=2, max_interval_s=3, jitter=0)
    assert [policy.delay_s(a) for a in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_jitter_stays_within_its_band() -> None:
    policy = RetryPolicy(initial_interval_s=1, backoff_factor=2, max_interval_s=100, jitter=0.25)
    rng = random.Random(7)
    delays = [policy.delay_s(3, rng) for _ in range(500)]
    assert min(delays) >= 3.0 and max(delays) <= 5.0
    assert len({round(d, 6) for d in delays}) > 400  # really spread, not a constant


@pytest.mark.parametrize(
    ("exc", "retry"),
    [
        (StepError("boom"), True),
        (ConnectionError("reset"), True),
        (TimeoutError(), True),
        (PermanentStepError("bad input"), False),
        (TypeError("bug"), False),
        (AttributeError("bug"), False),
    ],
)
def test_default_retry_on_retries_io_not_programming_errors(exc: Exception, retry: bool) -> None:
    assert RetryPolicy().should_retry(exc) is retry
