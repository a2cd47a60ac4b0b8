"""The NATS permissions each role needs, and nothing more: pure data, no I/O.

A tenant's roles (executor, operator, subscriber) get grants that name the tenant in every
subject: its event subjects by kind, consumers by their fixed names with the filter in the API
subject (which the server checks against the request), direct gets by subject, and replies on
an inbox prefix of their own. So a tenant's user cannot read, list, pull or write another
tenant's messages; and since every reader checks a body against its subject, whatever it may
publish can only speak of its own tenant. The ticker and the projector serve every tenant;
``admin`` (for ``init``) may do anything.

Why some grants are shaped as they are:

* Consumer names are never wildcards: a grant ``CONSUMER.CREATE.<stream>.*.<filter>`` would let
  the user update any consumer, e.g. re-point another tenant's work queue at its own subjects.
* No tenant role may ask for the stream's info (it lists every subject on request) or get a
  message by sequence (``$JS.API.DIRECT.GET.<stream>`` with a body): both cross tenants.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, get_args

from contracts.identifiers import validate_tenant_id
from contracts.queries import CHECKPOINT_BUCKET, QUERY_PREFIX, TASK_STATE_BUCKET
from contracts.stream import (
    STREAM_NAME,
    executor_durable,
    task_listing_consumer,
)
from contracts.subjects import PREFIX, EventKind, subject_filter

Role = Literal["executor", "operator", "subscriber", "ticker", "projector", "admin"]
"""Who connects: a tenant's executor, operator or read-only subscriber, or a service of all."""

ROLES: Final[tuple[Role, ...]] = get_args(Role)
TENANT_ROLES: Final[frozenset[Role]] = frozenset({"executor", "operator", "subscriber"})
"""The roles that act for one tenant (``--tenant`` is required for them)."""

ROLE_SUMMARIES: Final[dict[Role, str]] = {
    "executor": "runs one tenant's plugins: takes its TaskDue, records attempts and outcomes, "
    "registers its tasks",
    "operator": "pauses, resumes, triggers, re-runs and cancels one tenant's tasks; reads its "
    "subjects",
    "subscriber": "reads one tenant's events through one durable consumer",
    "ticker": "fires every tenant's schedules and retries",
    "projector": "reads every tenant's events and answers the queries",
    "admin": "everything (dvp-scheduler init)",
}

_API: Final = "$JS.API"
_OUTCOME_KINDS: Final = (EventKind.SUCCEEDED, EventKind.RETRY, EventKind.FAILED)


@dataclass(frozen=True)
class RolePermissions:
    """What one user of ``role`` (for ``tenant_id``) may publish and subscribe to."""

    role: Role
    tenant_id: str | None
    user: str
    """The user name suggested for it (``dvp-executor-acme``)."""
    inbox_prefix: str
    """What its clients must be given as the inbox prefix (``--nats-inbox-prefix``)."""
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    allow_responses: bool = False
    """Whether it answers requests (the projector's queries)."""


def user_name(role: Role, tenant_id: str | None = None) -> str:
    """The user name suggested for ``role`` (``dvp-executor-acme``, ``dvp-ticker``)."""
    return f"dvp-{role}" if tenant_id is None else f"dvp-{role}-{tenant_id}"


def role_permissions(
    role: Role, tenant_id: str | None = None, *, consumer: str | None = None
) -> RolePermissions:
    """The permissions of ``role``; ``tenant_id`` for the tenant roles, ``consumer`` names the
    subscriber's durable consumer (default ``dvp-subscriber-<tenant>``).

    Raises ``ValueError`` naming the fix when a tenant is missing or not allowed.
    """
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; the roles are: {', '.join(ROLES)}")
    if role in TENANT_ROLES:
        if tenant_id is None:
            raise ValueError(f"the {role} role acts for one tenant: give --tenant")
        validate_tenant_id(tenant_id)
    elif tenant_id is not None:
        raise ValueError(f"the {role} role serves every tenant: leave --tenant out")
    if consumer is not None and role != "subscriber":
        raise ValueError("--consumer applies to the subscriber role only")
    user = user_name(role, tenant_id)
    inbox = f"_INBOX.{user}"
    publish: list[str]
    subscribe = [f"{inbox}.>"]
    allow_responses = False
    if role == "admin":
        publish, subscribe = [">"], [">"]
        inbox = "_INBOX"
    elif role == "executor":
        assert tenant_id is not None
        publish = [
            *(subject_filter(tenant_id, kind) for kind in _EXECUTOR_KINDS),
            *_work_queue(tenant_id),
            *_named_consumer(
                task_listing_consumer(tenant_id),
                subject_filter(tenant_id, EventKind.REGISTERED),
                pull=False,
            ),
            *_reads(tenant_id),
        ]
        # Cancel requests are heard as they are published (a core subscription), by every
        # executor of the tenant.
        subscribe.append(subject_filter(tenant_id, EventKind.CANCEL))
    elif role == "operator":
        assert tenant_id is not None
        publish = [
            *(subject_filter(tenant_id, kind) for kind in _OPERATOR_KINDS),
            *_work_queue(tenant_id),
            *_reads(tenant_id),
            "$SYS.REQ.USER.INFO",
        ]
    elif role == "subscriber":
        assert tenant_id is not None
        name = consumer or f"dvp-subscriber-{tenant_id}"
        publish = [
            *_named_consumer(name, _everything_of(tenant_id), pull=True),
            *_reads(tenant_id),
            f"{_API}.DIRECT.GET.KV_{TASK_STATE_BUCKET}.$KV.{TASK_STATE_BUCKET}.{tenant_id}.>",
        ]
    elif role == "ticker":
        publish = [
            *(subject_filter(None, kind) for kind in _TICKER_KINDS),
            *_all_stream_reads(),
        ]
    else:  # projector
        publish = [*_all_stream_reads(), f"$KV.{TASK_STATE_BUCKET}.>", f"$O.{CHECKPOINT_BUCKET}.>"]
        for bucket in (f"KV_{TASK_STATE_BUCKET}", f"OBJ_{CHECKPOINT_BUCKET}"):
            publish += [
                f"{_API}.STREAM.*.{bucket}",  # create, info, update, purge
                f"{_API}.STREAM.MSG.*.{bucket}",
                *_all_stream_reads(bucket)[1:],
            ]
        subscribe = [*subscribe, f"{QUERY_PREFIX}.>", "$SRV.>"]
        allow_responses = True
    return RolePermissions(
        role=role,
        tenant_id=tenant_id,
        user=user,
        inbox_prefix=inbox,
        publish=tuple(dict.fromkeys(publish)),
        subscribe=tuple(dict.fromkeys(subscribe)),
        allow_responses=allow_responses,
    )


_EXECUTOR_KINDS: Final = (
    EventKind.REGISTERED,
    EventKind.UNREGISTERED,
    EventKind.STARTED,
    *_OUTCOME_KINDS,
)
_OPERATOR_KINDS: Final = (
    EventKind.PAUSED,
    EventKind.RESUMED,
    EventKind.DUE,
    EventKind.CANCEL,
    EventKind.SCHEDULED,
)
_TICKER_KINDS: Final = (EventKind.DUE, EventKind.SKIPPED, EventKind.SCHEDULED, *_OUTCOME_KINDS)
"""The ticker records fires and skips, takes a one-off run that fired off its task's list, and
closes a lost attempt (or a cancelled retry) with its outcome."""


def _named_consumer(name: str, filter_subject: str, *, pull: bool) -> list[str]:
    """Create (only with this filter), read the info of, delete, pull from and acknowledge
    the consumer ``name``."""
    grants = [
        f"{_API}.CONSUMER.CREATE.{STREAM_NAME}.{name}.{filter_subject}",
        f"{_API}.CONSUMER.INFO.{STREAM_NAME}.{name}",
        f"{_API}.CONSUMER.DELETE.{STREAM_NAME}.{name}",
    ]
    if pull:
        grants += [
            f"{_API}.CONSUMER.MSG.NEXT.{STREAM_NAME}.{name}",
            f"$JS.ACK.{STREAM_NAME}.{name}.>",
        ]
    return grants


def _work_queue(tenant_id: str) -> list[str]:
    """The tenant's executor consumer: made by whoever needs it first, pulled by executors."""
    name = executor_durable(tenant_id)
    return [
        f"{_API}.CONSUMER.CREATE.{STREAM_NAME}.{name}.{subject_filter(tenant_id, EventKind.DUE)}",
        f"{_API}.CONSUMER.INFO.{STREAM_NAME}.{name}",
        f"{_API}.CONSUMER.MSG.NEXT.{STREAM_NAME}.{name}",
        f"$JS.ACK.{STREAM_NAME}.{name}.>",
    ]


def _reads(tenant_id: str) -> list[str]:
    """The last message of any of the tenant's subjects (the subject travels in the API
    subject; the server refuses such a request with a body, so no sequence can be asked)."""
    return [f"{_API}.DIRECT.GET.{STREAM_NAME}.{_everything_of(tenant_id)}"]


def _everything_of(tenant_id: str) -> str:
    """Every subject of the tenant; as the last tokens of an API subject it also matches a
    narrower filter (``dvp.tasks.acme.failed.>``)."""
    return f"{PREFIX}.{tenant_id}.>"


def _all_stream_reads(stream: str = STREAM_NAME) -> list[str]:
    """Everything that reads ``stream``: its info, consumers of any name, gets, acks."""
    return [
        f"{_API}.INFO",
        f"{_API}.STREAM.INFO.{stream}",
        f"{_API}.CONSUMER.*.{stream}",
        f"{_API}.CONSUMER.*.{stream}.>",
        f"{_API}.CONSUMER.*.*.{stream}.>",  # DURABLE.CREATE, MSG.NEXT
        f"{_API}.DIRECT.GET.{stream}",
        f"{_API}.DIRECT.GET.{stream}.>",
        f"{_API}.STREAM.MSG.GET.{stream}",
        f"$JS.ACK.{stream}.>",
        f"$JS.FC.{stream}.>",
    ]


def nats_conf_user(permissions: RolePermissions, password: str) -> str:
    """One entry of a nats-server ``authorization { users = [...] }`` list."""

    def quoted(subjects: tuple[str, ...]) -> str:
        return ", ".join(f'"{s}"' for s in subjects)

    lines = [
        f"# {permissions.role}"
        + (f" of tenant {permissions.tenant_id}" if permissions.tenant_id else "")
        + f": {ROLE_SUMMARIES[permissions.role]}",
        f"# connect with --nats-user {permissions.user} "
        f"--nats-inbox-prefix {permissions.inbox_prefix}",
        "{",
        f'  user: "{permissions.user}", password: "{password}"',
        "  permissions: {",
        f"    publish: {{ allow: [{quoted(permissions.publish)}] }}",
        f"    subscribe: {{ allow: [{quoted(permissions.subscribe)}] }}",
    ]
    if permissions.allow_responses:
        lines.append("    allow_responses: true")
    lines += ["  }", "}"]
    return "\n".join(lines)


def nsc_command(permissions: RolePermissions) -> str:
    """The ``nsc add user`` command that gives a user of an operator-mode account the role."""
    parts = ["nsc add user", permissions.user]
    parts += [f"--allow-pub '{s}'" for s in permissions.publish]
    parts += [f"--allow-sub '{s}'" for s in permissions.subscribe]
    if permissions.allow_responses:
        parts.append("--allow-pub-response")
    return " \\\n  ".join(parts)
