"""The executor's numbers: what a metrics reader scrapes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class ExecutorStats:
    """Counters of one executor's life, and the attempts running now.

    Plain numbers only, kept current by the executor, so that ``executor.stats`` is all a
    metrics reader needs.
    """

    started: int = 0
    succeeded: int = 0
    retries_scheduled: int = 0
    failed: int = 0
    bad_input: int = 0
    """Messages on a due subject that are not a ``TaskDue`` this code can read: terminated."""
    unowned: int = 0
    """Deliveries of a ``TaskDue`` no loaded plugin owns: given back for an executor that
    does (another one, or this one after a reload)."""
    already_recorded: int = 0
    """Redelivered attempts whose outcome was already in the stream: acked, not run again."""
    returned: int = 0
    """Attempts cancelled at shutdown and given back for redelivery."""
    cancelled: int = 0
    """Attempts ended by an operator's cancel (``TaskFailed``, reason ``cancelled``)."""
    registered: int = 0
    unregistered: int = 0
    plugin_errors: int = 0
    """Plugins that failed to load, and registration problems, over every (re)load."""
    running: int = 0
    """Attempts running now."""
    workers: int = 0
    """Worker processes alive now (``isolation="process"``), starting ones included."""
    workers_started: int = 0
    """Worker processes started and ready, over the executor's life."""
    workers_killed: int = 0
    """Worker processes killed because their attempt, or its ``dvp_task_failed``, ran past
    its time."""
    workers_died: int = 0
    """Worker processes that exited on their own while running an attempt or a
    ``dvp_task_failed`` (a crash, ``os._exit``, the out-of-memory killer)."""
