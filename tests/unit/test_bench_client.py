"""The load generator's bare SSE reader (app.bench.client.follow_bare) against a local server
that answers in awkward pieces: chunked framing split mid-number, frames split across chunks."""

from __future__ import annotations

import asyncio

import pytest

from app.bench.client import Delays, follow_bare

FRAMES = [
    b"retry: 1000\n\n",
    b'id: 1-0\nevent: plan_created\ndata: {"type":"plan_created","ts":1000}\n\n',
    b'id: 2-0\nevent: step_started\ndata: {"ts":2000,"type":"step_started"}\n\n',
    b'id: 3-0\nevent: task_completed\ndata: {"type":"task_completed","ts":3000}\n\n',
]


async def serve(
    status: bytes | None, pieces: list[bytes], then_wait: bool = False
) -> tuple[asyncio.Server, str]:
    """A server that answers ``status`` (None: closes without answering), then ``pieces``."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        if status is None:
            writer.close()
            return
        writer.write(b"HTTP/1.1 " + status + b"\r\ntransfer-encoding: chunked\r\n\r\n")
        if then_wait:
            await asyncio.sleep(5)
        for piece in pieces:
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.001)
        await reader.read()  # the client closes after the terminal event
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


def chunked(body: bytes, sizes: list[int]) -> bytes:
    out, at = b"", 0
    for size in sizes:
        part = body[at : at + size]
        at += size
        out += b"%x\r\n" % len(part) + part + b"\r\n"
    rest = body[at:]
    return out + (b"%x\r\n" % len(rest) + rest + b"\r\n" if rest else b"")


async def test_reads_delays_and_the_terminal_event_across_awkward_splits() -> None:
    body = b"".join(FRAMES)
    wire = chunked(body, [5, 40, 61, 33])
    # The socket's pieces cut through chunk headers and through a "ts" number.
    cut = wire.index(b"2000") + 2
    server, base = await serve(b"200 OK", [wire[:7], wire[7:cut], wire[cut:]])
    async with server:
        delays = Delays(since_ms=1500)
        assert await follow_bare(base, "t1", delays) == b"event: task_completed"
    assert delays.caught_up == 1  # the retry hint alone does not count
    assert len(delays.values) == 2 and all(v > 0 for v in delays.values)  # ts 2000 and 3000


@pytest.mark.parametrize("status", [b"404 Not Found", b"404"])  # with and without a reason
async def test_a_refused_stream_is_an_error(status: bytes) -> None:
    server, base = await serve(status, [b"0\r\n\r\n"])
    async with server:
        with pytest.raises(RuntimeError, match="404"):
            await follow_bare(base, "t1", Delays())


async def test_a_server_that_closes_before_answering_is_an_error() -> None:
    server, base = await serve(None, [])
    async with server:
        with pytest.raises(RuntimeError, match="without a terminal event"):
            await follow_bare(base, "t1", Delays())


async def test_a_silent_stream_times_out() -> None:
    server, base = await serve(b"200 OK", [], then_wait=True)
    async with server:
        with pytest.raises(TimeoutError, match="silent"):
            await follow_bare(base, "t1", Delays(), idle_s=0.2)


async def test_a_stream_that_ends_early_is_an_error() -> None:
    server, base = await serve(b"200 OK", [chunked(FRAMES[1], [10]), b"0\r\n\r\n"])
    async with server:
        with pytest.raises(RuntimeError, match="without a terminal event"):
            await follow_bare(base, "t1", Delays())


async def test_kept_connections_stay_open_past_the_response_end_until_closed() -> None:
    """With ``keep``, a stream that ended well leaves its connection open (the fan-out closes
    them once it has measured); the response's own end (chunked terminator) does not close it,
    and a stream that failed is still closed at once."""
    body = b"".join(FRAMES)
    wire = chunked(body, [len(body)]) + b"0\r\n\r\n"
    server, base = await serve(b"200 OK", [wire])
    async with server:
        kept: set[asyncio.Transport] = set()
        assert await follow_bare(base, "t1", Delays(), keep=kept) == b"event: task_completed"
        await asyncio.sleep(0.05)  # the terminator arrives after the terminal event
        (transport,) = kept
        assert not transport.is_closing()
        transport.close()
    refused, base = await serve(b"503 Service Unavailable", [])
    async with refused:
        kept = set()
        with pytest.raises(RuntimeError):
            await follow_bare(base, "t1", Delays(), keep=kept)
        assert not kept
