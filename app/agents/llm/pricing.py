"""Cost of an LLM call from its token usage and a per-model price table.

``cost_units = tokens_in / 1000 * input_per_1k + tokens_out / 1000 * output_per_1k``, in the
model's currency (``ModelPrice.currency``, else ``AGENTIC_PRICING_CURRENCY``, default USD),
rounded to 8 decimals. The table is ``AGENTIC_PRICING`` (JSON: model name -> prices); unset,
:data:`DEFAULT_PRICING` applies. A key ending in ``*`` prices every model name it prefixes
(``"gpt-4o-mini*"`` covers ``gpt-4o-mini-2024-07-18``); an exact name wins, then the longest
prefix. A model missing from the table costs 0 and is reported with ``priced: false`` (and a
warning, once per model per process): tokens are still counted.

The model priced is the one the agent asked for (its configured name), not the name the
endpoint echoes back, so that a price set for ``AGENTIC_MODEL`` always applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from app.config import ModelPrice

if TYPE_CHECKING:
    from app.config import Settings

log = structlog.get_logger("agentic.llm")

#: USD per 1,000 tokens, as published for these models when this table was written; set
#: AGENTIC_PRICING for the models you use (prices change, and self-hosted models cost 0).
DEFAULT_PRICING: dict[str, ModelPrice] = {
    "gpt-4o-mini*": ModelPrice(input_per_1k=0.00015, output_per_1k=0.0006),
    "gpt-4o*": ModelPrice(input_per_1k=0.0025, output_per_1k=0.01),
}


@dataclass(frozen=True, slots=True)
class Cost:
    units: float
    currency: str
    priced: bool


class PriceTable:
    def __init__(self, prices: dict[str, ModelPrice], currency: str = "USD") -> None:
        self.prices = dict(prices)
        self.currency = currency
        self._warned: set[str] = set()

    @classmethod
    def from_settings(cls, settings: Settings) -> PriceTable:
        prices = DEFAULT_PRICING if settings.pricing is None else settings.pricing
        return cls(prices, settings.pricing_currency)

    def price_of(self, model: str) -> ModelPrice | None:
        if model in self.prices:
            return self.prices[model]
        prefixes = [k for k in self.prices if k.endswith("*") and model.startswith(k[:-1])]
        return self.prices[max(prefixes, key=len)] if prefixes else None

    def cost(self, model: str, tokens_in: int, tokens_out: int) -> Cost:
        price = self.price_of(model)
        if price is None:
            if model not in self._warned:
                self._warned.add(model)
                log.warning("no price for model; its cost counts as 0", model=model)
            return Cost(0.0, self.currency, priced=False)
        units = tokens_in / 1000 * price.input_per_1k + tokens_out / 1000 * price.output_per_1k
        return Cost(round(units, 8), price.currency or self.currency, priced=True)
