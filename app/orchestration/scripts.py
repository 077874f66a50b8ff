"""The server-side scripts that make every state change atomic, loaded as one function library.

Why Lua and not MULTI: a step's completion must read the step's state and attempt (the fence)
and decide from them what to write (results, newly ready steps, the task's end) in one atomic
unit. MULTI cannot branch on what it reads; WATCH would retry under contention. A function runs
to completion on the server with no other command in between, and costs one round trip.

Why functions (``FUNCTION LOAD``, ``FCALL``) and not ``EVALSHA``: a script's body runs whole at
every call, so its helpers (``common.lua`` and complete.lua's own, some thirty closures) and
the field names it builds were made again at every call: ~10 µs of server time for an empty
``complete.lua`` call, and about a tenth of a saturated task's. A library's top level runs once,
at load. The library is named after a hash of its source (``agentic_<hash>``), and so are its
functions, so processes of two releases can share a server during a rolling upgrade, each
calling its own; a process loads its library when a call finds it missing (a new server, or
``FUNCTION FLUSH``). Functions are kept in the server's RDB and AOF like data.

Layout: ``common.lua`` (helpers, and ``begin``, which each call runs first to take its
arguments), then each script as a function whose body is the script; a script may put
helpers that need no call state above a ``-- Per call:`` line, and those run once, at load.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import orjson
from redis.exceptions import ResponseError

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from app.redis_lane import Lane

SCRIPT_NAMES = ("submit", "start", "complete", "fail", "promote", "cancel", "progress", "redrive")


def event_head(event: dict[str, Any], plan_json: bytes = b"") -> bytes:
    """An event's JSON up to its ``ts`` value, which the script appends with the closing brace
    (the server's clock is the one every event time comes from). Laid out by the caller, not
    in Lua: the server is the one part that every worker and API replica shares."""
    head = orjson.dumps(event)[:-1]
    if plan_json:
        head += b',"plan":' + plan_json
    return head + b',"ts":'


def event_json(head: bytes, ts: int) -> str:
    """The event a script wrote from ``head`` (event_head) at time ``ts``: what ``emit_head``
    in common.lua appends, so a caller given the time knows the event without reading it."""
    return f"{head.decode()}{ts}}}"


@cache
def source(name: str) -> str:
    return (resources.files("app.orchestration") / "lua" / f"{name}.lua").read_text()


PER_CALL = "-- Per call:"
#: How each script sits in the library: its helpers, then its function, in a block of its own.
WRAPPER = """-- {name}.lua
do
{once}
local function call(_, args)
begin(args)
{per_call}
end
redis.register_function('{name}_{version}', call)
end"""


@cache
def library() -> tuple[str, str]:
    """(version, source) of the function library holding every script. Each script's locals
    live in a ``do ... end`` block of their own: a Lua chunk holds at most 200 locals, and the
    scripts' helpers together pass that. The version is a hash of the whole text (with a
    placeholder where the version goes), so any change to it makes a new version."""
    blocks = [source("common")]
    for name in SCRIPT_NAMES:
        once, marker, rest = source(name).partition(PER_CALL)
        once, per_call = (once, marker + rest) if marker else ("", once)
        blocks.append(WRAPPER.format(name=name, once=once, per_call=per_call, version=VERSION))
    text = f"#!lua name=agentic_{VERSION}\n" + "\n".join(blocks) + "\n"
    version = hashlib.sha1(text.encode()).hexdigest()[:12]
    return version, text.replace(VERSION, version)


VERSION = "%VERSION%"
ALREADY_LOADED = "already exists"


class Scripts:
    """The library's functions, called on one client; the library is loaded when a call finds
    it missing, once for every call that finds it so (a new release's first calls all do)."""

    def __init__(self, redis: Redis, lane: Lane | None = None) -> None:
        self._redis = redis
        #: Calls go on this lane when given (a hot caller's: app.redis_lane), else the pool.
        self._lane = lane
        self._version, self._source = library()
        self._loading: asyncio.Future[None] | None = None

    async def load(self) -> None:
        """Load the library unless it is there: without REPLACE, so a load that another
        process made first costs the server no compilation."""
        try:
            await self._redis.function_load(self._source)
        except ResponseError as exc:
            if ALREADY_LOADED not in str(exc):
                raise

    async def call(self, name: str, *args: Any) -> Any:
        function = f"{name}_{self._version}"
        try:
            return await self._fcall(function, args)
        except ResponseError as exc:
            if "function not found" not in str(exc).lower():
                raise
        await self._load_once()  # nothing ran: the call is safe to make again
        return await self._fcall(function, args)

    def _fcall(self, function: str, args: tuple[Any, ...]) -> Awaitable[Any]:
        if self._lane is not None:
            return self._lane.execute("FCALL", function, 0, *args)
        return self._redis.fcall(function, 0, *args)

    async def _load_once(self) -> None:
        """One load for the calls that find the library missing together."""
        if self._loading is None or self._loading.done():
            self._loading = asyncio.ensure_future(self.load())
        await asyncio.shield(self._loading)
