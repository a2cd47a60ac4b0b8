"""The pure parts of ``trigger``, ``rerun`` and ``failures``: derived re-run ids, the flags, how
a wait for an executor is shown."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dvp_scheduler.cli import build_parser
from dvp_scheduler.cli.query import _duration, _status_cell
from dvp_scheduler.cli.rerun import rerun_execution_id

NOW = datetime(2026, 11, 24, 3, 10, tzinfo=UTC)


@given(st.text(min_size=1, max_size=40), st.integers(min_value=1, max_value=1000))
def test_a_rerun_id_is_a_uuid_fixed_by_target_and_number(target: str, number: int) -> None:
    derived = rerun_execution_id(target, number)
    assert str(uuid.UUID(derived)) == derived
    assert rerun_execution_id(target, number) == derived
    assert rerun_execution_id(target, number + 1) != derived
    assert rerun_execution_id(target + "x", number) != derived


def test_the_new_flags_parse() -> None:
    parser = build_parser()
    assert parser.parse_args(["trigger", "a.b", "--force"]).force
    assert not parser.parse_args(["trigger", "a.b"]).force
    rerun = parser.parse_args(["rerun", "e-1", "--again"])
    assert (rerun.execution_id, rerun.again, rerun.tenant, rerun.force) == (
        "e-1",
        True,
        None,
        False,
    )
    failures = parser.parse_args(["failures", "--since", "2026-11-24T03:00:00Z", "--limit", "5"])
    assert (failures.since, failures.limit, failures.tenant) == (
        datetime(2026, 11, 24, 3, tzinfo=UTC),
        5,
        None,
    )


def test_a_since_that_is_not_an_instant_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["failures", "--since", "yesterday"])
    assert "'yesterday' is not an instant" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0, "0s"), (42.9, "42s"), (192, "3m12s"), (7500, "2h05m"), (273_600, "3d04h"), (-5, "0s")],
)
def test_durations_are_short(seconds: float, shown: str) -> None:
    assert _duration(seconds) == shown


def test_the_status_says_how_long_an_attempt_waits_for_an_executor() -> None:
    waiting = {"status": "due", "waiting_since": "2026-11-24T03:06:48Z"}
    assert _status_cell(waiting, NOW) == "due (waiting for an executor for 3m12s)"
    beside = {"status": "running", "waiting_since": "2026-11-24T03:09:00Z"}
    assert _status_cell(beside, NOW) == "running (another attempt waits for an executor for 1m00s)"
    assert _status_cell({"status": "paused", "waiting_since": "2026-11-24T03:09:00Z"}, NOW) == (
        "paused"
    )
    assert _status_cell({"status": "idle", "waiting_since": None}, NOW) == "idle"
