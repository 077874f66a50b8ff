"""A lane: one connection of its own for a hot caller's commands, read by a bare protocol.

Why: redis-py's asyncio path around a command (pool checkout and release, retry wrapper,
timeout context, stream reader, observability hooks) cost ~120 µs of CPU per command on these
machines, against ~70 µs for the round trip itself read by hiredis from an ``asyncio.Protocol``
(``docs/performance.md``). An idle task makes about ten such calls across the API and the
worker; the step-completion and submission calls are on its critical path.

What stays redis-py's: the connection is made by the client's own pool class and settings
(``connect()``: TLS, AUTH, SELECT, HELLO, client name), then its transport is handed to
:class:`_Replies`. Replies are parsed as redis-py parses them (same hiredis reader options,
same error classes), without response callbacks: callers get the raw reply.

What a lane does not do is retry. A command whose lane fails (connection lost, timeout, an
error reply redis-py counts as a connection error such as ``LOADING``, no lane to be had) goes
through the client itself, whose retry policy then applies exactly as it did before lanes: a
lost reply is retried there, as redis-py would have. The lane connects in one attempt, and
reconnects on a later call, not sooner than ``COOL_DOWN_S`` after a failure; while it connects,
other calls go through the client.

Commands are pipelined in order on the one connection. Blocking commands do not belong on a
shared lane: they would hold every call behind them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import hiredis
import structlog
from redis._parsers.base import BaseParser
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse
from redis.exceptions import TimeoutError as RedisTimeoutError

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = structlog.get_logger("agentic.redis")

#: After a lane fails, its calls go through the client for this long before it reconnects:
#: during an outage the client's backoff paces the attempts, not every call's reconnect.
COOL_DOWN_S = 1.0
#: How often a lane with calls in flight checks the oldest against the read timeout.
WATCH_S = 0.5
#: What the reader returns for an incomplete reply (its default, False, is also a RESP3 reply).
NOT_ENOUGH = object()
#: RESP3 pushes (redis-py asks for maintenance notifications): no call's reply.
PUSH: type | None = getattr(hiredis, "PushNotification", None)


def stream_replies(reply: Any) -> Any:
    """(stream, entries) pairs of a raw XREAD/XREADGROUP reply: a map in RESP3, a list in
    RESP2 (none: [])."""
    if not reply:
        return []
    return reply.items() if isinstance(reply, dict) else reply


def field_dict(flat: list[Any] | None) -> dict[Any, Any]:
    """An entry's fields as a raw reply holds them (``[field, value, ...]``) as a dict; a
    deleted entry's are nil."""
    return dict(zip(flat[::2], flat[1::2], strict=True)) if flat else {}


class LaneLost(Exception):
    """The lane's connection is gone or timed out; the call may be made again elsewhere."""


class _Replies(asyncio.Protocol):
    """Replies in arrival order, each to the call that waits first."""

    def __init__(self, reader: hiredis.Reader) -> None:
        self._reader = reader
        self.transport: asyncio.Transport | None = None
        #: (future, time sent) of the calls in flight, oldest first.
        self.waiting: deque[tuple[asyncio.Future[Any], float]] = deque()
        self.lost: BaseException | None = None
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        waiting = self.waiting
        while waiting:
            try:
                reply = self._reader.gets()
            except InvalidResponse as exc:  # out of step: no later reply can be matched
                self.fail(exc)
                return
            except Exception as exc:  # one reply that cannot be decoded; the rest stay in step
                reply = exc
            if reply is NOT_ENOUGH:
                return
            if PUSH is not None and isinstance(reply, PUSH):
                continue
            future = waiting.popleft()[0]
            if future.done():  # its caller was cancelled; the reply is dropped in order
                continue
            if isinstance(reply, Exception):  # ResponseError, or a class redis-py maps it to
                future.set_exception(reply)
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(exc or LaneLost("connection closed"))

    def fail(self, exc: BaseException) -> None:
        """Fail every call in flight and close: their replies can no longer be matched."""
        if self.lost is None:
            self.lost = exc
        while self.waiting:
            future = self.waiting.popleft()[0]
            if not future.done():
                future.set_exception(LaneLost(str(exc) or type(exc).__name__))
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


class Lane:
    """Commands of one caller (or a few, pipelined) on a connection of their own."""

    def __init__(
        self, redis: Redis, timeout_s: float | None = None, *, fallback: bool = True
    ) -> None:
        """``redis``: the client whose pool makes the connection and, with ``fallback``,
        answers the calls the lane cannot. Without it a failed call raises
        ``redis.exceptions.ConnectionError`` and the caller decides (a blocking reader that
        must know its connection's id, say); the lane reconnects at the next call."""
        self._redis = redis
        self._fallback = fallback
        kwargs = redis.connection_pool.connection_kwargs
        self._timeout_s = timeout_s or kwargs.get("socket_timeout") or 30.0
        #: The server's id of the lane's connection (CLIENT ID), once connected.
        self.client_id: int | None = None
        self._replies: _Replies | None = None
        self._connecting: asyncio.Future[_Replies | None] | None = None
        self._failed_at = -COOL_DOWN_S
        self._watch: asyncio.TimerHandle | None = None
        self._closed = False

    async def execute(self, *args: Any) -> Any:
        """The command's reply, parsed as the client's parser parses it (no response callback:
        route only commands that have none); through the client when the lane is unavailable
        or fails, with the client's retries."""
        if self._fallback and args[0] in self._redis.response_callbacks:
            raise ValueError(f"{args[0]} has a response callback: call it on the client")
        replies = self._replies
        if replies is None or replies.lost is not None:
            replies = await self._connected()
        if replies is not None:
            try:
                return await self._send(replies, args)
            except LaneLost as exc:
                self._fail(exc, replies)
                failure: Exception = exc
            except (RedisConnectionError, RedisTimeoutError) as exc:
                # An error reply meaning "not now" (LOADING, ...): the command did not run.
                self._fail(exc, replies)
                failure = exc
            if not self._fallback:
                raise RedisConnectionError(f"lane lost: {failure}") from failure
        elif not self._fallback:
            raise RedisConnectionError("lane unavailable (connecting or cooling down)")
        return await self._redis.execute_command(*args)  # type: ignore[no-untyped-call]

    def _send(self, replies: _Replies, args: tuple[Any, ...]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        transport = replies.transport
        if transport is None or transport.is_closing():
            raise LaneLost("connection closing")
        try:
            transport.write(hiredis.pack_command(args))
        except (OSError, RuntimeError) as exc:  # uvloop raises RuntimeError on a closed handle
            raise LaneLost(str(exc)) from exc
        replies.waiting.append((future, time.monotonic()))
        if self._watch is None:
            self._watch = loop.call_later(WATCH_S, self._check_timeout)
        return future

    def _check_timeout(self) -> None:
        self._watch = None
        replies = self._replies
        if replies is None or not replies.waiting:
            return
        if time.monotonic() - replies.waiting[0][1] > self._timeout_s:
            replies.fail(RedisTimeoutError(f"no reply in {self._timeout_s} s"))
            return
        self._watch = asyncio.get_running_loop().call_later(WATCH_S, self._check_timeout)

    def _fail(self, exc: BaseException, replies: _Replies) -> None:
        """``replies`` failed: drop it (not a newer connection made meanwhile) and cool down."""
        replies.fail(exc)
        if self._replies is replies:
            log.warning("redis lane lost; its calls go through the pool", error=str(exc))
            self._replies = None
            self.client_id = None
        self._failed_at = time.monotonic()

    async def _connected(self) -> _Replies | None:
        """The lane's protocol; None while it cools down after a failure, after ``close``, or
        when the connection cannot be taken over. A lane with a fallback does not wait for a
        connect another call started: the client answers meanwhile."""
        if self._closed or time.monotonic() - self._failed_at < COOL_DOWN_S:
            return None
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.ensure_future(self._connect())
        elif self._fallback:
            return None
        try:
            return await asyncio.shield(self._connecting)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():  # this caller is being cancelled
                raise
            return None  # the connect was (the lane closed meanwhile)

    async def _connect(self) -> _Replies | None:
        pool = self._redis.connection_pool
        connection = pool.make_connection()  # type: ignore[no-untyped-call]
        # One attempt: the caller's own path retries (the client's policy, or its loop); the
        # client's retries here as well would double an outage's wait.
        connection.retry = Retry(NoBackoff(), 0)
        taken = False
        try:
            await connection.connect()
            if self._closed:
                return None
            # The streams redis-py connected with; their transport is taken over below.
            writer: asyncio.StreamWriter = connection._writer
            reader: asyncio.StreamReader = connection._reader
            transport = writer.transport
            encoder = connection.encoder
            options: dict[str, Any] = {
                "protocolError": InvalidResponse,
                "replyError": BaseParser.parse_error,
                "notEnoughData": NOT_ENOUGH,
            }
            if encoder.decode_responses:
                options.update(encoding=encoder.encoding, errors=encoder.encoding_errors)
            replies = _Replies(hiredis.Reader(**options))
            transport.set_protocol(replies)
            replies.connection_made(transport)
            taken = True
        except Exception as exc:
            self._failed_at = time.monotonic()
            log.warning("redis lane could not connect; calls go through the pool", error=str(exc))
            return None
        finally:
            if not taken:  # failed, cancelled (close), or closed meanwhile
                with contextlib.suppress(Exception):
                    await connection.disconnect()
        # The transport is the lane's now: the connection object must not close it when it is
        # collected (redis-py's __del__ closes a writer it still holds), and the stream objects
        # live as long as it does (a StreamWriter closes its transport when it is collected).
        connection._writer = connection._reader = None
        replies.streams = (reader, writer)
        self._replies = replies
        try:
            self.client_id = int(await self._send(replies, ("CLIENT", "ID")))
        except Exception as exc:
            self._fail(exc, replies)
            return None
        return replies

    def close(self) -> None:
        """Close the connection (and one being made); later calls go through the client, or
        fail without a fallback."""
        self._closed = True
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        if self._replies is not None:
            self._replies.fail(LaneLost("lane closed"))
            self._replies = None
            self.client_id = None
