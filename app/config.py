"""Settings: every knob is an ``AGENTIC_*`` environment variable (same names in Helm values)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


class ModelPrice(BaseModel):
    """Price of one model, in cost units (of ``currency``) per 1,000 tokens."""

    model_config = ConfigDict(extra="forbid")

    input_per_1k: float = Field(ge=0)
    output_per_1k: float = Field(ge=0)
    currency: str | None = None  # None: AGENTIC_PRICING_CURRENCY


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AGENTIC_", extra="ignore")

    # --- Redis -------------------------------------------------------------------------------
    redis_url: str | None = Field(
        default=None,
        description="Redis URL. Unset: `agentic up` starts an embedded Valkey; api/worker use "
        f"{DEFAULT_REDIS_URL}.",
    )
    prefix: str = Field(default="agentic", pattern=r"^[A-Za-z0-9_.\-]+$")
    data_dir: Path = Path(".agentic")
    embedded_malloc: str = Field(
        default="auto",
        description="Allocator of the embedded Valkey: `auto` preloads the system's jemalloc "
        "when it has one (as Valkey's own builds use), `libc` runs the server as built, "
        "anything else is a library to preload (LD_PRELOAD).",
    )

    # --- execution ---------------------------------------------------------------------------
    executor: Literal["agents", "noop"] = "agents"
    noop_delay_ms: int = Field(default=0, ge=0)
    llm_provider: Literal["offline", "openai"] = "offline"
    openai_base_url: str | None = None
    openai_api_key: SecretStr | None = None
    model: str = "gpt-4o-mini"
    corpus_dir: Path | None = None

    # --- delivery ----------------------------------------------------------------------------
    visibility_timeout_s: float = Field(default=30.0, gt=0)
    worker_concurrency: int = Field(default=16, ge=1)
    read_count: int = Field(default=16, ge=1)
    block_ms: int = Field(default=1000, ge=10)
    #: A step still running this long after delivery is claimed (step_started); one that ends
    #: sooner is started and completed in one script call. 0: claim every step before it runs.
    claim_after_ms: int = Field(default=50, ge=0)
    promote_interval_ms: int = Field(default=100, ge=5)
    trim_interval_s: float = Field(default=10.0, gt=0)
    worker_grace_s: float = Field(default=20.0, ge=0)
    worker_metrics_port: int = Field(default=9100, ge=0, le=65535)

    # --- retries (see app.orchestration.retry.RetryPolicy) -----------------------------------
    max_attempts: int = Field(default=3, ge=1, le=100)
    retry_initial_s: float = Field(default=0.5, ge=0)
    retry_factor: float = Field(default=2.0, ge=1)
    retry_max_s: float = Field(default=30.0, ge=0)
    retry_jitter: float = Field(default=0.25, ge=0, le=1)

    # --- tasks and API -----------------------------------------------------------------------
    task_ttl_s: int = Field(default=7 * 24 * 3600, ge=1)
    max_input_chars: int = Field(default=8000, ge=1)
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    max_plan_steps: int = Field(default=32, ge=1, le=32)
    sse_ping_s: float = Field(default=15.0, gt=0)
    sse_retry_ms: int = Field(default=1000, ge=0)
    drain_s: float = Field(default=2.0, ge=0)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)

    # --- LLM (issue 4) ----------------------------------------------------------------------
    # Per-agent models; None: AGENTIC_MODEL.
    planner_model: str | None = None
    analyzer_model: str | None = None
    writer_model: str | None = None
    llm_timeout_s: float = Field(default=60.0, gt=0, description="Per HTTP request to the LLM.")
    llm_max_retries: int = Field(
        default=2, ge=0, le=10, description="SDK retries of 408/409/429/5xx and connection errors."
    )
    llm_max_output_tokens: int = Field(default=1500, ge=16, description="Analyzer/writer cap.")
    llm_temperature: float = Field(default=0.2, ge=0, le=2)
    llm_max_context_chars: int = Field(
        default=24_000, ge=1000, description="Retrieved text put into one prompt, at most."
    )
    llm_json_mode: Literal["auto", "json_schema", "json_object", "prompt"] = "auto"
    planner_timeout_s: float = Field(
        default=20.0, gt=0, description="Whole LLM planning (repair included); then offline."
    )
    #: Model name -> price. None: the built-in table (app.agents.llm.pricing.DEFAULT_PRICING).
    #: JSON, e.g. AGENTIC_PRICING='{"gpt-4o-mini": {"input_per_1k": 0.00015,
    #: "output_per_1k": 0.0006}}'. A model missing from the table costs 0 (logged once).
    pricing: dict[str, ModelPrice] | None = None
    pricing_currency: str = "USD"
    #: Per-task budgets, enforced at step completion; 0 = no limit.
    task_max_tokens: int = Field(default=0, ge=0)
    task_max_cost_units: float = Field(default=0.0, ge=0)
    # Retriever tools: URL fetch (SSRF-guarded, app.agents.fetch) and web search (seam only).
    # The retriever fetches only URLs the user named in the task (docs/system_design.md §12);
    # AGENTIC_FETCH_ENABLED=false keeps it offline (the test suite does: no outside hosts).
    fetch_enabled: bool = True
    fetch_timeout_s: float = Field(default=10.0, gt=0, description="Whole fetch, redirects too.")
    fetch_max_bytes: int = Field(default=2_000_000, ge=1024)
    fetch_max_redirects: int = Field(default=5, ge=0, le=20)
    fetch_max_chars: int = Field(default=20_000, ge=100, description="Text kept per page.")
    web_search_provider: Literal["none"] = "none"

    # --- logging -----------------------------------------------------------------------------
    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"

    @property
    def effective_redis_url(self) -> str:
        return self.redis_url or DEFAULT_REDIS_URL


@lru_cache
def get_settings() -> Settings:
    return Settings()
