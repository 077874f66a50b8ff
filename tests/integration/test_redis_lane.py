"""The lane (app.redis_lane): replies as the pool's parser gives them, in order; a lost or
silent connection hands the call to the pool (and its retries); the lane comes back later."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import hiredis
import pytest
from redis.asyncio import Redis
from redis.exceptions import BusyLoadingError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError

from app import redis_lane
from app.config import Settings
from app.keys import Keys
from app.orchestration.consumer import AgentConsumer
from app.orchestration.scripts import Scripts
from app.redis_client import make_redis
from app.redis_lane import Lane
from tests.integration.harness import BENCH_PLAN, Harness, agents

pytestmark = pytest.mark.integration


@pytest.fixture
async def lane(settings: Settings) -> AsyncIterator[Lane]:
    client = make_redis(settings)
    lane = Lane(client)
    try:
        yield lane
    finally:
        lane.close()
        await client.aclose()


async def lane_client_id(lane: Lane) -> int:
    return int(await lane.execute("CLIENT", "ID"))


async def test_replies_are_decoded_like_the_pools_and_errors_raise(lane: Lane, prefix: str) -> None:
    key = f"{prefix}:lane"
    assert await lane.execute("ECHO", "é") == "é"
    assert await lane.execute("RPUSH", key, "é", 2) == 2
    assert await lane.execute("LRANGE", key, 0, -1) == ["é", "2"]
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await lane.execute("GET", key)
    assert await lane.execute("LLEN", key) == 2  # an error reply leaves the lane usable


async def test_concurrent_calls_get_their_own_replies_in_order(lane: Lane, prefix: str) -> None:
    key = f"{prefix}:n"
    await lane.execute("ECHO", "connected")  # calls made while it connects go to the pool
    replies = await asyncio.gather(*(lane.execute("INCR", key) for _ in range(50)))
    assert replies == list(range(1, 51))
    first = await lane_client_id(lane)
    assert await lane_client_id(lane) == first  # one connection for all of them


async def test_a_cancelled_call_does_not_shift_the_replies(lane: Lane, prefix: str) -> None:
    slow = asyncio.ensure_future(lane.execute("BRPOPLPUSH", f"{prefix}:empty", f"{prefix}:to", 0.3))
    await asyncio.sleep(0.05)
    slow.cancel()
    # Sent behind the cancelled call: its reply must be this call's, not BLPOP's nil.
    assert await lane.execute("ECHO", "mine") == "mine"


async def test_a_killed_connection_hands_the_call_to_the_pool_then_reconnects(
    lane: Lane, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_lane, "COOL_DOWN_S", 0.2)
    before = await lane_client_id(lane)
    await redis.execute_command("CLIENT", "KILL", "ID", before)
    # The lane learns of it on this call (or just before): the pool answers it.
    assert await lane.execute("ECHO", "hi") == "hi"
    await asyncio.sleep(0.3)
    after = await lane_client_id(lane)
    assert after != before
    assert await lane_client_id(lane) == after  # on the lane again, not the pool


async def test_a_silent_connection_times_out_to_the_pool(
    settings: Settings, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_lane, "WATCH_S", 0.05)
    client = make_redis(settings)
    lane = Lane(client, timeout_s=0.2)
    try:
        await lane.execute("ECHO", "up")
        # The server holds the reply for 1 s: the lane gives up at 0.2 s and the pool makes
        # the call again, whose answer (nil, after the block) is the one returned.
        assert await lane.execute("BRPOPLPUSH", f"{prefix}:empty", f"{prefix}:to", 1) is None
        assert lane._replies is None  # the silent connection was dropped
    finally:
        lane.close()
        await client.aclose()


async def test_scripts_load_the_library_through_a_lane(settings: Settings) -> None:
    client = make_redis(settings)
    lane = Lane(client)
    try:
        await client.function_flush()
        scripts = Scripts(client, lane)
        # "function not found" comes back through the lane, the library is loaded, the call
        # is made again.
        assert await scripts.call("promote", settings.prefix, 10) == [0, -1]
    finally:
        lane.close()
        await client.aclose()


async def test_a_command_with_a_response_callback_is_refused(lane: Lane) -> None:
    # Its reply would differ between the lane (raw) and the pool (the callback's).
    with pytest.raises(ValueError, match="PING"):
        await lane.execute("PING")


async def test_a_worker_rides_out_its_lanes_being_killed(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read loops' lanes and the recorder's: killed, each comes back (or its calls go
    through the pool meanwhile) and every task still completes, its entries ACKed."""
    monkeypatch.setattr(redis_lane, "COOL_DOWN_S", 0.1)
    runtime = await harness.start_worker(agents())
    first = await harness.store.submit("compare a and b", BENCH_PLAN)
    assert await harness.wait_state(first) == "completed"
    lanes = [c._read_lane for c in runtime.consumers] + [runtime.lane]
    ids = [lane.client_id for lane in lanes]
    assert None not in ids
    for client_id in ids:
        await harness.redis.execute_command("CLIENT", "KILL", "ID", client_id)
    tasks = [await harness.store.submit(f"compare {i} and b", BENCH_PLAN) for i in range(5)]
    for task_id in tasks:
        assert await harness.wait_state(task_id) == "completed"
    for agent in ("retriever", "analyzer", "writer"):
        pending = await harness.redis.xpending(harness.keys.agent_stream(agent), agent)
        assert pending["pending"] == 0, agent
    retriever = runtime.consumers[0]._read_lane.client_id
    assert retriever is not None and retriever not in ids  # reading on a new connection


# --- against a scripted server: replies a real one gives only in rare states -------------------

SCRIPTED = {
    b"LOADING": b"-LOADING Redis is loading the dataset in memory\r\n",
    b"PUSHED": b">2\r\n+message\r\n+moving\r\n+OK\r\n",  # a RESP3 push, then the reply
    b"FALSE": b"#f\r\n",  # RESP3 boolean false (hiredis's default "incomplete" marker)
    b"BADUTF8": b"$2\r\n\xff\xfe\r\n",
}


class ScriptedServer:
    """Answers redis-py's handshake, then each command by its name (``SCRIPTED``), ECHO as
    ECHO, CLIENT ID with 7; ``hold`` delays the handshake's HELLO (a connect in progress)."""

    def __init__(self) -> None:
        self.hold = asyncio.Event()
        self.hold.set()
        self.closed = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        parser = hiredis.Reader()
        while data := await reader.read(65536):
            parser.feed(data)
            while (command := parser.gets()) is not False:
                name = command[0].upper()
                sub = command[1].upper() if len(command) > 1 else b""
                if name == b"HELLO":
                    await self.hold.wait()
                    writer.write(b"%1\r\n+proto\r\n:3\r\n")
                elif name == b"CLIENT" and sub == b"ID":
                    writer.write(b":7\r\n")
                elif name == b"CLIENT":
                    writer.write(b"+OK\r\n")
                elif name == b"ECHO":
                    writer.write(b"$%d\r\n%s\r\n" % (len(command[1]), command[1]))
                else:
                    writer.write(SCRIPTED.get(name, b"-ERR unknown command\r\n"))
            await writer.drain()
        self.closed.set()
        writer.close()

    async def __aenter__(self) -> Redis:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        self.client = Redis(port=port, decode_responses=True, protocol=3)
        return self.client

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()
        assert self.server is not None
        self.server.close()


async def test_an_error_reply_meaning_not_now_goes_to_the_pool_or_raises() -> None:
    async with ScriptedServer() as client:
        lane = Lane(client)
        assert await lane.execute("ECHO", "up") == "up"
        # LOADING is a ConnectionError to redis-py: the lane hands the call to the client
        # (whose retry policy would wait the loading out); never a reply returned as a value.
        with pytest.raises(BusyLoadingError):
            await lane.execute("LOADING")
        lane.close()
        reader = Lane(client, fallback=False)
        with pytest.raises(RedisConnectionError):
            await reader.execute("LOADING")
        reader.close()


async def test_pushes_false_and_undecodable_replies_keep_the_replies_in_step() -> None:
    async with ScriptedServer() as client:
        lane = Lane(client)
        await lane.execute("ECHO", "up")
        pushed, false, bad, mine = await asyncio.gather(
            lane.execute("PUSHED"),
            lane.execute("FALSE"),
            lane.execute("BADUTF8"),
            lane.execute("ECHO", "mine"),
            return_exceptions=True,
        )
        assert (pushed, false, mine) == ("OK", False, "mine")
        assert isinstance(bad, UnicodeDecodeError)  # that call's alone: the lane goes on
        assert lane.client_id == 7 and lane._replies is not None
        lane.close()


async def test_a_lane_closed_while_it_connects_leaves_nothing_open() -> None:
    server = ScriptedServer()
    async with server as client:
        server.hold.clear()
        lane = Lane(client, fallback=False)
        call = asyncio.ensure_future(lane.execute("ECHO", "x"))
        await asyncio.sleep(0.1)  # connecting: HELLO sent, its reply held
        lane.close()
        with pytest.raises(RedisConnectionError):
            await asyncio.wait_for(call, 2)
        server.hold.set()
        await asyncio.wait_for(server.closed.wait(), 2)  # the connection was closed
        assert lane._replies is None and lane.client_id is None


async def test_a_consumer_read_loop_outlives_a_loading_server(settings: Settings) -> None:
    async with ScriptedServer() as client:
        consumer = AgentConsumer(client, Keys("t"), agents()["retriever"], settings, "w1")
        consumer._read = lambda count: consumer._read_lane.execute("LOADING")  # type: ignore[method-assign]
        stop = asyncio.Event()
        loop = asyncio.ensure_future(consumer.read_loop(stop))
        await asyncio.sleep(1.2)  # a few failed reads
        assert not loop.done()
        stop.set()
        await asyncio.wait_for(loop, 3)
