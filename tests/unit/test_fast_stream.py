"""The /stream fast path reads its start id exactly as the FastAPI route does."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from app.agents.base import StepOutput
from app.api.fast_stream import _last_event_id, is_stream_request


def scope(
    path: str = "/stream/t1",
    headers: list[tuple[bytes, bytes]] | None = None,
    query: bytes = b"",
    method: str = "GET",
) -> dict[str, object]:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "headers": headers or [],
        "query_string": query,
    }


def test_only_get_stream_requests_take_the_fast_path() -> None:
    assert is_stream_request(scope())
    assert not is_stream_request(scope(method="HEAD"))
    assert not is_stream_request(scope(path="/tasks/t1"))
    assert not is_stream_request({"type": "websocket", "path": "/stream/t1"})


def test_start_id_header_first_then_the_last_after_parameter() -> None:
    assert _last_event_id(scope()) is None
    assert _last_event_id(scope(query=b"after=1-0&after=2-0")) == "2-0"
    assert _last_event_id(scope(headers=[(b"last-event-id", b"5-1")], query=b"after=2-0")) == "5-1"
    # An empty header (EventSource before its first event) does not hide ?after=.
    assert _last_event_id(scope(headers=[(b"last-event-id", b"")], query=b"after=2-0")) == "2-0"


@pytest.mark.parametrize("cost", [math.inf, math.nan, -1.0])
def test_an_agent_cannot_report_a_cost_that_would_break_the_batched_record(cost: float) -> None:
    """complete.lua records a batch of outcomes in one call; a cost cjson cannot encode would
    fail every record of the batch, so the agent's output is refused first (a step failure)."""
    with pytest.raises(ValidationError):
        StepOutput(data={}, cost_units=cost)
