"""Cron speed: next-fire computations per second, the project against common Python cron libraries.

Each contender walks the same expressions from the same instant, asking for the next fire after
the previous one, for ``--seconds`` each (default 2), in ``--rounds`` alternating rounds (default
3; the best round of each counts, the least disturbed on a shared machine):

* ``dvp`` — `contracts.schedule.next_fire_after`, as the ticker calls it (UTC, then
  Europe/Berlin, so DST handling is in the price);
* ``dvp@<commit>`` — the same function from an earlier commit (default ``7b9faff``, the last one
  before the cron parser was rewritten), loaded from git, when git and that commit are at hand;
* ``croniter`` and ``cronsim`` — the libraries, in UTC, with naive datetimes.

Usage: ``.venv/bin/python bench/cron_speed.py [--seconds S] [--rounds N] [--baseline COMMIT]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

from croniter import croniter
from cronsim import CronSim

from contracts import schedule as schedule_module

EXPRESSIONS = [
    "*/5 * * * *",
    "0 3 * * *",
    "15 */6 * * *",
    "0 9 * * 1-5",
    "30 2 * * 0",
    "0 0 1 * *",
    "0 0 1,15 * *",
    "0 12 * jan,jul mon",
]
"""Plain crontab forms every contender reads (no extensions, so the old parser runs them too)."""

START = datetime(2026, 1, 1, tzinfo=UTC)
ZONES = ["UTC", "Europe/Berlin"]

Step = Callable[[], object]


def project_steps(module: ModuleType) -> Iterator[Step]:
    """Steps of ``module.next_fire_after`` (``contracts.schedule``, now or as of a commit)."""
    for zone in ZONES:
        for expression in EXPRESSIONS:
            schedule = module.Schedule(cron_expression=expression, timezone=zone)
            state = [START]

            def step(schedule: object = schedule, state: list[datetime] = state) -> object:
                state[0] = module.next_fire_after(schedule, state[0])
                return state[0]

            yield step


def croniter_steps() -> Iterator[Step]:
    for expression in EXPRESSIONS:
        walker = croniter(expression, START.replace(tzinfo=None))
        yield lambda walker=walker: walker.get_next(datetime)


def cronsim_steps() -> Iterator[Step]:
    for expression in EXPRESSIONS:
        walker = CronSim(expression, START.replace(tzinfo=None))
        yield lambda walker=walker: next(walker)


def rate(steps: list[Step], seconds: float) -> float:
    """Computations per second, cycling through ``steps`` in batches of 100 for ``seconds``."""
    done = 0
    begin = time.perf_counter()
    deadline = begin + seconds
    while time.perf_counter() < deadline:
        for step in steps:
            for _ in range(100):
                step()
            done += 100
    return done / (time.perf_counter() - begin)


def load_baseline(commit: str) -> ModuleType | None:
    """``contracts/schedule.py`` as of ``commit``, imported under another name, or None."""
    try:
        source = subprocess.run(
            ["git", "show", f"{commit}:contracts/schedule.py"],
            capture_output=True,
            check=True,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    path = Path(tempfile.mkdtemp()) / f"schedule_{commit}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"schedule_{commit}", path)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    except ImportError:
        del sys.modules[spec.name]
        return None
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", default="7b9faff")
    args = parser.parse_args()

    contenders: dict[str, Callable[[], list[Step]]] = {
        "dvp": lambda: list(project_steps(schedule_module)),
    }
    baseline = load_baseline(args.baseline)
    if baseline is not None:
        contenders[f"dvp@{args.baseline}"] = lambda: list(project_steps(baseline))
    else:
        print(f"(no baseline: commit {args.baseline} or git is not at hand)", file=sys.stderr)
    contenders["croniter"] = lambda: list(croniter_steps())
    contenders["cronsim"] = lambda: list(cronsim_steps())

    best = dict.fromkeys(contenders, 0.0)
    for _ in range(args.rounds):
        for name, make in contenders.items():
            best[name] = max(best[name], rate(make(), args.seconds))
    print(f"next-fire computations per second (best of {args.rounds} rounds of {args.seconds} s)")
    for name, value in best.items():
        ratio = "" if name == "dvp" else f"   dvp is {best['dvp'] / value:.1f}x"
        print(f"  {name:<16} {value:>12,.0f}/s{ratio}")


if __name__ == "__main__":
    main()
