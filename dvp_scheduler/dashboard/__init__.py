"""The operators' console: a web dashboard that reads only NATS (the projector's queries for
state, the stream for live events) and acts through `dvp_scheduler.operations`, as the command
line does."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dvp_scheduler.dashboard.settings import DEFAULT_DASHBOARD_PORT, DashboardSettings
from dvp_scheduler.dashboard.words import schedule_in_words

if TYPE_CHECKING:
    from dvp_scheduler.dashboard.app import Dashboard, build_app, run_dashboard

__all__ = [
    "DEFAULT_DASHBOARD_PORT",
    "Dashboard",
    "DashboardSettings",
    "build_app",
    "run_dashboard",
    "schedule_in_words",
]

_FROM_APP = ("Dashboard", "build_app", "run_dashboard")


def __getattr__(name: str) -> Any:
    # The web stack (Starlette, Jinja, uvicorn) is loaded when the dashboard is, not by every
    # process that imports the command line (a ticker, an executor).
    if name in _FROM_APP:
        from dvp_scheduler.dashboard import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
