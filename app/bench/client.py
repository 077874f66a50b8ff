"""The load generator: aiohttp (httpx's async client tops out near 250 requests/s here)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp
import httptools
import orjson

TERMINAL = (b"event: task_completed", b"event: task_failed", b"event: task_cancelled")
TS = b'"ts":'
TASK = "Compare Redis Streams and Kafka for job queues"


@dataclass
class Delays:
    """Delivery delays (event ``ts`` → received, ms) of the events written from ``since_ms``
    on (nothing before it is set: streams opening meanwhile get their catch-up, whose events
    were written long before), and how many streams have received their first event."""

    since_ms: float = float("inf")
    values: list[float] = field(default_factory=list)
    caught_up: int = 0


@dataclass
class Outcome:
    latencies_s: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    delays_ms: list[float] = field(default_factory=list)


def session(connections: int = 0) -> aiohttp.ClientSession:
    timeout = aiohttp.ClientTimeout(total=None, sock_read=120)
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections), timeout=timeout)


async def submit(http: aiohttp.ClientSession, base: str) -> str:
    async with http.post(f"{base}/run-task", json={"user_input": TASK}) as resp:
        body = await resp.read()
        if resp.status != 202:
            raise RuntimeError(f"POST /run-task {resp.status}: {body[:200]!r}")
        return str(orjson.loads(body)["task_id"])


async def follow(
    http: aiohttp.ClientSession, base: str, task_id: str, delays: Delays | None = None
) -> bytes:
    """Read the task's SSE stream to its terminal event; optionally record delivery delays.
    Reads whole chunks and finds frames with ``bytes.find`` rather than iterating lines: at
    thousands of streams the load generator shares these cores with the API, and its per-line
    overhead was counted as the API's delivery delay."""
    frames = Frames(delays)
    async with http.get(f"{base}/stream/{task_id}") as resp:
        async for chunk in resp.content.iter_any():
            marker = frames.feed(chunk)
            if marker:
                return marker
    raise RuntimeError(f"stream of {task_id} ended without a terminal event")


class Frames:
    """A stream's body as it arrives: complete frames go to :func:`scan`, the rest waits."""

    __slots__ = ("delays", "first", "tail")

    def __init__(self, delays: Delays | None) -> None:
        self.delays = delays
        self.tail = b""
        self.first = True  # no event of this stream seen yet

    def feed(self, chunk: bytes) -> bytes | None:
        """The terminal event's marker once a chunk completes it, else None."""
        now_ms = time.time() * 1000
        data = self.tail + chunk
        end = data.rfind(b"\n\n")
        if end < 0:
            self.tail = data
            return None
        frames, self.tail = data[: end + 2], data[end + 2 :]
        marker = scan(frames, now_ms, self.delays, self.first)
        self.first = self.first and TS not in frames
        return marker


class _StreamReader(asyncio.Protocol):
    """``GET /stream/{id}`` read to its terminal event on a bare connection: the socket's bytes
    go through httptools' response parser (C; it removes the chunked framing) straight into
    the frame scan, with no stream reader, future or task switch per chunk. At thousands of
    streams the load generator shares the cores with the API: with aiohttp it took as much
    CPU as the API in the fan-out's burst, and its lag counted as the API's delivery delay."""

    def __init__(
        self,
        request: bytes,
        delays: Delays,
        done: asyncio.Future[bytes],
        idle_s: float,
        keep: set[asyncio.Transport] | None = None,
    ) -> None:
        self.request, self.done, self.keep = request, done, keep
        self.frames = Frames(delays)
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        # As aiohttp's sock_read: a stream silent this long is an error, not a hang. One timer
        # per stream that looks at the last read, not one re-armed at every read.
        self.idle_s = idle_s
        self.loop = asyncio.get_running_loop()
        self.last_read = self.loop.time()
        self.timer = self.loop.call_later(idle_s, self._check_idle)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.last_read = self.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._end(exc.__context__ or exc)  # a callback's own error comes wrapped

    def connection_lost(self, exc: Exception | None) -> None:
        self._end(exc or RuntimeError("stream ended without a terminal event"))

    def _check_idle(self) -> None:
        quiet = self.loop.time() - self.last_read
        if quiet >= self.idle_s:
            self._end(TimeoutError(f"stream silent for {quiet:.0f} s"))
        else:
            self.timer = self.loop.call_later(self.idle_s - quiet, self._check_idle)

    def on_headers_complete(self) -> None:
        # Here rather than in on_status, which httptools skips for a status line without a
        # reason phrase.
        if self.parser.get_status_code() != 200:
            raise RuntimeError(f"GET /stream: {self.parser.get_status_code()}")

    def on_body(self, body: bytes) -> None:
        marker = self.frames.feed(body)
        if marker:
            self._end(marker)

    def on_message_complete(self) -> None:
        self._end(RuntimeError("stream ended without a terminal event"))

    def _end(self, outcome: bytes | BaseException) -> None:
        self.timer.cancel()
        if self.done.done():  # the rest of a response already ended (its chunked end, a close)
            return
        if isinstance(outcome, bytes):
            self.done.set_result(outcome)
            if self.keep is not None and self.transport is not None:
                self.keep.add(self.transport)  # kept alive, as a client's pool keeps it
                return
        else:
            self.done.set_exception(outcome)
        if self.transport is not None:
            self.transport.close()


def scan(frames: bytes, now_ms: float, delays: Delays | None, first: bool) -> bytes | None:
    """Record the delivery delays of complete frames (``delays``; ``first``: no event of this
    stream seen yet, so one here counts it as caught up); returns the terminal event's marker
    if they hold one."""
    if delays is not None:
        at = frames.find(TS)
        if first and at >= 0:
            delays.caught_up += 1
        while at >= 0:
            stop = frames.find(b"}", at)  # ts may end its object or be followed
            comma = frames.find(b",", at, stop)
            stop = comma if comma >= 0 else stop
            ts = int(frames[at + len(TS) : stop])
            if ts >= delays.since_ms:
                delays.values.append(now_ms - ts)
            at = frames.find(TS, stop)
    for marker in TERMINAL:
        if marker in frames:
            return marker
    return None


async def follow_bare(
    base: str,
    task_id: str,
    delays: Delays,
    idle_s: float = 120,
    keep: set[asyncio.Transport] | None = None,
) -> bytes:
    """:func:`follow` with delays, on a connection of its own read by :class:`_StreamReader`
    (an error after ``idle_s`` without a byte). With ``keep``, a stream that ended well leaves
    its connection open (HTTP keep-alive, as a browser's pool would) and in ``keep``, for the
    caller to close once it has measured: closing thousands of sockets in the middle of the
    burst cost the load generator about a quarter of its CPU there (py-spy), and the API the
    matching disconnects, on the two cores whose share is being measured."""
    url = urlsplit(base)
    loop = asyncio.get_running_loop()
    done: asyncio.Future[bytes] = loop.create_future()
    request = (
        f"GET /stream/{task_id} HTTP/1.1\r\nHost: {url.netloc}\r\nAccept: text/event-stream\r\n\r\n"
    ).encode()
    host, port = url.hostname or "127.0.0.1", url.port or 80
    transport, _ = await loop.create_connection(
        lambda: _StreamReader(request, delays, done, idle_s, keep), host, port
    )
    try:
        return await done
    finally:
        if keep is None or transport not in keep:
            transport.close()


async def one_task(http: aiohttp.ClientSession, base: str, out: Outcome) -> None:
    started = time.perf_counter()
    try:
        task_id = await submit(http, base)
        terminal = await follow(http, base, task_id)
    except Exception as exc:  # a benchmark reports failures, it does not stop on them
        out.failures.append(f"{type(exc).__name__}: {exc}")
        return
    if terminal != b"event: task_completed":
        out.failures.append(f"{task_id}: {terminal.decode()}")
    out.latencies_s.append(time.perf_counter() - started)


async def burst(base: str, n: int, concurrency: int) -> tuple[Outcome, float]:
    """N tasks with C in flight, each followed over SSE to its end. Returns (outcome, wall s)."""
    out = Outcome()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def slot(http: aiohttp.ClientSession) -> None:
        while not queue.empty():
            queue.get_nowait()
            await one_task(http, base, out)

    async with session() as http:
        started = time.perf_counter()
        await asyncio.gather(*(slot(http) for _ in range(concurrency)))
        return out, time.perf_counter() - started


async def sequential(base: str, n: int) -> Outcome:
    out = Outcome()
    async with session() as http:
        for _ in range(n):
            await one_task(http, base, out)
    return out


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
