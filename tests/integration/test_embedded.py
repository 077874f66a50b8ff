"""The embedded server's allocator (app.embedded): jemalloc preloaded where the system has it."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from app.embedded import allocator, preload, start_embedded
from tests.conftest import missing_tool


def test_preload_follows_the_setting() -> None:
    assert preload("libc") is None
    assert preload("/opt/lib/libtcmalloc.so.4") == "/opt/lib/libtcmalloc.so.4"


def _server_pid(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return int(client.info("server")["process_id"])
    finally:
        client.close()


@pytest.mark.parametrize("malloc", ["auto", "libc"])
def test_embedded_server_allocator(tmp_path: Path, malloc: str) -> None:
    if malloc == "auto" and preload("auto") is None:
        missing_tool("no jemalloc on this system (Debian/Ubuntu: apt-get install libjemalloc2)")
    server = start_embedded(tmp_path, durable=False, malloc=malloc)
    try:
        url = str(server.connection_url)
        expected = "jemalloc (preloaded)" if malloc == "auto" else "as built"
        assert allocator(_server_pid(url)) == expected
        # It serves as usual, scripts included (Lua allocates through the same malloc).
        client = redis.Redis.from_url(url)
        try:
            assert client.eval("return redis.call('SET', KEYS[1], ARGV[1])", 1, "k", "v")
            assert client.get("k") == b"v"
        finally:
            client.close()
    finally:
        server.stop()
