"""The faster header parser gives exactly what nats-py's own gives."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from nats.aio.client import Client

from projector.reader import ReaderClient

names = st.text(st.characters(codec="ascii"), max_size=12) | st.sampled_from(
    ["Dvp-Event-Type", "Nats-Msg-Id", " Spaced Name", "tab\there", "x\x1cy", "Nats-Sequence"]
)
values = st.text(max_size=20) | st.sampled_from(["task.due.v1", " padded ", "ü-value"])
lines = st.builds(lambda n, v: f"{n}:{v}".encode("utf-8", "surrogatepass"), names, values)
blocks = st.lists(lines | st.binary(max_size=16), max_size=6).map(b"\r\n".join)


@given(blocks)
def test_same_headers_as_nats_py(raw: bytes) -> None:
    assert ReaderClient._parse_header_lines(raw) == Client._parse_header_lines(raw)


def test_a_typical_event_header_block() -> None:
    raw = b"Dvp-Event-Type: task.due.v1\r\nNats-Msg-Id: due:e:1\r\n\r\n"
    assert ReaderClient._parse_header_lines(raw) == {
        "Dvp-Event-Type": "task.due.v1",
        "Nats-Msg-Id": "due:e:1",
    }
