"""Worker process entrypoint (``python -m worker.agent_worker``); the logic lives in app/."""
