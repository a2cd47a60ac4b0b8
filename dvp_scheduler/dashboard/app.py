"""The dashboard's web application: pages, the live event stream (SSE) and the actions.

`Dashboard` owns what the pages read (`_source`) and the sessions; `build_app` makes the
Starlette application; `run_dashboard` serves it with uvicorn until it is stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

import jinja2
import nats.errors
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from contracts import SchedulerError, validate_task_id, validate_tenant_id
from contracts.errors import ScheduleError
from contracts.schedule import Schedule, next_fires_in_window
from dvp_scheduler import operations
from dvp_scheduler.dashboard import tables
from dvp_scheduler.dashboard._source import (
    NO_PROJECTOR,
    Connection,
    LiveEvent,
    LiveFeed,
    TaskRows,
    skipped_fires,
)
from dvp_scheduler.dashboard.access import (
    READ_ONLY,
    Scope,
    action_allowed,
    local_path,
    new_secret,
    same_origin,
    scope_for_token,
)
from dvp_scheduler.dashboard.settings import DashboardSettings
from dvp_scheduler.dashboard.words import interval_in_words, schedule_in_words
from dvp_scheduler.durations import short_duration
from dvp_scheduler.errors import StreamMissingError
from dvp_scheduler.status import SchedulerStatus, scheduler_status
from natsio.lookup import read_task_standing
from projector.errors import QueryError
from projector.queries import ask_failures, ask_history

log = logging.getLogger("dvp_scheduler.dashboard")

_HERE: Final = Path(__file__).parent
SESSION_COOKIE: Final = "dvp_dashboard_session"
_MAX_SESSIONS: Final = 10_000
_HEARTBEAT_SECONDS: Final = 15.0
_HISTORY_LIMIT: Final = 20


@dataclass
class Session:
    """One browser's session: what it may do and the CSRF token its pages carry."""

    scope: Scope
    csrf: str


class Sessions:
    """Sessions by id, in memory (a restart signs everyone out), the oldest dropped first."""

    def __init__(self) -> None:
        self._by_id: OrderedDict[str, Session] = OrderedDict()

    def get(self, session_id: str | None) -> Session | None:
        """The session of that id, if there is one."""
        return self._by_id.get(session_id) if session_id else None

    def new(self, scope: Scope) -> tuple[str, Session]:
        """A new session (id, session) with a fresh CSRF token."""
        session_id = new_secret()
        session = Session(scope=scope, csrf=new_secret())
        self._by_id[session_id] = session
        while len(self._by_id) > _MAX_SESSIONS:
            self._by_id.popitem(last=False)
        return session_id, session

    def drop(self, session_id: str | None) -> None:
        """Sign that session out."""
        if session_id:
            self._by_id.pop(session_id, None)


class Dashboard:
    """What the pages read and who is signed in; `start` and `stop` run its background work."""

    def __init__(self, settings: DashboardSettings) -> None:
        self.settings = settings
        self.connection = Connection(settings)
        self.rows = TaskRows(self.connection, settings)
        self.feed = LiveFeed(self.connection, self._on_event)
        self.sessions = Sessions()
        self.closing = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(_HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self.templates.filters["when"] = _when
        self.templates.filters["ago"] = _ago
        self.templates.filters["duration"] = _duration
        self.templates.filters["overdue_by"] = _overdue_by

    def _on_event(self, event: LiveEvent) -> None:
        self.rows.stale()

    async def start(self) -> None:
        """Connect (in the background, until it works) and follow the stream."""
        self._tasks = [
            asyncio.create_task(self._connect_then_follow(), name="dashboard-feed"),
        ]

    async def _connect_then_follow(self) -> None:
        await self.connection.keep_connected()
        await self.feed.run()

    async def stop(self) -> None:
        """End the live streams, the feed and the connection."""
        self.closing.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(nats.errors.Error, OSError):
            await self.connection.client.close()

    def scope_of(self, request: Request) -> tuple[Scope | None, Session | None]:
        """The request's session and scope; a read-only scope without a session, or no scope
        at all when a token is required to read."""
        session = self.sessions.get(request.cookies.get(SESSION_COOKIE))
        if session is not None:
            return session.scope, session
        return (None if self.settings.require_token else READ_ONLY), None

    def tenant_tokens(self) -> dict[str, str]:
        """The tenant tokens in the clear."""
        return {t: s.get_secret_value() for t, s in self.settings.tenant_tokens.items()}

    def operator_token(self) -> str | None:
        """The operator token in the clear, if one is set."""
        return self.settings.token.get_secret_value() if self.settings.token else None

    def can_sign_in(self) -> bool:
        """Whether any token is configured (else there is nothing to sign in with)."""
        return bool(self.settings.token or self.settings.tenant_tokens)


# ---------------------------------------------------------------------------------------------
# formatting helpers for the templates


def _when(value: str | datetime | None, zone: str | None = None) -> str:
    """``2026-11-24 03:00:00 UTC``, or in ``zone`` when given; ``-`` for none."""
    if value is None or value == "":
        return "-"
    instant = datetime.fromisoformat(value) if isinstance(value, str) else value
    if zone:
        local = instant.astimezone(ZoneInfo(zone))
        return f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()}"
    return f"{instant.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def _ago(value: str | datetime | None) -> str:
    """``3m12s ago`` or ``in 42s``."""
    if value is None or value == "":
        return ""
    instant = datetime.fromisoformat(value) if isinstance(value, str) else value
    seconds = (datetime.now(UTC) - instant).total_seconds()
    text = short_duration(abs(seconds))
    return f"{text} ago" if seconds >= 0 else f"in {text}"


def _overdue_by(row: dict[str, Any]) -> str:
    """How late an overdue task is (``3m12s``); empty when it is not overdue."""
    late = tables.lateness(row, datetime.now(UTC))
    return "" if late is None else short_duration(late)


def _duration(ms: float | None) -> str:
    """``850 ms`` under a second, else as `short_duration` writes it."""
    if ms is None:
        return "-"
    return f"{ms:.0f} ms" if ms < 1000 else short_duration(ms / 1000)


# ---------------------------------------------------------------------------------------------
# pages


Handler = Callable[[Request], Awaitable[Response]]


def build_app(dashboard: Dashboard) -> Starlette:
    """The Starlette application serving ``dashboard``."""

    def render(
        request: Request,
        template: str,
        session: Session | None,
        scope: Scope,
        status_code: int = 200,
        **context: Any,
    ) -> Response:
        """A page, with a session cookie (an anonymous, read-only one if there is none), so
        that every page carries a CSRF token."""
        cookie: str | None = None
        if session is None:
            cookie, session = dashboard.sessions.new(scope)
        body = dashboard.templates.get_template(template).render(
            request=request,
            scope=scope,
            csrf=session.csrf,
            can_sign_in=dashboard.can_sign_in(),
            connection=dashboard.connection,
            nav=template.removesuffix(".html"),
            **context,
        )
        response = HTMLResponse(body, status_code=status_code)
        if cookie is not None:
            _set_session_cookie(response, cookie)
        return response

    def page(
        handler: Callable[[Request, Scope, Session | None], Awaitable[Response]],
    ) -> Handler:
        async def wrapped(request: Request) -> Response:
            scope, session = dashboard.scope_of(request)
            if scope is None:
                return render(request, "signin.html", session, READ_ONLY, status_code=401)
            return await handler(request, scope, session)

        return wrapped

    async def overview(request: Request, scope: Scope, session: Session | None) -> Response:
        context = await overview_context(scope)
        template = "overview_part.html" if request.query_params.get("part") else "overview.html"
        return render(request, template, session, scope, **context)

    async def overview_context(scope: Scope) -> dict[str, Any]:
        snapshot = await dashboard.rows.get()
        status: SchedulerStatus | None = None
        stream_problem = ""
        if dashboard.connection.connected:
            try:
                status = await scheduler_status(
                    dashboard.connection.client,
                    where=dashboard.connection.url,
                    answer_within=dashboard.settings.query_timeout_seconds,
                )
            except StreamMissingError as error:
                stream_problem = str(error)
            except (nats.errors.Error, OSError) as error:
                stream_problem = f"could not read the stream's status: {error}"
        now = datetime.now(UTC)
        hour = dashboard.feed.hour
        hour.forget_before(now - timedelta(hours=1))
        return {
            "snapshot": snapshot,
            "no_projector": NO_PROJECTOR,
            "counts": tables.status_counts(snapshot.rows, scope),
            "total": sum(1 for r in snapshot.rows if scope.sees(r["tenant_id"])),
            "chart": tables.hour_chart(hour.minutes, now),
            "status": status,
            "queues": [q for q in (status.queues if status else []) if scope.sees(q.tenant_id)],
            "stream_problem": stream_problem,
            "failing": tables.most_failing(snapshot.rows, scope),
            "overdue": tables.overdue(snapshot.rows, scope, now),
            "slowest": hour.slowest(scope),
        }

    async def tasks_page(request: Request, scope: Scope, session: Session | None) -> Response:
        snapshot = await dashboard.rows.get()
        wanted = tables.task_filter(dict(request.query_params))
        found = tables.page_of(snapshot.rows, scope, wanted)
        tenants, plugins = tables.choices(snapshot.rows, scope)
        strips = await _strips(dashboard, found.rows)
        return render(
            request,
            "tasks.html",
            session,
            scope,
            snapshot=snapshot,
            no_projector=NO_PROJECTOR,
            page=found,
            wanted=wanted,
            tenants=tenants,
            plugins=plugins,
            statuses=tables.STATUSES,
            strips=strips,
            words=_schedule_words,
        )

    async def task_page(request: Request, scope: Scope, session: Session | None) -> Response:
        tenant_id = request.path_params["tenant"]
        task_id = request.path_params["task_id"]
        try:
            validate_tenant_id(tenant_id)
            validate_task_id(task_id)
        except SchedulerError:
            return render(request, "missing.html", session, scope, status_code=404, what=task_id)
        if not scope.sees(tenant_id):
            return render(request, "missing.html", session, scope, status_code=404, what=task_id)
        try:
            after = int(request.query_params.get("after", "0"))
        except ValueError:
            after = 0
        context = await task_context(tenant_id, task_id, after)
        if context is None:
            return render(request, "missing.html", session, scope, status_code=404, what=task_id)
        template = "task_part.html" if request.query_params.get("part") else "task.html"
        return render(request, template, session, scope, **context)

    async def task_context(tenant_id: str, task_id: str, after: int) -> dict[str, Any] | None:
        snapshot = await dashboard.rows.get(at_least=after)
        row = next(
            (r for r in snapshot.rows if r["tenant_id"] == tenant_id and r["task_id"] == task_id),
            None,
        )
        nc = dashboard.connection.client
        registration = None
        history: list[dict[str, Any]] = []
        skipped: list[dict[str, Any]] = []
        if dashboard.connection.connected:
            standing = await read_task_standing(nc.jetstream(), tenant_id, task_id)
            registration = standing.registration
            if snapshot.projector:
                with contextlib.suppress(QueryError):
                    history = (
                        await ask_history(
                            nc,
                            task_id,
                            tenant_id=tenant_id,
                            limit=_HISTORY_LIMIT,
                            answer_within=dashboard.settings.query_timeout_seconds,
                        )
                        or []
                    )
            skipped = await skipped_fires(nc, tenant_id, task_id)
        if row is None and registration is None:
            return None
        fires: list[tuple[datetime, datetime]] = []
        words = ""
        zone = "UTC"
        if registration is not None:
            schedule = registration.spec.schedule
            zone = schedule.timezone or "UTC"
            words = schedule_in_words(schedule)
            with contextlib.suppress(ScheduleError, ValueError):
                now = datetime.now(UTC)
                upcoming = next_fires_in_window(schedule, now, 10)
                fires = [(f.astimezone(ZoneInfo(zone)), f) for f in upcoming]
        return {
            "tenant_id": tenant_id,
            "task_id": task_id,
            "row": row,
            "registration": registration,
            "words": words,
            "zone": zone,
            "fires": fires,
            "history": history,
            "skipped": skipped,
            "snapshot": snapshot,
            "no_projector": NO_PROJECTOR,
            "strip": tables.outcome_strip(history),
        }

    async def failures_page(request: Request, scope: Scope, session: Session | None) -> Response:
        snapshot = await dashboard.rows.get()
        items: list[dict[str, Any]] = []
        tenant_id = scope.tenant_id or request.query_params.get("tenant") or None
        if snapshot.projector and dashboard.connection.connected:
            items = (
                await ask_failures(
                    dashboard.connection.client,
                    tenant_id=tenant_id,
                    limit=100,
                    answer_within=dashboard.settings.query_timeout_seconds,
                )
                or []
            )
        return render(
            request,
            "failures.html",
            session,
            scope,
            snapshot=snapshot,
            no_projector=NO_PROJECTOR,
            failures=items,
            tenant=tenant_id or "",
        )

    async def live_page(request: Request, scope: Scope, session: Session | None) -> Response:
        recent = [e for e in reversed(dashboard.feed.recent) if scope.sees(e.tenant_id)][:200]
        return render(
            request,
            "live.html",
            session,
            scope,
            recent=recent,
            stream_missing=dashboard.feed.stream_missing,
        )

    async def events(request: Request) -> Response:
        scope, _ = dashboard.scope_of(request)
        if scope is None:
            return JSONResponse({"error": "sign in first"}, status_code=401)
        return StreamingResponse(
            _event_stream(dashboard, scope),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def health(request: Request) -> Response:
        snapshot = await dashboard.rows.get()
        return JSONResponse(
            {
                "nats": dashboard.connection.connected,
                "problem": dashboard.connection.problem,
                "projector": snapshot.projector,
                "feed_sequence": dashboard.feed.sequence,
            }
        )

    async def sign_in(request: Request) -> Response:
        if not same_origin(
            request.headers.get("origin"), request.headers.get("referer"), request.url.netloc
        ):
            return Response("refused: the request does not come from this dashboard", 403)
        # A two-field urlencoded form: parsed here rather than adding python-multipart.
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        token = form.get("token", "")
        scope = scope_for_token(token, dashboard.operator_token(), dashboard.tenant_tokens())
        if scope is None:
            _, session = dashboard.scope_of(request)
            return render(
                request,
                "signin.html",
                session,
                READ_ONLY,
                status_code=401,
                problem="That token is not known here.",
            )
        dashboard.sessions.drop(request.cookies.get(SESSION_COOKIE))
        session_id, _session = dashboard.sessions.new(scope)
        response = RedirectResponse(local_path(form.get("next", "/")), status_code=303)
        _set_session_cookie(response, session_id)
        return response

    async def sign_out(request: Request) -> Response:
        if not same_origin(
            request.headers.get("origin"), request.headers.get("referer"), request.url.netloc
        ):
            return Response("refused: the request does not come from this dashboard", 403)
        dashboard.sessions.drop(request.cookies.get(SESSION_COOKIE))
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    async def act(request: Request) -> Response:
        action = request.path_params["action"]
        on_execution = "execution_id" in request.path_params
        if action not in _ACTIONS or (action == "rerun") != on_execution:
            return JSONResponse({"ok": False, "message": "no such action"}, status_code=404)
        scope, session = dashboard.scope_of(request)
        try:
            body = await request.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        if action == "rerun":
            tenant_id = str(body.get("tenant_id", ""))
        else:
            tenant_id = request.path_params.get("tenant", "")
        why_not = action_allowed(
            scope or READ_ONLY,
            tenant_id,
            session_csrf=session.csrf if session else None,
            sent_csrf=request.headers.get("x-csrf-token"),
            origin=request.headers.get("origin"),
            referer=request.headers.get("referer"),
            host=request.url.netloc,
        )
        if why_not is not None or scope is None:
            return JSONResponse({"ok": False, "message": why_not}, status_code=403)
        if not dashboard.connection.connected:
            return JSONResponse(
                {"ok": False, "message": dashboard.connection.problem}, status_code=503
            )
        nc = dashboard.connection.client
        actor = f"{await operations.operator_actor(nc)} via the dashboard ({scope.label})"
        force = bool(body.get("force"))
        note = str(body.get("note", ""))[:500]
        try:
            validate_tenant_id(tenant_id)
            if action == "rerun":
                message = await operations.rerun(
                    nc,
                    request.path_params["execution_id"],
                    tenant_id,
                    actor=actor,
                    again=bool(body.get("again")),
                    force=force,
                )
            else:
                task_id = validate_task_id(request.path_params["task_id"])
                if action == "trigger":
                    message = await operations.trigger(
                        nc, tenant_id, task_id, actor=actor, force=force
                    )
                elif action == "pause":
                    message = await operations.pause(nc, tenant_id, task_id, note=note, actor=actor)
                else:
                    message = await operations.resume(
                        nc, tenant_id, task_id, note=note, actor=actor
                    )
        except SchedulerError as error:
            return JSONResponse({"ok": False, "message": str(error)}, status_code=409)
        log.info("%s: %s", actor, message)
        return JSONResponse({"ok": True, "message": message})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await dashboard.start()
        try:
            yield
        finally:
            await dashboard.stop()

    routes = [
        Route("/", page(overview)),
        Route("/tasks", page(tasks_page)),
        Route("/tasks/{tenant}/{task_id}", page(task_page)),
        Route("/failures", page(failures_page)),
        Route("/live", page(live_page)),
        Route("/events", events),
        Route("/health", health),
        Route("/signin", sign_in, methods=["POST"]),
        Route("/signout", sign_out, methods=["POST"]),
        Route("/actions/tasks/{tenant}/{task_id}/{action:str}", act, methods=["POST"]),
        Route("/actions/executions/{execution_id}/{action:str}", act, methods=["POST"]),
        Mount("/static", StaticFiles(directory=_HERE / "static"), name="static"),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


_ACTIONS: Final = frozenset({"trigger", "pause", "resume", "rerun"})


def _set_session_cookie(response: Response, session_id: str) -> None:
    response.set_cookie(SESSION_COOKIE, session_id, httponly=True, samesite="strict", path="/")


def _schedule_words(row: dict[str, Any]) -> str:
    """The tasks table's schedule column: the registered schedule in words where the row's
    text allows, else the row's own text."""
    text: str = row.get("schedule") or "-"
    if text.startswith("cron '") and text.count("'") >= 2:
        expression = text.split("'")[1]
        zone = row.get("timezone") or "UTC"
        with contextlib.suppress(ScheduleError, ValueError):
            return schedule_in_words(Schedule(cron_expression=expression, timezone=zone))
    elif text.startswith("every ") and text.endswith("s") and text[6:-1].isdigit():
        return interval_in_words(int(text[6:-1]))
    return text


async def _strips(dashboard: Dashboard, rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    """The last 20 outcomes of each task on the page, asked of the projector at once."""
    if not rows or not dashboard.connection.connected:
        return {}
    nc = dashboard.connection.client

    async def one(row: dict[str, Any]) -> tuple[str, list[str]]:
        key = f"{row['tenant_id']}/{row['task_id']}"
        if not (row["succeeded"] or row["failed"] or row["retried"] or row["status"] != "idle"):
            return key, []  # never ran: nothing to ask
        try:
            items = await ask_history(
                nc,
                row["task_id"],
                tenant_id=row["tenant_id"],
                limit=20,
                answer_within=dashboard.settings.query_timeout_seconds,
            )
        except QueryError:
            items = None
        return key, tables.outcome_strip(items or [])

    return dict(await asyncio.gather(*(one(row) for row in rows)))


async def _event_stream(dashboard: Dashboard, scope: Scope) -> AsyncIterator[str]:
    """Server-Sent Events: ``event`` for each new event the scope sees, ``status`` whenever
    the connection to NATS changes, a comment now and then to keep proxies from closing it."""
    queue: asyncio.Queue[LiveEvent] = asyncio.Queue(maxsize=1000)
    dashboard.feed.listeners.add(queue)
    connection = dashboard.connection
    try:
        yield "retry: 2000\n\n"
        yield _sse("status", {"nats": connection.connected, "problem": connection.problem})
        last_beat = time.monotonic()
        while not dashboard.closing.is_set():
            changed = connection.changed
            get = asyncio.ensure_future(queue.get())
            wait_change = asyncio.ensure_future(changed.wait())
            closing = asyncio.ensure_future(dashboard.closing.wait())
            done, pending = await asyncio.wait(
                {get, wait_change, closing},
                timeout=_HEARTBEAT_SECONDS,
                return_when=asyncio.FIRST_COMPLETED,
            )
            for task in pending:
                task.cancel()
            if get in done:
                event = get.result()
                if scope.sees(event.tenant_id):
                    yield _sse("event", event.as_json())
            if wait_change in done:
                yield _sse("status", {"nats": connection.connected, "problem": connection.problem})
            if time.monotonic() - last_beat >= _HEARTBEAT_SECONDS:
                last_beat = time.monotonic()
                yield ": still here\n\n"
    finally:
        dashboard.feed.listeners.discard(queue)


def _sse(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


class _Server(uvicorn.Server):
    """uvicorn's server, leaving signals to the caller (uvicorn's own handling raises the
    signal again after its shutdown, so the process would end by it instead of exiting 0)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def run_dashboard(
    settings: DashboardSettings,
    *,
    on_ready: Callable[[str], object] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve the dashboard until ``stop`` is set (or SIGINT/SIGTERM when none is given);
    ``on_ready`` hears its URL once it listens."""
    dashboard = Dashboard(settings)
    app = build_app(dashboard)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=2,
        access_log=False,
    )
    server = _Server(config)
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM) if stop is None else ()
    stop = stop or asyncio.Event()
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if serving.done():
                await serving  # it failed to start: raise why
                raise OSError(f"the dashboard could not listen on {settings.host}:{settings.port}")
            await asyncio.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1] if server.servers else settings.port
        if on_ready is not None:
            on_ready(f"http://{settings.host}:{port}/")
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        dashboard.closing.set()  # ends the live streams, so that no connection holds it up
        server.should_exit = True
        await serving
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
