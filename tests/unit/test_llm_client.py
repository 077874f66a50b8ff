"""LLM client against the fake OpenAI-compatible server: streaming, usage, error classes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from app.agents.llm.client import LLMClient, Message, estimate_usage
from app.agents.llm.errors import LLMRequestRejected, LLMUnavailable
from app.errors import PermanentStepError, StepError
from app.orchestration.retry import RetryPolicy
from tests.fakes.openai_server import Fail, FakeOpenAI, Reply

KEY = "sk-test-do-not-log-4f9c2e"
MESSAGES: list[Message] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Say something."},
]


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=KEY) as server:
        yield server


@pytest.fixture
async def client(fake: FakeOpenAI) -> AsyncIterator[LLMClient]:
    c = LLMClient(base_url=fake.url, api_key=KEY, timeout_s=5, max_retries=2)
    yield c
    await c.close()


async def test_stream_calls_back_per_delta_and_reports_the_final_usage(
    fake: FakeOpenAI, client: LLMClient
) -> None:
    fake.script("m", Reply(text="abcdefghij" * 5, chunk_chars=7, usage=(31, 17)))
    deltas: list[str] = []

    async def on_delta(text: str) -> None:
        deltas.append(text)

    done = await client.stream("m", MESSAGES, on_delta, max_tokens=99)
    assert len(deltas) == 8 and "".join(deltas) == done.text == "abcdefghij" * 5
    assert (done.usage.tokens_in, done.usage.tokens_out, done.usage.estimated) == (31, 17, False)
    assert done.finish_reason == "stop"
    (call,) = fake.calls
    assert call.body["stream"] is True and call.body["stream_options"] == {"include_usage": True}
    assert call.body["max_tokens"] == 99 and call.authorization == f"Bearer {KEY}"


async def test_missing_usage_is_estimated_at_four_chars_a_token(
    fake: FakeOpenAI, client: LLMClient
) -> None:
    fake.script("m", Reply(text="x" * 41, usage=None))

    async def ignore(_: str) -> None:
        return None

    done = await client.stream("m", MESSAGES, ignore)
    prompt_chars = sum(len(m["content"]) for m in MESSAGES)
    assert done.usage.estimated
    assert done.usage.tokens_in == -(-prompt_chars // 4) and done.usage.tokens_out == 11
    assert estimate_usage(MESSAGES, "x" * 41) == done.usage


async def test_429_with_retry_after_is_retried_by_the_sdk(
    fake: FakeOpenAI, client: LLMClient
) -> None:
    fake.script("m", Fail(429, "slow down", retry_after=0.3), Reply(text="fine"))
    done = await client.complete("m", MESSAGES)
    assert done.text == "fine"
    assert [c.status for c in fake.calls] == [429, 200]


async def test_transient_errors_past_the_sdk_retries_become_a_step_retry(
    fake: FakeOpenAI,
) -> None:
    client = LLMClient(base_url=fake.url, api_key=KEY, timeout_s=5, max_retries=1)
    fake.script("m", Fail(503, retry_after=0.05), Fail(503, retry_after=0.05))
    with pytest.raises(LLMUnavailable) as caught:
        await client.complete("m", MESSAGES)
    await client.close()
    assert caught.value.status == 503 and len(fake.calls) == 2
    assert isinstance(caught.value, StepError)
    assert RetryPolicy().should_retry(caught.value)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_other_4xx_are_permanent(fake: FakeOpenAI, client: LLMClient, status: int) -> None:
    fake.script("m", Fail(status, "nope"))
    with pytest.raises(LLMRequestRejected) as caught:
        await client.complete("m", MESSAGES)
    assert caught.value.status == status and len(fake.calls) == 1  # no SDK retry either
    assert isinstance(caught.value, PermanentStepError)
    assert not RetryPolicy().should_retry(caught.value)


async def test_timeout_is_retryable(fake: FakeOpenAI) -> None:
    client = LLMClient(base_url=fake.url, api_key=KEY, timeout_s=0.2, max_retries=0)
    fake.script("m", Reply(text="late", delay_s=1.0))
    with pytest.raises(LLMUnavailable, match="timed out"):
        await client.complete("m", MESSAGES)
    await client.close()


async def test_connection_refused_is_retryable() -> None:
    client = LLMClient(base_url="http://127.0.0.1:9/v1", api_key=KEY, timeout_s=1, max_retries=0)
    with pytest.raises(LLMUnavailable, match="connection failed"):
        await client.complete("m", MESSAGES)
    await client.close()


async def test_wrong_key_is_permanent_and_the_key_appears_nowhere(fake: FakeOpenAI) -> None:
    wrong = "sk-wrong-key-1234567890"
    client = LLMClient(base_url=fake.url, api_key=wrong, timeout_s=5, max_retries=2)
    with pytest.raises(LLMRequestRejected) as caught:
        await client.complete("m", MESSAGES)
    await client.close()
    assert caught.value.status == 401 and len(fake.calls) == 1
    assert wrong not in str(caught.value) and wrong not in repr(client)


async def test_a_key_echoed_by_the_server_is_scrubbed(fake: FakeOpenAI, client: LLMClient) -> None:
    fake.script("m", Fail(400, f"the key {KEY} is not allowed here"))
    with pytest.raises(LLMRequestRejected) as caught:
        await client.complete("m", MESSAGES)
    assert KEY not in str(caught.value) and "the key *** is not allowed" in str(caught.value)


async def test_endpoint_without_stream_options_is_asked_again_without(
    fake: FakeOpenAI, client: LLMClient
) -> None:
    fake.script("m", Fail(400, "Unrecognized request argument: stream_options"), Reply(text="ok"))

    async def ignore(_: str) -> None:
        return None

    done = await client.stream("m", MESSAGES, ignore)
    assert done.text == "ok" and done.usage.estimated
    assert "stream_options" not in fake.calls[1].body


async def test_no_key_configured_sends_a_placeholder(fake: FakeOpenAI) -> None:
    fake.api_key = None
    client = LLMClient(base_url=fake.url, api_key=None, timeout_s=5, max_retries=0)
    await client.complete("m", MESSAGES)
    await client.close()
    assert fake.calls[0].authorization == "Bearer no-key"
