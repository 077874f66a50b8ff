"""The ASGI app: ``uvicorn app.main:app`` (``agentic api`` adds the drain on SIGTERM)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import Gauge
from prometheus_fastapi_instrumentator import Instrumentator

from app import __version__
from app.agents import build_planner
from app.api.accepted import AcceptedTasks, keep_s_for
from app.api.drain import DrainState
from app.api.errors import install_error_handlers
from app.api.fast_stream import AgenticAPI
from app.api.fast_submit import FastSubmit
from app.api.hub import EventHub
from app.api.limits import BodyLimitMiddleware
from app.api.ops import router as ops_router
from app.api.routes import router
from app.api.ui import router as ui_router
from app.collector import full_collections_on_a_clock
from app.config import Settings, get_settings
from app.keys import Keys
from app.logs import configure_logging
from app.orchestration.dlq import DeadLetters
from app.orchestration.store import TaskStore
from app.redis_client import make_redis
from app.redis_lane import Lane

OPEN_STREAMS = Gauge("agentic_sse_open_streams", "SSE streams open on this API process.")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = make_redis(settings)
        reader = make_redis(settings, max_connections=1)
        keys = Keys(settings.prefix)
        accepted = AcceptedTasks(keep_s_for(settings.task_ttl_s))
        hub = EventHub(redis, reader, keys, ping_s=settings.sse_ping_s, accepted=accepted)
        app.state.settings = settings
        lane = Lane(redis)
        app.state.store = TaskStore(redis, keys, ttl_s=settings.task_ttl_s, lane=lane)
        app.state.hub = hub
        app.state.dead_letters = DeadLetters(redis, keys, max_attempts=settings.max_attempts)
        app.state.planner = build_planner(settings)
        drain: DrainState = app.state.drain
        drain.on_start(hub.end_all)
        OPEN_STREAMS.set_function(lambda: hub.open_streams)
        await hub.start()
        try:
            # Everything alive now (modules, routes, models, ~100,000 objects) lives as long
            # as the process; full collections over thousands of open streams' objects pause
            # the loop for 100-250 ms: on a clock, not in the middle of a burst (app.collector).
            async with full_collections_on_a_clock():
                yield
        finally:
            await hub.close()
            lane.close()
            await reader.aclose()
            await redis.aclose()

    app = AgenticAPI(
        title="agentic",
        version=__version__,
        summary="A planner and specialised agents on Redis Streams, with live progress over SSE.",
        lifespan=lifespan,
    )
    app.state.drain = DrainState()
    # Innermost first: FastSubmit answers well-formed submissions inside the body limit and
    # the Prometheus instrumentator (added last, so outermost), past FastAPI's routing.
    app.add_middleware(FastSubmit)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    install_error_handlers(app)
    app.include_router(ui_router)
    app.include_router(router)
    app.include_router(ops_router)
    Instrumentator(excluded_handlers=["/metrics", "/stream/.*"]).instrument(app).expose(
        app, endpoint="/metrics", include_in_schema=True, tags=["ops"]
    )
    return app


def _default_app() -> FastAPI:
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings)


app = _default_app()
