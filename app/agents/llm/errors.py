"""LLM call failures, classified for the step retry policy (``app.orchestration.retry``).

::

    StepError (app.errors)            retried by the orchestration, with backoff
    ├── LLMUnavailable                timeout, connection error, or 408/409/429/5xx still
    │                                 failing after the SDK's own retries (Retry-After honoured)
    └── PermanentStepError            dead-lettered at once
        ├── LLMRequestRejected        any other 4xx: 400 bad request, 401 auth, 403, 404 model…
        └── BudgetExhausted           the task has no tokens left to spend

The OpenAI SDK retries transient HTTP failures itself (``AGENTIC_LLM_MAX_RETRIES``, honouring
``Retry-After`` up to 2 minutes); what reaches :func:`classify` has exhausted those retries, so
the step's own retry (minutes of backoff, another worker maybe) is the next line of defence.
Messages never carry the API key: :func:`classify` scrubs it in case a server echoes it back.
"""

from __future__ import annotations

import openai

from app.errors import PermanentStepError, StepError

RETRYABLE_STATUS = frozenset({408, 409, 429})
_MAX_MESSAGE_CHARS = 500


class LLMUnavailable(StepError):
    """The endpoint did not answer usefully; a later attempt may succeed."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class LLMRequestRejected(PermanentStepError):
    """The endpoint refused the request itself (4xx); sending it again cannot help."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class BudgetExhausted(PermanentStepError):
    """The task's token budget is spent: running the step would exceed it."""


def is_retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUS or status >= 500


def classify(exc: openai.OpenAIError, model: str, secret: str | None = None) -> StepError:
    """The step error an SDK exception becomes (retryable or permanent)."""
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        message = _scrub(f"{model}: HTTP {status}: {_message(exc)}", secret)
        if is_retryable_status(status):
            return LLMUnavailable(message, status)
        return LLMRequestRejected(message, status)
    if isinstance(exc, openai.APITimeoutError):
        return LLMUnavailable(f"{model}: request timed out")
    if isinstance(exc, openai.APIConnectionError):
        return LLMUnavailable(_scrub(f"{model}: connection failed: {exc}", secret))
    return LLMUnavailable(_scrub(f"{model}: {type(exc).__name__}: {exc}", secret))


def _message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    return str(exc.message)


def _scrub(text: str, secret: str | None) -> str:
    if secret:
        text = text.replace(secret, "***")
    return text[:_MAX_MESSAGE_CHARS]
