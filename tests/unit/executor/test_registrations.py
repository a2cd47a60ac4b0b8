"""The registration diff: what to publish given what plugins declare and the stream holds."""

from __future__ import annotations

from datetime import UTC, datetime

from contracts import Schedule, TaskRegistered, TaskSpec, TaskUnregistered, definition_hash
from dvp_cms.plugins import RegisteredTask
from dvp_cms.plugins.hooks.scheduled_tasks import ScheduledTaskDefinition, TaskSchedule
from executor import KnownTask, plan_registrations
from tests.plugins.catalog import CatalogPlugin

NOW = datetime(2026, 11, 24, tzinfo=UTC)
PLUGIN = CatalogPlugin({})


def declared(task_id: str, timeout: float = 10) -> RegisteredTask:
    spec = TaskSpec(
        name=task_id,
        schedule=Schedule(interval_seconds=60),
        max_retries=3,
        timeout_seconds=timeout,
    )
    definition = ScheduledTaskDefinition(
        task_id=task_id, name=task_id, schedule=TaskSchedule(interval_seconds=60)
    )
    return RegisteredTask(
        tenant_id="acme",
        plugin=PLUGIN,
        definition=definition,
        spec=spec,
        definition_hash=definition_hash(PLUGIN.name, PLUGIN.version, spec),
    )


def known(task: RegisteredTask, *, registered: bool = True, plugin: str = "catalog") -> KnownTask:
    return KnownTask(
        task_id=task.task_id,
        plugin=plugin,
        definition_hash=task.definition_hash,
        registered=registered,
        registered_sequence=7,
        unregistered_sequence=9 if not registered else 0,
    )


def plan(
    tasks: list[RegisteredTask],
    stream: list[KnownTask],
    answering: tuple[str, ...] = ("catalog",),
    keep: tuple[str, ...] = (),
) -> list[tuple[str, str, int]]:
    plans = plan_registrations(
        "acme",
        declared={t.task_id: t for t in tasks},
        known={k.task_id: k for k in stream},
        answering_plugins=answering,
        keep=keep,
        now=NOW,
    )
    result = []
    for p in plans:
        kind = "reg" if isinstance(p.event, TaskRegistered) else "unreg"
        assert isinstance(p.event, TaskRegistered | TaskUnregistered)
        assert p.event.tenant_id == "acme"
        result.append((kind, p.event.task_id, p.expected_last_subject_sequence))
    return result


def test_new_tasks_are_registered_expecting_an_empty_subject() -> None:
    assert plan([declared("catalog.a")], []) == [("reg", "catalog.a", 0)]


def test_unchanged_tasks_are_not_published_again() -> None:
    task = declared("catalog.a")
    assert plan([task], [known(task)]) == []


def test_changed_and_re_added_tasks_are_registered_again() -> None:
    old = declared("catalog.a", timeout=10)
    assert plan([declared("catalog.a", timeout=20)], [known(old)]) == [("reg", "catalog.a", 7)]
    assert plan([old], [known(old, registered=False)]) == [("reg", "catalog.a", 7)]


def test_tasks_no_longer_declared_are_unregistered() -> None:
    gone = declared("catalog.gone")
    assert plan([], [known(gone)]) == [("unreg", "catalog.gone", 0)]
    assert plan([], [known(gone, registered=False)]) == []


def test_tasks_of_plugins_that_did_not_answer_are_kept() -> None:
    gone = declared("catalog.gone")
    assert plan([], [known(gone)], answering=()) == []
    assert plan([], [known(gone, plugin="other-executors-plugin")]) == []
    assert plan([], [known(gone)], keep=("catalog.gone",)) == []


def test_registered_event_carries_the_definition() -> None:
    task = declared("catalog.a")
    (p,) = plan_registrations(
        "acme", declared={"catalog.a": task}, known={}, answering_plugins=(), now=NOW
    )
    assert p.event == TaskRegistered(
        tenant_id="acme",
        task_id="catalog.a",
        occurred_at=NOW,
        plugin="catalog",
        plugin_version="1.0.0",
        spec=task.spec,
        definition_hash=task.definition_hash,
    )
