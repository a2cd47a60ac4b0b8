"""What the stream reader parses itself: header lines (exactly as nats-py does) and the
positions in a JetStream reply subject."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nats.aio.client import Client

from natsio.reader import _ack_fields, _header_fields

names = st.text(st.characters(codec="ascii"), max_size=12) | st.sampled_from(
    ["Dvp-Event-Type", "Nats-Msg-Id", " Spaced Name", "tab\there", "x\x1cy", "Nats-Sequence"]
)
values = st.text(max_size=20) | st.sampled_from(["task.due.v1", " padded ", "ü-value"])
lines = st.builds(lambda n, v: f"{n}:{v}".encode("utf-8", "surrogatepass"), names, values)
blocks = st.lists(lines | st.binary(max_size=16), max_size=6).map(b"\r\n".join)


@given(blocks)
def test_same_headers_as_nats_py(raw: bytes) -> None:
    assert _header_fields(raw) == Client._parse_header_lines(raw)


def test_a_typical_event_header_block() -> None:
    raw = b"Dvp-Event-Type: task.due.v1\r\nNats-Msg-Id: due:e:1\r\n\r\n"
    assert _header_fields(raw) == {
        "Dvp-Event-Type": "task.due.v1",
        "Nats-Msg-Id": "due:e:1",
    }


def test_positions_from_a_reply_subject() -> None:
    # $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>
    assert _ack_fields(b"$JS.ACK.DVP_TASKS.c1.1.1207.35.1764000000000000000.42") == (1207, 35, 42)


def test_positions_from_a_reply_subject_with_domain_and_account() -> None:
    reply = b"$JS.ACK.hub.ACCHASH.DVP_TASKS.c1.1.1207.35.1764000000000000000.42.rnd"
    assert _ack_fields(reply) == (1207, 35, 42)


def test_a_reply_subject_that_is_not_from_a_stream() -> None:
    with pytest.raises(ValueError, match="not a JetStream message reply subject"):
        _ack_fields(b"_INBOX.abc.def")
