"""``agentic api``: uvicorn with a drain phase between SIGTERM and shutdown."""

from __future__ import annotations

import asyncio
from types import FrameType

import uvicorn
from fastapi import FastAPI

from app.api.drain import DrainState


class DrainingServer(uvicorn.Server):
    """First SIGTERM/SIGINT: drain (readyz 503, streams end with a retry hint) for ``drain_s``
    while still listening, then uvicorn's own graceful shutdown. A second signal exits now."""

    def __init__(self, config: uvicorn.Config, drain: DrainState, drain_s: float) -> None:
        super().__init__(config)
        self.drain = drain
        self.drain_s = drain_s
        self._draining = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._draining or self.drain_s <= 0:
            self.drain.start()
            super().handle_exit(sig, frame)
            return
        self._draining = True
        loop = asyncio.get_event_loop()
        finish = super().handle_exit

        def begin() -> None:
            self.drain.start()
            loop.call_later(self.drain_s, finish, sig, frame)

        # A signal handler may interrupt the loop anywhere: hand over through the thread-safe door.
        loop.call_soon_threadsafe(begin)


def serve_api(app: FastAPI, host: str, port: int, drain_s: float, graceful_s: float = 10.0) -> None:
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(graceful_s),
        proxy_headers=True,
        forwarded_allow_ips="*",
    )
    server = DrainingServer(config, app.state.drain, drain_s)
    server.run()
