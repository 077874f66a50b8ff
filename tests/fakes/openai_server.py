"""A local server that speaks the OpenAI Chat Completions wire protocol, for tests.

``POST /v1/chat/completions``:

- non-streamed: one ``chat.completion`` object with ``usage``;
- ``stream: true``: ``data: {chat.completion.chunk}`` SSE lines, the text cut into pieces of
  ``Reply.chunk_chars``, a last chunk with ``finish_reason``, then (when
  ``stream_options.include_usage`` is true) a chunk with empty ``choices`` and the ``usage``,
  then ``data: [DONE]``;
- ``response_format`` of type ``json_schema`` or ``json_object`` is accepted, unless
  ``reject_json_schema`` / ``reject_json_object`` is set (then 400, as endpoints without
  structured outputs answer).

What it answers is scripted per model name: ``fake.script(model, Reply(...), Fail(429, ...))``
queues behaviours used one per request, in order; when a model's queue is empty its default
applies (``fake.default(model, ...)``, else :data:`DEFAULT_TEXT` or, for a JSON request,
:data:`DEFAULT_PLAN`). Every request is recorded in ``fake.calls`` with the usage it was sent,
so a test can compare a system's token counts with what the "endpoint" reported.

It runs under uvicorn in a daemon thread on 127.0.0.1 (``with FakeOpenAI() as fake``), so API
and worker processes started by a test reach it like a real endpoint.
"""

from __future__ import annotations

import asyncio
import json
import math
import socket
import threading
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

DEFAULT_PLAN: dict[str, Any] = {
    "steps": [
        {"id": "r1", "agent": "retriever", "instruction": "Redis Streams consumer groups",
         "depends_on": []},
        {"id": "r2", "agent": "retriever", "instruction": "Kafka consumer groups and partitions",
         "depends_on": []},
        {"id": "an", "agent": "analyzer", "instruction": "Compare both for job queues",
         "depends_on": ["r1", "r2"]},
        {"id": "wr", "agent": "writer",
         "instruction": 'Write a cited Markdown report titled "Streams vs Kafka".',
         "depends_on": ["an"]},
    ]
}  # fmt: skip
DEFAULT_TEXT = (
    "# Streams vs Kafka\n\nRedis Streams keep entries in memory and deliver them to consumer "
    "groups at least once [1]. Kafka stores partitions on disk and scales consumers per "
    "partition [2].\n\n## Recommendation\n\nUse Redis Streams for modest job queues."
)


@dataclass
class Reply:
    text: str | None = None  # None: the model's default
    usage: tuple[int, int] | Literal["auto"] | None = "auto"  # (prompt, completion); None: omit
    chunk_chars: int = 12
    delay_s: float = 0.0  # before the answer starts
    chunk_delay_s: float = 0.0


@dataclass
class Fail:
    status: int
    message: str = "scripted failure"
    retry_after: float | None = None


Behaviour = Reply | Fail


@dataclass
class Call:
    model: str
    body: dict[str, Any]
    authorization: str
    status: int = 200
    usage: dict[str, int] | None = None
    text: str = ""


@dataclass
class FakeOpenAI:
    api_key: str | None = None  # set: requests without "Bearer <key>" get 401
    reject_json_schema: bool = False
    reject_json_object: bool = False
    calls: list[Call] = field(default_factory=list)
    port: int = 0
    _scripts: dict[str, deque[Behaviour]] = field(default_factory=lambda: defaultdict(deque))
    _defaults: dict[str, Behaviour] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    # --- scripting --------------------------------------------------------------------------
    def script(self, model: str, *behaviours: Behaviour) -> None:
        with self._lock:
            self._scripts[model].extend(behaviours)

    def default(self, model: str, behaviour: Behaviour) -> None:
        with self._lock:
            self._defaults[model] = behaviour

    def calls_for(self, model: str, status: int | None = 200) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.model == model and status in (None, c.status)]

    def usage_sum(self, model: str) -> tuple[int, int]:
        sent = [c.usage for c in self.calls_for(model) if c.usage]
        return sum(u["prompt_tokens"] for u in sent), sum(u["completion_tokens"] for u in sent)

    def _next(self, model: str) -> Behaviour:
        with self._lock:
            queue = self._scripts[model]
            return queue.popleft() if queue else self._defaults.get(model, Reply())

    # --- lifecycle --------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> FakeOpenAI:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def start(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        app = Starlette(routes=[Route("/v1/chat/completions", self._handle, methods=["POST"])])
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("fake OpenAI server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)

    # --- the endpoint -----------------------------------------------------------------------
    async def _handle(self, request: Request) -> Response:
        body = await request.json()
        call = Call(str(body.get("model")), body, request.headers.get("authorization", ""))
        with self._lock:
            self.calls.append(call)
        if self.api_key is not None and call.authorization != f"Bearer {self.api_key}":
            return _error(call, 401, "Incorrect API key provided")
        fmt = (body.get("response_format") or {}).get("type")
        if (fmt == "json_schema" and self.reject_json_schema) or (
            fmt == "json_object" and self.reject_json_object
        ):
            return _error(call, 400, f"response_format {fmt} is not supported by this model")
        behaviour = self._next(call.model)
        if isinstance(behaviour, Fail):
            return _error(call, behaviour.status, behaviour.message, behaviour.retry_after)
        if behaviour.delay_s:
            await asyncio.sleep(behaviour.delay_s)
        text = behaviour.text
        if text is None:
            text = json.dumps(DEFAULT_PLAN) if fmt or _asks_for_plan(body) else DEFAULT_TEXT
        call.text = text
        call.usage = _usage(behaviour, body, text)
        if body.get("stream"):
            include = bool((body.get("stream_options") or {}).get("include_usage"))
            if not include:
                call.usage = None  # the client was not sent any usage
            return StreamingResponse(
                _chunks(call.model, text, behaviour, call.usage if include else None),
                media_type="text/event-stream",
            )
        return JSONResponse(_completion(call.model, text, call.usage))


def _asks_for_plan(body: dict[str, Any]) -> bool:
    messages = body.get("messages") or []
    return bool(messages) and "Planner" in str(messages[0].get("content", ""))


def _usage(behaviour: Reply, body: dict[str, Any], text: str) -> dict[str, int] | None:
    if behaviour.usage is None:
        return None
    if behaviour.usage == "auto":
        prompt = sum(len(str(m.get("content", ""))) for m in body.get("messages") or [])
        pair = (math.ceil(prompt / 3) + 7, math.ceil(len(text) / 3) + 1)
    else:
        pair = behaviour.usage
    return {"prompt_tokens": pair[0], "completion_tokens": pair[1], "total_tokens": sum(pair)}


def _error(call: Call, status: int, message: str, retry_after: float | None = None) -> Response:
    call.status = status
    headers = {"retry-after": f"{retry_after:g}"} if retry_after is not None else {}
    body = {"error": {"message": message, "type": "fake_error", "code": status}}
    return JSONResponse(body, status_code=status, headers=headers)


def _completion(model: str, text: str, usage: dict[str, int] | None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": usage,
    }


async def _chunks(
    model: str, text: str, behaviour: Reply, usage: dict[str, int] | None
) -> AsyncIterator[bytes]:
    def frame(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        chunk = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": choices,
            **extra,
        }
        return f"data: {json.dumps(chunk)}\n\n".encode()

    size = max(1, behaviour.chunk_chars)
    for i in range(0, len(text), size):
        delta: dict[str, Any] = {"content": text[i : i + size]}
        if i == 0:
            delta["role"] = "assistant"
        yield frame([{"index": 0, "delta": delta, "finish_reason": None}])
        if behaviour.chunk_delay_s:
            await asyncio.sleep(behaviour.chunk_delay_s)
    yield frame([{"index": 0, "delta": {}, "finish_reason": "stop"}])
    if usage is not None:
        yield frame([], usage=usage)
    yield b"data: [DONE]\n\n"
