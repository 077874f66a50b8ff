"""Pricing: tokens → cost units per model, currency, prefixes, unknown models, settings JSON."""

from __future__ import annotations

import pytest

from app.agents.llm.pricing import DEFAULT_PRICING, PriceTable
from app.config import ModelPrice, Settings


def table() -> PriceTable:
    return PriceTable(
        {
            "big": ModelPrice(input_per_1k=2.0, output_per_1k=8.0),
            "small*": ModelPrice(input_per_1k=0.5, output_per_1k=1.0),
            "small-eur*": ModelPrice(input_per_1k=0.4, output_per_1k=0.9, currency="EUR"),
        },
        currency="USD",
    )


def test_cost_is_tokens_times_price_per_1k() -> None:
    cost = table().cost("big", 1500, 250)
    assert cost.units == pytest.approx(1.5 * 2.0 + 0.25 * 8.0)
    assert (cost.currency, cost.priced) == ("USD", True)


def test_longest_prefix_wins_and_may_set_its_own_currency() -> None:
    prices = table()
    assert prices.cost("small-2024", 1000, 1000).units == pytest.approx(1.5)
    eur = prices.cost("small-eur-1", 1000, 1000)
    assert eur.units == pytest.approx(1.3) and eur.currency == "EUR"


def test_exact_name_beats_a_prefix() -> None:
    prices = PriceTable(
        {"m*": ModelPrice(input_per_1k=1, output_per_1k=1),
         "m-x": ModelPrice(input_per_1k=9, output_per_1k=9)}
    )  # fmt: skip
    assert prices.cost("m-x", 1000, 0).units == 9


def test_unknown_model_costs_nothing_but_says_so() -> None:
    cost = table().cost("mystery", 10_000, 10_000)
    assert (cost.units, cost.priced) == (0.0, False)


def test_rounding_keeps_tiny_costs() -> None:
    prices = PriceTable(DEFAULT_PRICING)
    assert prices.cost("gpt-4o-mini", 1, 0).units == pytest.approx(0.00000015)
    assert prices.cost("gpt-4o-mini-2024-07-18", 1000, 1000).units == pytest.approx(0.00075)
    assert prices.cost("gpt-4o", 1000, 0).units == pytest.approx(0.0025)


def test_table_comes_from_settings_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AGENTIC_PRICING", '{"local": {"input_per_1k": 0.01, "output_per_1k": 0.02}}'
    )
    monkeypatch.setenv("AGENTIC_PRICING_CURRENCY", "credits")
    prices = PriceTable.from_settings(Settings())
    cost = prices.cost("local", 2000, 1000)
    assert cost.units == pytest.approx(0.04) and cost.currency == "credits"
    assert prices.price_of("gpt-4o-mini") is None  # a configured table replaces the default


def test_default_table_when_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTIC_PRICING", raising=False)
    prices = PriceTable.from_settings(Settings())
    assert prices.price_of("gpt-4o-mini") == DEFAULT_PRICING["gpt-4o-mini*"]
