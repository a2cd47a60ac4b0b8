"""The shape every service's settings share."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from natsio.connection import NatsConnection


class ServiceSettings(BaseSettings):
    """Base of the ticker's, executor's and projector's settings.

    A subclass sets ``env_prefix`` (``DVP_TICKER_``, ...): each field is read from the keyword
    arguments first, then from ``<prefix><FIELD>`` in the environment, then its default, so a
    default is written once, here, and the command line derives its flags from the model.
    """

    model_config = SettingsConfigDict(frozen=True, extra="forbid", env_prefix="DVP_")

    connection: NatsConnection = Field(
        default_factory=NatsConnection, description="the NATS server and credentials"
    )
    connect_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        description="at start, how long to keep trying to reach NATS before giving up",
    )
    startup_patience_seconds: float = Field(
        default=60.0,
        gt=0,
        description="at start, how long to keep asking JetStream while it does not answer (a "
        "stream leader election, a node restarting) before giving up",
    )
    grace_seconds: float = Field(
        default=10.0, ge=0, description="on shutdown, how long running work may take to finish"
    )
