"""Pulling from a durable consumer without waiting on each message.

nats-py's ``fetch`` waits for a whole batch, one ``next_msg`` (and one timer) per message, and
nothing of the batch runs before the last one arrives. `PullFeed` keeps pull requests open on
the consumer instead, one inbox subscription receives what they deliver, and each message is
handed over the moment it arrives. It counts the messages requested and not yet delivered, so
that the executor never asks for more than it has free slots: a delivered message takes one,
and a request that ends (status ``408`` when it expires, ``409`` and others when the server
ends it) gives back what it did not deliver, as the ``Nats-Pending-Messages`` header says.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

log = logging.getLogger("dvp_scheduler.natsio")

_STATUS: Final = "Status"
_DESCRIPTION: Final = "Description"
_PENDING_MESSAGES: Final = "Nats-Pending-Messages"
_REQUEST_TIMEOUT: Final = "408"
_NO_MESSAGES: Final = "404"
_HEARTBEAT: Final = "100"
_LATE_STATUS_SECONDS: Final = 2.0
"""How long after its expiry a request is still counted, in case its status comes late."""


class PullFeed:
    """Open pull requests on one durable consumer, delivering each message as it arrives.

    Args:
        nc: the connection.
        stream: the stream's name.
        durable: the durable consumer's name.
        accept: called with each delivered message; returns ``False`` when it cannot take it
            (no free slot, or stopping), and the message is then given back (``nak``).
        changed: called when requests end, so that the owner may pull again.
        expires: how long one pull request waits on the server for messages.
    """

    def __init__(
        self,
        nc: Client,
        stream: str,
        durable: str,
        *,
        accept: Callable[[Msg], bool],
        changed: Callable[[], None],
        expires: float,
    ) -> None:
        self._nc = nc
        self.durable = durable
        """The consumer's name."""
        self._api_subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._accept = accept
        self._changed = changed
        self._expires = expires
        self._prefix = ""
        self._sub: Subscription | None = None
        self._next_token = 0
        self._open: dict[str, list[float]] = {}
        """Requests not known to have ended, oldest first: reply token → [counted until,
        messages not yet delivered]. The server serves waiting requests in order, so each
        delivery is put to the oldest; the status that ends a request says exactly."""
        self._outstanding = 0
        self.problem: str | None = None
        """Why the last request was refused by the server (consumer gone, ...), until read."""

    @property
    def outstanding(self) -> int:
        """Messages requested and not yet delivered (an upper bound)."""
        if not self._open:
            self._outstanding = 0
            return 0
        now = time.monotonic()
        stale = False
        while self._open:  # all expire alike, so the stale ones are the oldest
            token, (until, _) = next(iter(self._open.items()))
            if until >= now:
                break
            del self._open[token]
            stale = True
        if stale:
            self._clamp()
        return self._outstanding

    async def start(self) -> None:
        """Subscribe the inbox the requests deliver to."""
        self._prefix = self._nc.new_inbox() + "."
        self._sub = await self._nc.subscribe(self._prefix + "*", cb=self._on_message)

    async def request(self, batch: int) -> None:
        """Ask the consumer for up to ``batch`` more messages."""
        self._next_token += 1
        token = str(self._next_token)
        self._open[token] = [time.monotonic() + self._expires + _LATE_STATUS_SECONDS, batch]
        self._outstanding += batch
        body = msgspec.json.encode({"batch": batch, "expires": int(self._expires * 1e9)})
        try:
            await self._nc.publish(self._api_subject, body, reply=self._prefix + token)
        except BaseException:
            self._forget(token, batch)
            raise

    def reset(self) -> None:
        """Forget every open request (after a reconnect the server may have lost them)."""
        self._open.clear()
        self._outstanding = 0

    async def close(self) -> None:
        """Stop receiving: the server drops the requests of an inbox nobody listens to, and
        what already arrived is still handed to ``accept`` (which gives it back)."""
        sub, self._sub = self._sub, None
        self.reset()
        if sub is None:
            return
        try:
            await sub.drain()  # type: ignore[no-untyped-call]  # untyped in nats-py
        except Exception as error:
            log.debug("closing the pull subscription: %s", error)

    async def _on_message(self, msg: Msg) -> None:
        headers = msg.headers
        if headers is not None and not msg.data and _STATUS in headers:
            self._on_status(msg.subject, headers)
            return
        if self._outstanding > 0:
            self._outstanding -= 1
        if self._open:
            token = next(iter(self._open))
            entry = self._open[token]
            entry[1] -= 1
            if entry[1] <= 0:
                del self._open[token]
        if not self._accept(msg):
            try:
                await msg.nak()
            except Exception as error:
                log.debug("giving a message back failed: %s", error)

    def _on_status(self, subject: str, headers: dict[str, str]) -> None:
        status = headers[_STATUS]
        if status == _HEARTBEAT:
            return
        token = subject[len(self._prefix) :]
        entry = self._open.pop(token, None)
        pending = headers.get(_PENDING_MESSAGES)
        if pending is not None and pending.isdigit():
            self._forget(None, int(pending))
        elif entry is not None:
            self._forget(None, int(entry[1]))
        if status not in (_REQUEST_TIMEOUT, _NO_MESSAGES):
            # nats-py keys the description with an enum member: compare, do not hash.
            text = next((v for k, v in headers.items() if k == _DESCRIPTION), "")
            self.problem = f"{status} {text}".strip()
        self._changed()

    def _forget(self, token: str | None, count: int) -> None:
        if token is not None:
            self._open.pop(token, None)
        self._outstanding = max(0, self._outstanding - count)
        self._clamp()

    def _clamp(self) -> None:
        # Never more than the open requests may still deliver (a lost status, a late one).
        self._outstanding = min(
            self._outstanding, int(sum(left for _, left in self._open.values()))
        )
