"""The ticker's settings."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from natsio.settings import ServiceSettings
from ticker._policy import LOST_AFTER_SECONDS


class TickerSettings(ServiceSettings):
    """How the ticker runs; the defaults suit production."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid", env_prefix="DVP_TICKER_")

    max_in_flight: int = Field(default=1024, ge=1, description="publishes awaiting an ack")
    startup_timeout_seconds: float = Field(default=120.0, gt=0)
    grace_seconds: float = Field(
        default=5.0,
        ge=0,
        description="on shutdown, how long publishes in flight may take to finish",
    )
    conflict_wait_seconds: float = Field(
        default=5.0, gt=0, description="how long a refused publish waits for the follower"
    )
    backoff_seconds: float = Field(
        default=1.0, gt=0, description="pause before a task whose publish failed is tried again"
    )
    publish_timeout_seconds: float = Field(default=5.0, gt=0)
    lost_after_seconds: float = Field(
        default=LOST_AFTER_SECONDS,
        gt=0,
        description="how long past its deadline a started attempt may still record its outcome "
        "before the ticker closes it as lost (keep it above the executors' ack wait)",
    )
