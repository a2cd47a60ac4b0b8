"""The executor's settings."""

from __future__ import annotations

import os
import socket
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from contracts import validate_tenant_id
from contracts.stream import EXECUTOR_ACK_WAIT_SECONDS
from natsio.settings import ServiceSettings


def default_worker_name() -> str:
    """``<host>:<pid>``: who ran an attempt, as recorded in the events."""
    return f"{socket.gethostname()}:{os.getpid()}"


class ExecutorSettings(ServiceSettings):
    """How an executor connects, what it loads and how much it runs at once."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid", env_prefix="DVP_EXECUTOR_")

    plugins: tuple[str, ...] = Field(
        default=(), description="plugin references 'module:attr', loaded besides entry points"
    )
    use_entry_points: bool = Field(
        default=True, description="also load the plugins installed under 'dvp_cms.plugins'"
    )
    tenants: tuple[str, ...] = Field(default=("default",), min_length=1)
    concurrency: int = Field(default=32, ge=1, description="most attempts in flight at once")
    ack_wait_seconds: float = Field(
        default=EXECUTOR_ACK_WAIT_SECONDS,
        gt=0,
        description="ack wait of the shared consumer when this executor creates it; an "
        "existing consumer keeps its own, and heartbeats follow the consumer's",
    )
    grace_seconds: float = Field(
        default=30.0, ge=0, description="how long in-flight attempts may finish on shutdown"
    )
    fetch_timeout_seconds: float = Field(
        default=1.0, gt=0, description="longest wait of one pull; bounds how fast a stop is seen"
    )
    decision_timeout_seconds: float = Field(
        default=30.0, gt=0, description="a dvp_task_failed hook slower than this counts as None"
    )
    blocked_loop_warning_seconds: float = Field(
        default=1.0, gt=0, description="warn, naming the plugin, when the loop is blocked this long"
    )
    isolation: Literal["process", "inline"] = Field(
        default="process",
        description="where attempts run: 'process', each in a worker process that is killed "
        "when it overruns its timeout; 'inline', in the executor's own event loop (fastest, "
        "for trusted plugins: one that blocks stalls the executor)",
    )
    worker: str = Field(default_factory=default_worker_name)

    @field_validator("tenants")
    @classmethod
    def _valid_tenants(cls, tenants: tuple[str, ...]) -> tuple[str, ...]:
        for tenant in tenants:
            validate_tenant_id(tenant)
        return tuple(dict.fromkeys(tenants))
