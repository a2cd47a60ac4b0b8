"""Listing the subjects under one filter, with grants that stay inside that filter.

The stream's info can list subjects too, but the filter travels in the request's body, so a
user allowed to ask for it can list every tenant's subjects. Here the filter is part of the
API subject (``$JS.API.CONSUMER.CREATE.<stream>.<name>.<filter>``, which the server checks
against the body), so a grant on that subject lets a user list only what it may read.

The consumer has a fixed name, so that the grant can name it: a grant with a wildcard name
would let the user re-point any other consumer, such as another tenant's work queue. Two
listers of one name take turns: the consumer is created with the ``create`` action (refused
while it exists), read headers-only, and deleted; one left behind by a lister that died is
removed by the server after `LISTING_IDLE_SECONDS`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Final

from nats.aio.client import Client
from nats.aio.msg import Msg

from contracts.stream import STREAM_NAME

log = logging.getLogger("dvp_scheduler.natsio")

LISTING_IDLE_SECONDS: Final = 10.0
"""A listing consumer nobody reads is removed by the server after this long."""

_CONSUMER_EXISTS: Final = 10148
_REQUEST_SECONDS: Final = 5.0
_TURN_WAIT_SECONDS: Final = 0.25


class ListingError(Exception):
    """The server refused to list (other than "another lister has the consumer")."""


async def list_subjects(
    nc: Client, consumer: str, filter_subject: str, *, patience: float = 30.0
) -> list[str]:
    """Every subject under ``filter_subject`` that holds a message, through the listing
    consumer ``consumer``; waits up to ``patience`` seconds for another lister's turn."""
    inbox = nc.new_inbox()
    subjects: list[str] = []
    done = asyncio.Event()
    expected = -1  # until the consumer says how many subjects it holds

    async def on_message(msg: Msg) -> None:
        subjects.append(msg.subject)
        if 0 <= expected <= len(subjects):
            done.set()

    subscription = await nc.subscribe(inbox, cb=on_message)
    try:
        expected = await _create(nc, consumer, filter_subject, inbox, patience)
        if len(subjects) >= expected:
            return subjects
        try:
            await asyncio.wait_for(done.wait(), _REQUEST_SECONDS + expected / 1000)
        except TimeoutError:
            raise ListingError(
                f"listing {filter_subject} stopped after {len(subjects)} of {expected} subjects"
            ) from None
        return subjects
    finally:
        await subscription.unsubscribe()
        await _delete(nc, consumer)


async def _create(
    nc: Client, consumer: str, filter_subject: str, inbox: str, patience: float
) -> int:
    """Create the listing consumer (waiting for its turn); return how many subjects it holds."""
    body = json.dumps(
        {
            "stream_name": STREAM_NAME,
            "action": "create",
            "config": {
                "name": consumer,
                "filter_subject": filter_subject,
                "deliver_subject": inbox,
                "deliver_policy": "last_per_subject",
                "ack_policy": "none",
                "headers_only": True,
                "mem_storage": True,
                "num_replicas": 1,
                "inactive_threshold": int(LISTING_IDLE_SECONDS * 1e9),
            },
        }
    ).encode()
    api = f"$JS.API.CONSUMER.CREATE.{STREAM_NAME}.{consumer}.{filter_subject}"
    deadline = asyncio.get_running_loop().time() + patience
    while True:
        reply = await nc.request(api, body, timeout=_REQUEST_SECONDS)
        answer = json.loads(reply.data)
        error = answer.get("error")
        if error is None:
            return int(answer.get("num_pending", 0))
        if error.get("err_code") != _CONSUMER_EXISTS:
            raise ListingError(f"cannot list {filter_subject}: {error.get('description')}")
        if asyncio.get_running_loop().time() > deadline:
            raise ListingError(
                f"cannot list {filter_subject}: the listing consumer {consumer!r} stayed busy "
                f"for {patience:g}s"
            )
        await asyncio.sleep(_TURN_WAIT_SECONDS)


async def _delete(nc: Client, consumer: str) -> None:
    try:
        await nc.jetstream(timeout=_REQUEST_SECONDS).delete_consumer(STREAM_NAME, consumer)
    except Exception as error:  # the server removes it after LISTING_IDLE_SECONDS anyway
        log.debug("deleting the listing consumer %s failed: %s", consumer, error)
