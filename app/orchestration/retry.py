"""Per-step retry policy: exponential backoff with jitter and a cap."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from app.config import Settings
from app.errors import PermanentStepError


def _default_retry_on(exc: BaseException) -> bool:
    """Retry I/O-ish failures; a programming error will fail the same way again."""
    if isinstance(exc, PermanentStepError):
        return False
    return not isinstance(exc, TypeError | AttributeError | NameError | SyntaxError | ImportError)


@dataclass(frozen=True)
class RetryPolicy:
    initial_interval_s: float = 0.5
    """Delay before the second attempt."""
    backoff_factor: float = 2.0
    """Each further delay is this many times the previous one."""
    max_interval_s: float = 30.0
    """No delay exceeds this cap (before jitter)."""
    max_attempts: int = 3
    """Attempts in all, the first included; after the last one the step is dead-lettered."""
    jitter: float = 0.25
    """Each delay is scaled by a random factor in [1 - jitter, 1 + jitter]."""
    retry_on: object = field(default=_default_retry_on, compare=False)
    """Predicate on the exception: False dead-letters the step at once."""

    @classmethod
    def from_settings(cls, s: Settings) -> RetryPolicy:
        return cls(
            initial_interval_s=s.retry_initial_s,
            backoff_factor=s.retry_factor,
            max_interval_s=s.retry_max_s,
            max_attempts=s.max_attempts,
            jitter=s.retry_jitter,
        )

    def delay_s(self, attempt: int, rng: random.Random | None = None) -> float:
        """Delay after attempt number ``attempt`` (1-based) failed."""
        base = min(
            self.max_interval_s, self.initial_interval_s * self.backoff_factor ** (attempt - 1)
        )
        spread = (rng or random).uniform(1 - self.jitter, 1 + self.jitter) if self.jitter else 1.0
        return max(0.0, base * spread)

    def should_retry(self, exc: BaseException) -> bool:
        predicate = self.retry_on
        return bool(predicate(exc)) if callable(predicate) else True
