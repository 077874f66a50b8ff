"""A small synchronous client of the HTTP API, as the terminal commands use it.

``follow`` reads a task's event log over SSE and survives what a long-lived stream meets: an
API pod draining or restarting, a proxy answering 502 for a moment, a half-open connection
(the server sends a keep-alive at least every ``sse_ping_s``; a read that waits longer is a cut).
It resumes from the last event id each time, so nothing is missed or repeated, and it ends only
when the server says nothing follows (204): after a terminal event it asks once more, because a
failed task whose dead-lettered step is redriven goes on after its ``task_failed``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any

import httpx
import orjson

DEFAULT_URL = "http://127.0.0.1:8000"
TERMINAL_EVENTS = frozenset({"task_completed", "task_failed", "task_cancelled"})
#: Longer than the server's keep-alive interval (15 s by default): a silent read is a dead link.
DEFAULT_READ_TIMEOUT_S = 45.0
DEFAULT_RETRY_S = 0.5
MAX_RETRY_S = 5.0
#: How long ``follow`` keeps trying while the API cannot be reached at all.
DEFAULT_GIVE_UP_S = 300.0

Event = tuple[str, dict[str, Any]]


class ApiError(Exception):
    """The API answered with an error (``status``), or could not be reached (``status`` 0)."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


def _error(resp: httpx.Response) -> ApiError:
    try:
        body = resp.json()
    except ValueError:
        body = None
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        return ApiError(resp.status_code, str(err.get("message")), err.get("code"))
    return ApiError(resp.status_code, f"HTTP {resp.status_code}: {resp.text[:200]}")


def parse_sse(lines: Iterable[str]) -> Iterator[tuple[str, str, str]]:
    """(id, event, data) per dispatched SSE event; comments and ``retry:`` fields are skipped."""
    event_id, event, data = "", "", list[str]()
    for line in lines:
        if line == "":
            if data:
                yield event_id, event or "message", "\n".join(data)
            event, data = "", []  # the id persists, as in EventSource
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "id":
            event_id = value
        elif name == "event":
            event = value
        elif name == "data":
            data.append(value)


class ApiClient:
    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout_s: float = 30.0,
        read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
        retry_s: float = DEFAULT_RETRY_S,
        give_up_s: float = DEFAULT_GIVE_UP_S,
    ) -> None:
        self.http = httpx.Client(
            base_url=base_url.rstrip("/"),
            transport=transport,
            timeout=httpx.Timeout(timeout_s, read=read_timeout_s),
        )
        self.retry_s = retry_s
        self.give_up_s = give_up_s

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(
        self, exc: type[BaseException] | None, val: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    # --- plain requests ----------------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            resp = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ApiError(0, f"cannot reach the API at {self.http.base_url}: {exc}") from exc
        if resp.status_code >= 400:
            raise _error(resp)
        return resp.json() if resp.content else None

    def submit(self, user_input: str) -> dict[str, Any]:
        return dict(self.request("POST", "/run-task", json={"user_input": user_input}))

    def task(self, task_id: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/tasks/{task_id}"))

    def metrics(self, task_id: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/metrics/{task_id}"))

    def cancel(self, task_id: str) -> dict[str, Any]:
        return dict(self.request("POST", f"/tasks/{task_id}/cancel"))

    def tasks(self, limit: int = 50) -> list[dict[str, Any]]:
        return list(self.request("GET", "/tasks", params={"limit": limit})["tasks"])

    def dlq(self, limit: int = 100) -> dict[str, Any]:
        return dict(self.request("GET", "/dlq", params={"limit": limit}))

    def redrive(self, entry_id: str) -> dict[str, Any]:
        return dict(self.request("POST", f"/dlq/{entry_id}/redrive"))

    def redrive_all(self) -> dict[str, Any]:
        return dict(self.request("POST", "/dlq/redrive"))

    # --- the event log -----------------------------------------------------------------------

    def follow(self, task_id: str, after: str = "0-0") -> Iterator[Event]:
        """Every event of the task after ``after``, each once, in order, until nothing follows."""
        last_id = after
        delay = self.retry_s
        down_since: float | None = None
        while True:
            try:
                with self.http.stream(
                    "GET", f"/stream/{task_id}", headers={"Last-Event-ID": last_id}
                ) as resp:
                    if resp.status_code == 204:
                        return
                    if resp.status_code in (400, 404):
                        resp.read()
                        raise _error(resp)
                    if resp.status_code == 200:
                        down_since, delay = None, self.retry_s
                        got = 0
                        for event_id, _event, data in parse_sse(resp.iter_lines()):
                            last_id, got = event_id, got + 1
                            yield event_id, orjson.loads(data)
                        if got:
                            continue  # ended after events (a terminal one): ask again at once
                        # Ended with only a retry hint (a draining pod): wait, then resume.
            except (httpx.TransportError, httpx.StreamError):
                pass
            # Unreachable, or a 5xx/429 from a proxy in between: wait and resume.
            now = time.monotonic()
            down_since = down_since or now
            if now - down_since > self.give_up_s:
                raise ApiError(0, f"the API at {self.http.base_url} stayed unreachable")
            time.sleep(delay)
            delay = min(delay * 2, MAX_RETRY_S)
