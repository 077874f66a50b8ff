"""The API process runs full collections on a clock (app.collector) while it serves."""

from __future__ import annotations

import asyncio
import gc

import pytest

from app.collector import BACKSTOP
from app.config import Settings
from app.main import create_app

pytestmark = pytest.mark.integration


async def test_the_api_collects_on_the_clock_while_it_runs(settings: Settings) -> None:
    before = gc.get_threshold()
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        assert gc.get_threshold()[2] == BACKSTOP
        assert any(t.get_name() == "gc-full-collections" for t in asyncio.all_tasks())
    assert gc.get_threshold() == before
