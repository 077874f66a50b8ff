"""The scripts as one function library: loaded when a call finds it missing, one version per
release side by side, each call's state its own."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from app.keys import Keys
from app.orchestration import scripts as scripts_mod
from app.orchestration.scripts import SCRIPT_NAMES, Scripts, library
from app.orchestration.store import TaskStore
from tests.integration.harness import BENCH_PLAN, Harness, command_calls

pytestmark = pytest.mark.integration


async def drop_library(redis: Redis) -> str:
    """Delete our library (only ours: the server may be shared); its name."""
    name = f"agentic_{library()[0]}"
    with contextlib.suppress(ResponseError):  # not loaded yet
        await redis.function_delete(name)
    return name


async def libraries(redis: Redis) -> set[str]:
    found: list[Any] = await redis.function_list("agentic_*")
    # Each library comes as a flat [name, value, ...] list.
    return {str(dict(zip(lib[::2], lib[1::2], strict=True))["library_name"]) for lib in found}


async def test_a_server_without_the_library_gets_it_at_the_first_call(harness: Harness) -> None:
    """A new server, or FUNCTION FLUSH: the first call loads the library and goes through.
    (FUNCTION DELETE of ours alone: the server may be shared, AGENTIC_TEST_REDIS_URL.)"""
    name = await drop_library(harness.redis)
    assert name not in await libraries(harness.redis)
    task_id = await harness.store.submit("x", BENCH_PLAN)
    assert name in await libraries(harness.redis)
    assert await harness.redis.hget(harness.keys.task(task_id), "state") == "running"


async def test_two_releases_share_a_server(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rolling upgrade: processes of the old release and of the new one call their own
    version of the library, which are named apart and loaded side by side."""
    old = Scripts(harness.redis)
    real_source = scripts_mod.source.__wrapped__

    def changed(name: str) -> str:
        return real_source(name) + ("\n-- the next release" if name == "common" else "")

    library.cache_clear()
    monkeypatch.setattr(scripts_mod, "source", changed)
    try:
        new = Scripts(harness.redis)
    finally:
        library.cache_clear()
    assert new._version != old._version
    store = TaskStore(harness.redis, harness.keys, ttl_s=60)
    for scripts in (old, new):
        store.scripts = scripts
        task_id = await store.submit("x", BENCH_PLAN)
        assert await harness.redis.hget(harness.keys.task(task_id), "state") == "running"
    assert {f"agentic_{old._version}", f"agentic_{new._version}"} <= await libraries(harness.redis)


async def test_each_call_works_on_its_own_arguments(harness: Harness, redis_url: str) -> None:
    """The library keeps state between calls (its helpers, the field names it has built):
    none of it may carry a call's arguments into the next one, here the key prefix."""
    other = Keys(f"{harness.keys.prefix}x")
    store = TaskStore(harness.redis, other, ttl_s=60)
    first = await harness.store.submit("one", BENCH_PLAN)
    second = await store.submit("two", BENCH_PLAN)
    assert await harness.redis.hget(harness.keys.task(first), "user_input") == "one"
    assert await harness.redis.hget(other.task(second), "user_input") == "two"
    assert not await harness.redis.exists(harness.keys.task(second), other.task(first))
    reply: Any = await harness.redis.xrange(other.agent_stream("retriever"))
    assert [body["t"] for _, body in reply] == [second]


def test_the_library_registers_every_script_under_its_version() -> None:
    version, source = library()
    assert source.startswith(f"#!lua name=agentic_{version}\n")
    for name in SCRIPT_NAMES:
        assert f"redis.register_function('{name}_{version}', call)" in source


async def test_calls_that_find_the_library_missing_together_load_it_once(
    harness: Harness,
) -> None:
    """A new release's first calls, or every call in flight after a FUNCTION FLUSH, find their
    function missing together: one load serves them all (a load compiles the library, blocks
    the server ~1.5 ms, and goes to the AOF and the replicas)."""
    await drop_library(harness.redis)
    scripts = Scripts(harness.redis)
    await asyncio.gather(*(harness.redis.ping() for _ in range(16)))  # connections open
    before = command_calls(await harness.redis.info("commandstats"))
    p = harness.keys.prefix
    await asyncio.gather(*(scripts.call("cancel", p, f"none{i}", 60, "x") for i in range(16)))
    loads = command_calls(await harness.redis.info("commandstats")) - before
    assert loads["function|load"] == 1, loads
    await Scripts(harness.redis).load()  # another process's load: there already, no error


def test_the_version_covers_the_whole_library(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever changes in the library's text, a script or the way each is wrapped, changes its
    version: two releases never share a name for different code."""
    version, _ = library()
    library.cache_clear()
    monkeypatch.setattr(scripts_mod, "WRAPPER", scripts_mod.WRAPPER + "\n-- wrapped anew")
    try:
        changed, _ = library()
    finally:
        library.cache_clear()
    assert changed != version


async def test_split_caches_plan_lists_within_a_bound(harness: Harness) -> None:
    """common.lua's ``split`` (cached, shared lists) in a library of its own on the server:
    parts as before the cache (empty parts dropped), the same list from the cache, and past
    the cache's bound (1,024 lists) lists still split right."""
    body = (
        scripts_mod.source("common")
        + """
redis.register_function('split_test', function(_, args)
  local out = {}
  for _, s in ipairs(args) do out[#out + 1] = table.concat(split(s), '|') end
  out[#out + 1] = tostring(split(args[1]) == split(args[1]))
  return out
end)"""
    )
    name = "agentic_split_test"
    await harness.redis.function_load(f"#!lua name={name}\n{body}", replace=True)
    try:
        lists = ["a,,b", "", "c", ",d,"] + [f"s{i},t{i}" for i in range(1100)] + ["a,,b"]
        got = await harness.redis.fcall("split_test", 0, *lists)
        assert got[:4] == ["a|b", "", "c", "d"]
        assert got[4:-2] == [f"s{i}|t{i}" for i in range(1100)]
        assert got[-2] == "a|b" and got[-1] == "true"
    finally:
        await harness.redis.function_delete(name)


async def test_numbers_are_written_and_read_as_the_server_would(harness: Harness) -> None:
    """common.lua's ``str`` (small counts kept in a table, the two latest other numbers kept)
    gives a number's full text ("%.17g") whatever order the numbers come in, and ``num`` reads a
    text as tonumber does, from its table or not."""
    body = (
        scripts_mod.source("common")
        + """
redis.register_function('numbers_test', function(_, args)
  local out = {}
  for _, s in ipairs(args) do
    local n = tonumber(s)
    out[#out + 1] = str(n) .. '=' .. string.format('%.17g', n)
  end
  for _, s in ipairs(args) do
    for _ = 1, 2 do  -- the second time from its table, where it is kept
      out[#out + 1] = tostring(num(s) == tonumber(s))
    end
  end
  return out
end)"""
    )
    name = "agentic_numbers_test"
    await harness.redis.function_load(f"#!lua name={name}\n{body}", replace=True)
    try:
        now, later = "1796000000123", "1796000000456"
        texts = [now, "37", now, "0.30000000000000004", now, later, "5.5", now, later, now]
        texts += ["0", "1023", "1024", "-1", "2.5", "1e300", "0004", "0x10", "1e2", " 12"]
        got = await harness.redis.fcall("numbers_test", 0, *texts)
        ours, formatted = zip(*(w.split("=") for w in got[: len(texts)]), strict=True)
        assert ours == formatted
        assert ours[:6] == (now, "37", now, "0.30000000000000004", now, later)
        assert got[len(texts) :] == ["true"] * (2 * len(texts))
    finally:
        await harness.redis.function_delete(name)
