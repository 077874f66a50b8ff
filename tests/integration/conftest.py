"""Fixtures shared by the integration tests (the server itself comes from tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from app.config import Settings
from tests.integration.harness import Harness


@pytest.fixture
async def harness(settings: Settings) -> AsyncIterator[Harness]:
    """In-process orchestration on the test's own key prefix; workers stop at the end."""
    h = Harness(settings)
    yield h
    await h.close()
