"""The read side: ``tasks``, ``history``, ``failures``, ``events``, ``replay`` and ``next``.

``tasks``, ``history`` and ``failures`` ask a running projector and, when none answers, replay
the stream in-process (saying so on stderr). ``replay`` always folds in-process: the audit tool.
Tables are for people; ``--json`` prints objects with the stable field names of
`projector.views`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import msgspec
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from contracts import (
    STREAM_NAME,
    EventDecodeError,
    EventKind,
    Schedule,
    next_fires,
    subject_filter,
    validate_schedule,
    validate_task_id,
)
from contracts.events import ScheduledRun, event_type
from contracts.inbound import read_event
from contracts.overdue import overdue_seconds
from contracts.queries import FAILURES_QUERY, HISTORY_QUERY, TASKS_QUERY
from contracts.schedule import next_fires_in_window
from contracts.validation import registration_problem
from dvp_scheduler.cli._common import (
    add_connection_arguments,
    connected,
    connection_from_arguments,
    instant_argument,
)
from dvp_scheduler.durations import short_duration as _duration
from dvp_scheduler.errors import SettingsError
from dvp_scheduler.operations import scheduled_runs
from natsio import (
    OrderedReader,
    ReadProgress,
    read_to_end,
    reader_client_class,
)
from natsio.lookup import read_task_standing
from projector import (
    AmbiguousTaskError,
    ProjectionState,
    ProjectorError,
    UnknownTaskError,
    find_tasks,
    history,
    list_failures,
    list_tasks,
    replay,
)
from projector.queries import ask_failures, ask_history, ask_tasks

T = TypeVar("T")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tasks = commands.add_parser(
        "tasks",
        help="one row per task: schedule, status, next fire, last outcome, counts",
        description="List tasks as the projector sees them (replays in-process if no "
        "projector answers).",
    )
    _common(tasks)
    tasks.add_argument("--tenant", metavar="T", help="only this tenant's tasks")
    tasks.add_argument("--all", action="store_true", help="include unregistered tasks")
    tasks.set_defaults(handler=_tasks)

    hist = commands.add_parser(
        "history",
        help="a task's executions, newest first, with their attempts",
        description="Show a task's executions newest first (replays in-process if no "
        "projector answers).",
    )
    _common(hist)
    hist.add_argument("task_id", metavar="TASK_ID")
    hist.add_argument("--tenant", metavar="T", help="the task's tenant (needed if ambiguous)")
    hist.add_argument("--limit", type=int, default=20, metavar="N", help="executions (20)")
    hist.set_defaults(handler=_history)

    fails = commands.add_parser(
        "failures",
        help="executions that ended failed, newest first",
        description="List the executions in the projector's history that ended failed (retries "
        "exhausted, declined or aborted, or lost), newest first (replays in-process if no "
        "projector answers).",
    )
    _common(fails)
    fails.add_argument("--tenant", metavar="T", help="only this tenant's executions")
    fails.add_argument(
        "--since", type=instant_argument, metavar="INSTANT", help="ended at or after (RFC 3339)"
    )
    fails.add_argument("--limit", type=int, default=20, metavar="N", help="executions (20)")
    fails.set_defaults(handler=_failures)

    events = commands.add_parser(
        "events",
        help="the raw events, one per line",
        description="Print the events of the stream, oldest first, one per line.",
    )
    _common(events)
    events.add_argument("--follow", "-f", action="store_true", help="keep printing new events")
    events.add_argument(
        "--since", type=instant_argument, metavar="INSTANT", help="recorded at or after (RFC 3339)"
    )
    events.add_argument("--task", metavar="TASK_ID", help="only this task's events")
    events.add_argument("--tenant", metavar="T", help="only this tenant's events")
    events.set_defaults(handler=_events)

    rep = commands.add_parser(
        "replay",
        help="rebuild the state from the stream in-process, as of an instant",
        description="Fold the whole stream in-process (no projector needed) and print every "
        "task's state, or the state as of --until: events that occurred later are left out.",
    )
    _common(rep)
    rep.add_argument(
        "--until",
        type=instant_argument,
        metavar="INSTANT",
        help="state as of this instant (RFC 3339)",
    )
    rep.add_argument("--tenant", metavar="T", help="only this tenant's tasks")
    rep.set_defaults(handler=_replay)

    nxt = commands.add_parser(
        "next",
        help="the next fire instants of a task, or of a cron expression",
        description=(
            "Compute a task's next fire instants from its registered schedule, or (with --cron, "
            "no broker needed) those of a cron expression, to check what it means before "
            "registering it."
        ),
    )
    _common(nxt)
    nxt.add_argument("task_id", metavar="TASK_ID", nargs="?")
    nxt.add_argument("--tenant", metavar="T", help="the task's tenant (needed if ambiguous)")
    nxt.add_argument(
        "--cron", metavar="EXPR", help="a cron expression instead of a task: '0 0 L * *'"
    )
    nxt.add_argument(
        "--timezone", metavar="ZONE", default="UTC", help="with --cron: its IANA zone (UTC)"
    )
    nxt.add_argument("-n", type=int, default=5, metavar="N", help="how many (5)")
    nxt.set_defaults(handler=_next)


def _common(parser: argparse.ArgumentParser) -> None:
    add_connection_arguments(parser)
    parser.add_argument("--json", action="store_true", help="JSON for scripts instead of a table")


# ---------------------------------------------------------------------------------------------
# tasks, history, replay


def _tasks(args: argparse.Namespace) -> int:
    items = _with_lateness(_run(_tasks_async(args)), datetime.now(UTC))
    _print(args, items, _task_table)
    return 0


def _with_lateness(items: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """The task rows with ``overdue`` and ``overdue_seconds`` (how late) as of ``now``, from
    their ``overdue_at``: the only fields of a row that depend on when it is read."""
    for item in items:
        deadline = item.get("overdue_at")
        late = overdue_seconds(datetime.fromisoformat(deadline), now) if deadline else None
        item["overdue"] = late is not None
        item["overdue_seconds"] = late
    return items


async def _tasks_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    async with _connected(args, "dvp-scheduler-tasks") as nc:
        items = await ask_tasks(nc, tenant_id=args.tenant, include_unregistered=args.all)
        if items is not None:
            return items
        say(f"no projector answered on {TASKS_QUERY}; replaying the stream in-process")
        state = await replay_state(nc)
        views = list_tasks(state, tenant_id=args.tenant, include_unregistered=args.all)
        return _builtins(views)


def _history(args: argparse.Namespace) -> int:
    validate_task_id(args.task_id)
    items = _run(_history_async(args))
    _print(args, items, _history_table)
    return 0


async def _history_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    async with _connected(args, "dvp-scheduler-history") as nc:
        items = await ask_history(nc, args.task_id, tenant_id=args.tenant, limit=args.limit)
        if items is not None:
            return items
        say(f"no projector answered on {HISTORY_QUERY}; replaying the stream in-process")
        state = await replay_state(nc)
        found = find_tasks(state, args.task_id, args.tenant)
        if not found:
            raise UnknownTaskError(args.task_id, args.tenant)
        if len(found) > 1:
            raise AmbiguousTaskError(args.task_id, [t.tenant_id for t in found])
        return _builtins(history(found[0], limit=max(0, args.limit)))


def _failures(args: argparse.Namespace) -> int:
    items = _run(_failures_async(args))
    _print(args, items, _failure_table)
    return 0


async def _failures_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    async with _connected(args, "dvp-scheduler-failures") as nc:
        items = await ask_failures(nc, tenant_id=args.tenant, since=args.since, limit=args.limit)
        if items is not None:
            return items
        say(f"no projector answered on {FAILURES_QUERY}; replaying the stream in-process")
        state = await replay_state(nc)
        views = list_failures(state, tenant_id=args.tenant, since=args.since, limit=args.limit)
        return _builtins(views)


async def replay_state(nc: Client, until: datetime | None = None) -> ProjectionState:
    """The state replayed in-process (as of ``until``), with progress on stderr when it is a
    terminal; an empty state when there is no stream yet."""
    progress = _progress_printer() if sys.stderr.isatty() else None
    try:
        return await replay(nc, until=until, progress=progress)
    except NotFoundError:  # no stream yet: nothing was ever recorded
        return ProjectionState()
    finally:
        if progress is not None:
            print(file=sys.stderr)


def _replay(args: argparse.Namespace) -> int:
    items = _with_lateness(_run(_replay_async(args)), args.until or datetime.now(UTC))
    _print(args, items, _task_table)
    return 0


async def _replay_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    async with _connected(args, "dvp-scheduler-replay") as nc:
        started = time.perf_counter()
        state = await replay_state(nc, args.until)
        elapsed = time.perf_counter() - started
    as_of = f" as of {args.until.isoformat()}" if args.until else ""
    skipped = sum(state.unknown_events.values()) + state.invalid_messages
    say(
        f"replayed {state.events_applied} events up to stream sequence {state.sequence}{as_of}"
        + (f"; skipped {skipped} unknown or invalid messages" if skipped else "")
        + f" in {elapsed:.2f} s ({state.sequence / elapsed if elapsed else 0:,.0f} messages/s)"
    )
    return _builtins(list_tasks(state, tenant_id=args.tenant, include_unregistered=True))


def _progress_printer() -> Callable[[ReadProgress], None]:
    def report(progress: ReadProgress) -> None:
        print(
            f"\rreplay: {progress.read:,} events read, {progress.rate:,.0f}/s, "
            f"sequence {progress.sequence:,} of {progress.last_sequence:,}",
            end="",
            file=sys.stderr,
            flush=True,
        )

    return report


# ---------------------------------------------------------------------------------------------
# events


def _events(args: argparse.Namespace) -> int:
    if args.task is not None:
        validate_task_id(args.task)
    _run(_events_async(args))
    return 0


async def _events_async(args: argparse.Namespace) -> None:
    filter_subject = subject_filter(args.tenant, None, args.task)

    def show(sequence: int, msg_subject: bytes, data: bytes) -> None:
        if args.json:
            sys.stdout.write(data.decode(errors="replace") + "\n")
            return
        try:
            event = read_event(msg_subject, data)
        except EventDecodeError as error:
            print(f"{sequence:>8}  {msg_subject.decode()}  (not an event: {error})", flush=True)
            return
        summary = msgspec.json.encode(
            {
                k: v
                for k, v in msgspec.to_builtins(event).items()
                if k not in ("type", "tenant_id", "task_id", "occurred_at")
            }
        ).decode()
        print(
            f"{sequence:>8}  {_short(event.occurred_at.isoformat())}  {event_type(event):<24}  "
            f"{event.tenant_id}/{event.task_id}  {summary}",
            flush=True,
        )

    async with _connected(args, "dvp-scheduler-events") as nc:
        js = nc.jetstream()
        try:
            await js.stream_info(STREAM_NAME)
        except NotFoundError:
            if not args.follow:
                return
            say(f"no stream {STREAM_NAME} yet: waiting for the first service to create it")
            await _stream_created(js)
        if not args.follow:
            await read_to_end(nc, show, subject=filter_subject, start_time=args.since)
            return
        reader = OrderedReader(nc, show, subject=filter_subject, start_time=args.since)
        async with reader:
            await reader.finished  # until Ctrl-C


async def _stream_created(js: JetStreamContext, poll_seconds: float = 1.0) -> None:
    while True:
        await asyncio.sleep(poll_seconds)
        try:
            await js.stream_info(STREAM_NAME)
        except NotFoundError:
            continue
        return


# ---------------------------------------------------------------------------------------------
# next


def _next(args: argparse.Namespace) -> int:
    if (args.cron is None) == (args.task_id is None):
        raise SettingsError("next takes a TASK_ID or --cron EXPR: give one of them")
    if args.cron is not None:
        schedule = Schedule(cron_expression=args.cron, timezone=args.timezone)
        validate_schedule(schedule)
        fires = next_fires(schedule, datetime.now(UTC), max(0, args.n))
        one_offs: dict[datetime, str] = {}
    else:
        validate_task_id(args.task_id)
        fires, tenant, paused, end_at, runs = _run(_next_async(args))
        # An operator's one-off runs (trigger --at) come among the schedule's fires.
        one_offs = {run.run_at: run.run_id for run in runs}
        fires = sorted({*fires, *one_offs})[: max(0, args.n)]
        if paused:
            say(f"task {tenant}/{args.task_id} is paused: these fires wait for a resume")
        if end_at is not None and len(fires) < max(0, args.n):
            ended = end_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
            say(f"task {tenant}/{args.task_id} fires no more after its active window's end {ended}")
    if args.json:
        print(json.dumps([f.isoformat().replace("+00:00", "Z") for f in fires]))
    else:
        for fire in fires:
            once = f"  one-off run {one_offs[fire]}" if fire in one_offs else ""
            print(fire.isoformat().replace("+00:00", "Z") + once)
    return 0


async def _next_async(
    args: argparse.Namespace,
) -> tuple[list[datetime], str, bool, datetime | None, tuple[ScheduledRun, ...]]:
    async with _connected(args, "dvp-scheduler-next") as nc:
        js = nc.jetstream()
        tenant = args.tenant
        try:
            if tenant is None:
                pattern = subject_filter(None, EventKind.REGISTERED, args.task_id)
                info = await js.stream_info(STREAM_NAME, subjects_filter=pattern)
                tenants = sorted(s.split(".")[2] for s in (info.state.subjects or {}))
                if not tenants:
                    raise UnknownTaskError(args.task_id, None)
                if len(tenants) > 1:
                    raise AmbiguousTaskError(args.task_id, tenants)
                tenant = tenants[0]
        except NotFoundError:
            raise UnknownTaskError(args.task_id, tenant) from None
        standing = await read_task_standing(js, tenant, args.task_id)
        event = standing.registration
        if event is None:
            raise UnknownTaskError(args.task_id, tenant)
        if not standing.registered:
            raise ProjectorError(
                f"task {tenant}/{args.task_id} is unregistered: its plugin no longer declares it"
            )
        problem = registration_problem(event)
        if problem is not None:
            raise ProjectorError(
                f"task {tenant}/{args.task_id} is invalid and never fires: its registration "
                f"breaks the registration rules ({problem}); its plugin must register a valid "
                "definition"
            )
        paused = standing.paused
        schedule = event.spec.schedule
        fires = next_fires_in_window(schedule, datetime.now(UTC), max(0, args.n))
        runs, _ = await scheduled_runs(js, tenant, args.task_id)
        return fires, tenant, paused, schedule.end_at, runs


# ---------------------------------------------------------------------------------------------
# plumbing


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


@asynccontextmanager
async def _connected(args: argparse.Namespace, name: str) -> AsyncIterator[Client]:
    connection = connection_from_arguments(args, name=name)
    async with connected(connection, reader_client_class()) as nc:
        yield nc


def _builtins(views: Sequence[msgspec.Struct]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = msgspec.to_builtins(list(views))
    return result


def say(text: str) -> None:
    """Tell the user something on stderr, prefixed with the command's name."""
    print(f"dvp-scheduler: {text}", file=sys.stderr, flush=True)


def _print(
    args: argparse.Namespace,
    items: list[dict[str, Any]],
    table: Callable[[list[dict[str, Any]]], None],
) -> None:
    if args.json:
        sys.stdout.write(json.dumps(items, indent=2) + "\n")
    else:
        table(items)


def _short(instant: str | None) -> str:
    if not instant:
        return "-"
    return instant.replace("T", " ").replace("+00:00", "Z")[:20]


def _columns(rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


def _task_table(items: list[dict[str, Any]]) -> None:
    if not items:
        print("no tasks")
        return
    now = datetime.now(UTC)
    rows = [
        ["TENANT", "TASK", "SCHEDULE", "STATUS", "NEXT FIRE", "LAST OUTCOME", "OK/FAIL/RETRY/SKIP"]
    ]
    for t in items:
        last = t["last_outcome"] or "-"
        if t["last_outcome_at"]:
            last = f"{last} {_short(t['last_outcome_at'])}"
        rows.append(
            [
                t["tenant_id"],
                t["task_id"],
                _cut(t["schedule"] or "-", _SCHEDULE_WIDTH),
                _status_cell(t, now),
                _short(t["next_fire_at"]),
                last,
                f"{t['succeeded']}/{t['failed']}/{t['retried']}/{t['skipped']}",
            ]
        )
    _columns(rows)


_SCHEDULE_WIDTH = 40
"""Characters of a schedule shown in the ``tasks`` table (an invalid one may be very long)."""


def _cut(text: str, width: int) -> str:
    """``text``, cut to ``width`` characters with ``...`` when longer."""
    return text if len(text) <= width else text[: width - 3] + "..."


def _status_cell(task: dict[str, Any], now: datetime) -> str:
    """The status, how long an attempt has waited for an executor, if one does, and how late
    the task is, if it is overdue."""
    cell = _activity_cell(task, now)
    late = task.get("overdue_seconds")
    if late is not None:
        cell += f", overdue by {_duration(late)}"
    return cell


def _activity_cell(task: dict[str, Any], now: datetime) -> str:
    status: str = task["status"]
    if status == "invalid":
        return f"invalid: {task.get('invalid_reason') or 'its registration breaks the rules'}"
    since = task.get("waiting_since")
    if not since or status in ("paused", "unregistered"):
        return status
    waited = _duration((now - datetime.fromisoformat(since)).total_seconds())
    if status == "due":
        return f"due (waiting for an executor for {waited})"
    return f"{status} (another attempt waits for an executor for {waited})"


def _history_table(items: list[dict[str, Any]]) -> None:
    if not items:
        print("no executions")
        return
    for execution in items:
        print(
            f"{execution['execution_id']}  {execution['trigger'] or '-'}  "
            f"scheduled {_short(execution['scheduled_for'])}  {execution['status']}"
            + _rerun_links(execution)
        )
        for attempt in execution["attempts"]:
            line = (
                f"  #{attempt['attempt']}  {attempt['worker'] or '-'}  "
                f"started {_short(attempt['started_at'])}  ended {_short(attempt['ended_at'])}  "
                f"{attempt['duration_ms'] if attempt['duration_ms'] is not None else '-'} ms  "
                f"{attempt['outcome'] or 'pending'}"
            )
            if attempt["error"]:
                line += f"  error: {attempt['error']['kind']}: {attempt['error']['message']}"
            if attempt["decision"] and attempt["decision"].get("reason"):
                line += f"  ({attempt['decision']['reason']})"
            if attempt["retry_at"]:
                line += f"  retry at {_short(attempt['retry_at'])}"
            print(line)


def _rerun_links(execution: dict[str, Any]) -> str:
    """``  re-run of X`` and ``  re-run as Y, Z``, where the execution has such links."""
    links = ""
    if execution.get("rerun_of"):
        links += f"  re-run of {execution['rerun_of']}"
    if execution.get("reruns"):
        links += f"  re-run as {', '.join(execution['reruns'])}"
    return links


def _failure_table(items: list[dict[str, Any]]) -> None:
    if not items:
        print("no failed executions")
        return
    rows = [["ENDED", "TENANT", "TASK", "EXECUTION", "ATTEMPTS", "REASON", "DECISION", "ERROR"]]
    for f in items:
        error = f["error"]
        decision = f["decision"] or {}
        rows.append(
            [
                _short(f["ended_at"]),
                f["tenant_id"],
                f["task_id"],
                f["execution_id"] + (f" (re-run as {f['reruns'][-1]})" if f["reruns"] else ""),
                str(f["attempts"]),
                f["failure_reason"] or "-",
                decision.get("reason") or decision.get("source") or "-",
                f"{error['kind']}: {error['message']}" if error else "-",
            ]
        )
    _columns(rows)
