"""The operators' console: a web dashboard that reads only NATS (the projector's queries for
state, the stream for live events) and acts through `dvp_scheduler.operations`, as the command
line does."""

from dvp_scheduler.dashboard.app import Dashboard, build_app, run_dashboard
from dvp_scheduler.dashboard.settings import DEFAULT_DASHBOARD_PORT, DashboardSettings
from dvp_scheduler.dashboard.words import schedule_in_words

__all__ = [
    "DEFAULT_DASHBOARD_PORT",
    "Dashboard",
    "DashboardSettings",
    "build_app",
    "run_dashboard",
    "schedule_in_words",
]
