"""The server-side scripts that make every state change atomic.

Why Lua and not MULTI: a step's completion must read the step's state and attempt (the fence)
and decide from them what to write (results, newly ready steps, the task's end) in one atomic
unit. MULTI cannot branch on what it reads; WATCH would retry under contention. A script runs
to completion on the server with no other command in between, and costs one round trip.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

SCRIPT_NAMES = ("submit", "start", "complete", "fail", "promote", "cancel", "progress", "redrive")


def event_head(event: dict[str, Any], plan_json: bytes = b"") -> bytes:
    """An event's JSON up to its ``ts`` value, which the script appends with the closing brace
    (the server's clock is the one every event time comes from). Laid out by the caller, not
    in Lua: the server is the one part that every worker and API replica shares."""
    head = orjson.dumps(event)[:-1]
    if plan_json:
        head += b',"plan":' + plan_json
    return head + b',"ts":'


@cache
def source(name: str) -> str:
    lua = resources.files("app.orchestration") / "lua"
    return (lua / "common.lua").read_text() + "\n" + (lua / f"{name}.lua").read_text()


class Scripts:
    """The scripts registered on one client; redis-py reloads them after NOSCRIPT."""

    def __init__(self, redis: Redis) -> None:
        self._scripts: dict[str, AsyncScript] = {
            name: redis.register_script(source(name)) for name in SCRIPT_NAMES
        }

    async def call(self, name: str, *args: Any, client: Any = None) -> Any:
        return await self._scripts[name](keys=[], args=list(args), client=client)
