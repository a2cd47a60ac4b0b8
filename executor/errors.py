"""Errors of the executor."""

from __future__ import annotations

from contracts.errors import SchedulerError
from natsio.errors import ServiceStartupError


class ExecutorError(SchedulerError):
    """Root of every error the executor raises on purpose."""


class BadInputError(ExecutorError, ValueError):
    """A message on the due subjects that the executor cannot run: terminated, not redelivered.

    The message names the subject and stream sequence of the offending message.
    """

    def __init__(self, subject: str, sequence: int, problem: str) -> None:
        super().__init__(f"bad input on {subject} (stream sequence {sequence}): {problem}")
        self.subject = subject
        self.sequence = sequence
        self.problem = problem


class UnownedTaskError(BadInputError, LookupError):
    """A ``TaskDue`` for a task that no loaded plugin owns: given back (negative
    acknowledgement with a delay) for an executor that owns it, never terminated."""


class WorkerDiedError(ExecutorError):
    """A worker process exited before it answered (a crash in native code, ``os._exit``, the
    out-of-memory killer), or could not start."""


class AttemptCancelledError(ExecutorError):
    """An operator cancelled the attempt (``dvp-scheduler cancel``); ``str()`` says who and
    why. No ``dvp_task_failed`` is asked and no attempt follows."""


class ExecutorSetupError(ExecutorError, ServiceStartupError):
    """The executor cannot start: the stream or its consumer is missing or unusable."""
