"""Durations as people read them, the same in the command line's tables and the dashboard."""

from __future__ import annotations


def short_duration(seconds: float) -> str:
    """``42s``, ``3m12s``, ``2h05m``, ``3d04h`` (whole seconds; negative counts as 0)."""
    whole = max(0, int(seconds))
    minutes, secs = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"
