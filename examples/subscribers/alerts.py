"""A FastStream service that alerts on failed and skipped tasks of one tenant.

Each kind is read through a durable pull consumer, and a message is acknowledged only after its
alert line is written, so the service survives its own restart without missing or repeating an
event. Run it with::

    python -m examples.subscribers.alerts --tenant acme --nats-url nats://127.0.0.1:4222
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from faststream import AckPolicy, FastStream
from faststream.nats import (
    ConsumerConfig,
    DeliverPolicy,
    JStream,
    NatsBroker,
    NatsMessage,
    PullSub,
)

from contracts import (
    STREAM_NAME,
    EventDecodeError,
    EventKind,
    TaskFailed,
    TaskSkipped,
    decode_message,
    event_filters,
)

ACK_WAIT_SECONDS = 5.0


def alert_line(event: TaskFailed | TaskSkipped) -> str:
    """The alert for one event."""
    where = f"{event.tenant_id}/{event.task_id}"
    if isinstance(event, TaskFailed):
        decided = f"; {event.decision.reason}" if event.decision and event.decision.reason else ""
        return (
            f"ALERT failed {where} execution {event.execution_id} attempt {event.attempt}: "
            f"{event.error.message} ({event.reason}{decided})"
        )
    return (
        f"ALERT skipped {where} fire {event.scheduled_for.isoformat()}: {event.reason}"
        f"{' - ' + event.detail if event.detail else ''}"
    )


def build_app(nats_url: str, tenant_id: str) -> FastStream:
    """The alerting service for ``tenant_id``."""
    broker = NatsBroker(nats_url)
    stream = JStream(name=STREAM_NAME, declare=False)
    for kind, subject in zip(
        (EventKind.FAILED, EventKind.SKIPPED),
        event_filters(tenant_id, [EventKind.FAILED, EventKind.SKIPPED]),
        strict=True,
    ):

        @broker.subscriber(
            subject,
            stream=stream,
            durable=f"alerts-{tenant_id}-{kind.value}",
            deliver_policy=DeliverPolicy.ALL,
            # A message handed to a pull request of an instance that just stopped comes back
            # after the ack wait: keep it short, since an alert is written in milliseconds.
            config=ConsumerConfig(ack_wait=ACK_WAIT_SECONDS),
            pull_sub=PullSub(batch_size=16, timeout=1.0),
            ack_policy=AckPolicy.MANUAL,
        )
        async def on_event(message: NatsMessage) -> None:
            try:
                event = decode_message(message.raw_message.subject, message.body, message.headers)
            except EventDecodeError as error:
                print(
                    f"ignoring a bad message on {message.raw_message.subject}: {error}",
                    file=sys.stderr,
                    flush=True,
                )
                await message.reject()  # terminate: never redelivered
                return
            if isinstance(event, TaskFailed | TaskSkipped):
                print(alert_line(event), flush=True)
            await message.ack()

    return FastStream(broker)


def main() -> None:
    """Run the alerting service until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenant", default="default")
    parser.add_argument("--nats-url", default="nats://127.0.0.1:4222")
    args = parser.parse_args()
    asyncio.run(build_app(args.nats_url, args.tenant).run())


if __name__ == "__main__":
    main()
