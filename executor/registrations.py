"""Which definitions to publish, as a pure diff between what the plugins declare now and what
the stream says is registered. No I/O."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime

from contracts import TaskRegistered, TaskUnregistered
from dvp_cms.plugins import RegisteredTask


@dataclass(frozen=True)
class KnownTask:
    """A task's registration as the stream records it: the newer of the last message on its
    registered subject and the last on its unregistered subject.

    Attributes:
        task_id: the task.
        plugin: the plugin that registered (or unregistered) it last.
        definition_hash: the hash of the last ``TaskRegistered``, ``None`` if there is none.
        registered: whether the newest of the two is a ``TaskRegistered``.
        registered_sequence: stream sequence of the last ``TaskRegistered`` (0 if none).
        unregistered_sequence: stream sequence of the last ``TaskUnregistered`` (0 if none).
    """

    task_id: str
    plugin: str
    definition_hash: str | None
    registered: bool
    registered_sequence: int = 0
    unregistered_sequence: int = 0


@dataclass(frozen=True)
class PlannedPublish:
    """An event to publish, with the last sequence its subject must have (else someone else
    published first, and the plan for that task is made again)."""

    event: TaskRegistered | TaskUnregistered
    expected_last_subject_sequence: int


def registered_event(task: RegisteredTask, now: datetime) -> TaskRegistered:
    """``TaskRegistered`` for a validated task."""
    return TaskRegistered(
        tenant_id=task.tenant_id,
        task_id=task.task_id,
        occurred_at=now,
        plugin=task.plugin.name,
        plugin_version=task.plugin.version,
        spec=task.spec,
        definition_hash=task.definition_hash,
    )


def plan_task(
    tenant_id: str,
    task_id: str,
    *,
    declared: RegisteredTask | None,
    known: KnownTask | None,
    answering_plugins: Collection[str],
    now: datetime,
) -> PlannedPublish | None:
    """What to publish for one task, if anything.

    A declared task is published when the stream does not hold it as registered, or holds
    another hash. A registered task that is no longer declared is unregistered only when its
    plugin is loaded and answered (``answering_plugins``): a plugin that failed to load or to
    register keeps its tasks, and so does a task that another executor's plugin owns.
    """
    if declared is not None:
        if (
            known is not None
            and known.registered
            and known.definition_hash == (declared.definition_hash)
        ):
            return None
        return PlannedPublish(
            registered_event(declared, now),
            known.registered_sequence if known is not None else 0,
        )
    if known is None or not known.registered or known.plugin not in answering_plugins:
        return None
    return PlannedPublish(
        TaskUnregistered(
            tenant_id=tenant_id,
            task_id=task_id,
            occurred_at=now,
            plugin=known.plugin,
            reason=f"plugin {known.plugin!r} no longer declares it",
        ),
        known.unregistered_sequence,
    )


def plan_registrations(
    tenant_id: str,
    *,
    declared: Mapping[str, RegisteredTask],
    known: Mapping[str, KnownTask],
    answering_plugins: Collection[str],
    keep: Collection[str] = (),
    now: datetime,
) -> list[PlannedPublish]:
    """Everything to publish for one tenant, in task id order.

    ``keep`` lists task ids never to unregister (their new definition was invalid: the error
    is reported and the last valid definition stays).
    """
    plans: list[PlannedPublish] = []
    for task_id in sorted(set(declared) | set(known)):
        if task_id not in declared and task_id in keep:
            continue
        plan = plan_task(
            tenant_id,
            task_id,
            declared=declared.get(task_id),
            known=known.get(task_id),
            answering_plugins=answering_plugins,
            now=now,
        )
        if plan is not None:
            plans.append(plan)
    return plans
