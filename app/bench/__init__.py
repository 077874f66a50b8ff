"""``agentic bench``: orchestration benchmark through the real HTTP API, against Celery."""
