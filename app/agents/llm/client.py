"""A thin wrapper around the official SDK's ``AsyncOpenAI`` for any OpenAI-compatible endpoint.

Two calls: :meth:`LLMClient.complete` (one JSON or text answer, used by the planner) and
:meth:`LLMClient.stream` (``stream=True`` with ``stream_options.include_usage``; every text
delta goes to a callback as it arrives, used by the analyzer and the writer). Both return a
:class:`Completion` with the text and the :class:`Usage` the endpoint reported.

Timeouts and retries: ``AGENTIC_LLM_TIMEOUT_S`` per HTTP request and
``AGENTIC_LLM_MAX_RETRIES`` SDK retries (408/409/429/5xx and connection errors, with
``Retry-After`` honoured); what still fails becomes a step error (``errors.classify``). An
endpoint that rejects ``stream_options`` (some older servers do) is asked again without it.

Usage: the endpoint's numbers when it sends them (the final chunk of a stream); otherwise an
estimate, marked ``estimated``, of one token per 4 characters (rounded up) of the prompt's
message contents and of the answer's text.

The API key (``AGENTIC_OPENAI_API_KEY``, a ``SecretStr``) is read once here, handed to the SDK,
and appears in no log line, repr or error message. Unset, a placeholder is sent (local
servers such as Ollama or llama.cpp ignore it).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import openai
from openai import AsyncOpenAI

from app.agents.llm.errors import LLMRequestRejected, classify

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionMessageParam

    from app.config import Settings

Message = dict[str, str]
DeltaFn = Callable[[str], Awaitable[None]]
NO_KEY = "no-key"  # sent when no key is configured; local servers ignore it
CHARS_PER_TOKEN = 4


@dataclass(frozen=True, slots=True)
class Usage:
    tokens_in: int
    tokens_out: int
    estimated: bool = False


@dataclass(frozen=True, slots=True)
class Completion:
    text: str
    usage: Usage
    model: str
    finish_reason: str | None = None


def estimate_tokens(text: str) -> int:
    """The documented fallback when an endpoint reports no usage: 1 token per 4 characters."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def estimate_usage(messages: Sequence[Message], answer: str) -> Usage:
    prompt = "".join(m.get("content", "") for m in messages)
    return Usage(estimate_tokens(prompt), estimate_tokens(answer), estimated=True)


class LLMClient:
    def __init__(
        self,
        *,
        base_url: str | None,
        api_key: str | None,
        timeout_s: float,
        max_retries: int,
        temperature: float = 0.2,
    ) -> None:
        self._secret = api_key or None
        self._openai = AsyncOpenAI(
            base_url=base_url, api_key=api_key or NO_KEY, timeout=timeout_s, max_retries=max_retries
        )
        self.base_url = base_url
        self.temperature = temperature

    @classmethod
    def from_settings(cls, settings: Settings) -> LLMClient:
        key = settings.openai_api_key
        return cls(
            base_url=settings.openai_base_url,
            api_key=key.get_secret_value() if key is not None else None,
            timeout_s=settings.llm_timeout_s,
            max_retries=settings.llm_max_retries,
            temperature=settings.llm_temperature,
        )

    def __repr__(self) -> str:
        return f"LLMClient(base_url={self.base_url!r})"

    async def close(self) -> None:
        await self._openai.close()

    async def complete(
        self,
        model: str,
        messages: Sequence[Message],
        *,
        response_format: dict[str, Any] | None = None,
        max_tokens: int | None = None,
        timeout_s: float | None = None,
    ) -> Completion:
        extra: dict[str, Any] = {}
        if response_format is not None:
            extra["response_format"] = response_format
        if max_tokens is not None:
            extra["max_tokens"] = max_tokens
        if timeout_s is not None:
            extra["timeout"] = timeout_s
        try:
            reply = await self._openai.chat.completions.create(
                model=model,
                messages=_typed(messages),
                temperature=self.temperature,
                **extra,
            )
        except openai.OpenAIError as exc:
            raise classify(exc, model, self._secret) from None
        choice = reply.choices[0] if reply.choices else None
        text = (choice.message.content or "") if choice else ""
        usage = (
            Usage(reply.usage.prompt_tokens, reply.usage.completion_tokens)
            if reply.usage
            else estimate_usage(messages, text)
        )
        return Completion(text, usage, model, choice.finish_reason if choice else None)

    async def stream(
        self,
        model: str,
        messages: Sequence[Message],
        on_delta: DeltaFn,
        *,
        max_tokens: int | None = None,
    ) -> Completion:
        """Stream the answer, calling ``on_delta`` per text delta; usage from the last chunk."""
        try:
            return await self._stream(model, messages, on_delta, max_tokens, include_usage=True)
        except LLMRequestRejected as exc:
            if exc.status not in (400, 422) or "stream_options" not in str(exc):
                raise
        return await self._stream(model, messages, on_delta, max_tokens, include_usage=False)

    async def _stream(
        self,
        model: str,
        messages: Sequence[Message],
        on_delta: DeltaFn,
        max_tokens: int | None,
        include_usage: bool,
    ) -> Completion:
        extra: dict[str, Any] = {"max_tokens": max_tokens} if max_tokens is not None else {}
        if include_usage:
            extra["stream_options"] = {"include_usage": True}
        parts: list[str] = []
        usage: Usage | None = None
        finish: str | None = None
        try:
            stream = await self._openai.chat.completions.create(
                model=model,
                messages=_typed(messages),
                temperature=self.temperature,
                stream=True,
                **extra,
            )
            async with stream:
                async for chunk in stream:
                    if chunk.usage is not None:
                        usage = Usage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                    for choice in chunk.choices:
                        finish = choice.finish_reason or finish
                        delta = choice.delta.content if choice.delta else None
                        if delta:
                            parts.append(delta)
                            await on_delta(delta)
        except openai.OpenAIError as exc:
            raise classify(exc, model, self._secret) from None
        text = "".join(parts)
        return Completion(text, usage or estimate_usage(messages, text), model, finish)


def _typed(messages: Sequence[Message]) -> list[ChatCompletionMessageParam]:
    return cast("list[ChatCompletionMessageParam]", list(messages))
