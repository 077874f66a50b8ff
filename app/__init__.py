"""Agentic task system: planner + agents on Redis Streams, progress over SSE."""

__version__ = "0.1.0"
