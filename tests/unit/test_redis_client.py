"""Commands packed by hiredis are the bytes redis-py packs, and what hiredis refuses still
gets redis-py's own handling."""

from __future__ import annotations

import pytest
from redis.asyncio.connection import Connection, UnixDomainSocketConnection
from redis.exceptions import DataError

from app.config import Settings
from app.redis_client import HiredisPacking, make_redis, with_hiredis_packing

FAST = with_hiredis_packing(Connection)


def packed(conn: Connection, *args: object) -> bytes:
    return b"".join(conn.pack_command(*args))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "args",
    [
        ("EVALSHA", "a" * 40, 0, "prefix", "task", b'{"ts":', 17, 0.1, 1e-07, 3.0, -2),
        ("HSET", "k", "é ünïcode ✓", b"\x00\xff raw bytes", "x" * 10_000),
        ("CONFIG GET", "maxmemory"),  # a two-word name: redis-py splits it
        ("XADD", "s", "*", "f", bytearray(b"ba"), "g", memoryview(b"mv")),
    ],
)
def test_the_same_bytes_as_redis_py(args: tuple[object, ...]) -> None:
    assert packed(FAST(), *args) == packed(Connection(), *args)


def test_what_redis_py_refuses_is_still_refused() -> None:
    for bad in (None, True):
        with pytest.raises(DataError):
            FAST().pack_command("SET", "k", bad)  # type: ignore[arg-type]


def test_clients_pack_in_c_whatever_the_url_scheme() -> None:
    for url, base in (
        ("redis://127.0.0.1:1/0", Connection),
        ("unix:///tmp/valkey.sock", UnixDomainSocketConnection),
    ):
        cls = make_redis(Settings(redis_url=url)).connection_pool.connection_class
        assert issubclass(cls, HiredisPacking) and issubclass(cls, base), url
