"""The embedded server's allocator (app.embedded): jemalloc preloaded where the system has it."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from app.embedded import allocator, preload, server_env, start_embedded
from tests.conftest import missing_tool


def test_preload_follows_the_setting(tmp_path: Path) -> None:
    assert preload("libc") is None
    library = tmp_path / "libtcmalloc.so.4"
    library.write_bytes(b"")
    assert preload(str(library)) == str(library)
    assert preload("libtcmalloc_minimal.so.4") == "libtcmalloc_minimal.so.4"  # the loader's to find
    with pytest.raises(ValueError, match="no such library"):
        preload(str(tmp_path / "missing.so"))


def test_a_preload_goes_after_the_environment_s_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sanitizer or profiler the environment preloads must stay first; the server still
    gets ours."""
    if preload("auto") is None:
        missing_tool("no jemalloc on this system (Debian/Ubuntu: apt-get install libjemalloc2)")
    assert server_env({"LD_PRELOAD": "libasan.so.8"}, "libjemalloc.so.2")["LD_PRELOAD"] == (
        "libasan.so.8 libjemalloc.so.2"
    )
    assert server_env({}, None) == {}
    monkeypatch.setenv("LD_PRELOAD", "libm.so.6")
    server = start_embedded(tmp_path, durable=False, malloc="auto")
    try:
        # (The server rewrites its process title over its environment: /proc/PID/environ
        # does not show it; its memory map does.)
        assert allocator(_server_pid(str(server.connection_url))) == "jemalloc (preloaded)"
    finally:
        server.stop()


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


def test_a_library_the_loader_cannot_find_is_reported(tmp_path: Path) -> None:
    """The loader skips it with a warning in the server's log only; we say so in ours."""
    from structlog.testing import capture_logs

    with capture_logs() as logs:
        server = start_embedded(tmp_path, durable=False, malloc="libnot_an_allocator.so.1")
    try:
        assert allocator(_server_pid(str(server.connection_url))) == "as built"
        assert any(
            e["event"] == "embedded Valkey runs without the allocator asked for"
            and e["library"] == "libnot_an_allocator.so.1"
            for e in logs
        ), logs
    finally:
        server.stop()
