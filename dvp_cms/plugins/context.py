"""The context every hook receives."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class HookContext:
    """Who a hook runs for, and where it logs.

    Attributes:
        tenant_id: the tenant the hook runs for.
        logger: a logger named after the plugin.
        plugin_name: the plugin the hook belongs to.
        config: settings the host passes to plugins (empty unless configured).
    """

    tenant_id: str
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("dvp_cms.plugins"))
    plugin_name: str = ""
    config: Mapping[str, Any] = field(default_factory=dict)
