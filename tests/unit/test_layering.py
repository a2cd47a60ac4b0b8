"""What a module loads when imported: the plugin API and the contracts stay broker-free.

import-linter (`lint-imports` in `make test`) checks the static imports; this checks what
actually lands in ``sys.modules``, which also catches an import hidden in a dependency.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

BROKER_MODULES = ("nats", "faststream", "natsio", "ticker", "executor", "projector")


@pytest.mark.parametrize(
    "statement",
    [
        "from dvp_cms.plugins.base import Plugin",
        "from dvp_cms.plugins.hookspec import ScheduledTaskHooks",
        "from dvp_cms.plugins.hooks.scheduled_tasks import ScheduledTaskDefinition, TaskResult",
        "import dvp_cms.plugins",
        "import contracts",
    ],
)
def test_importing_loads_no_broker_client_and_no_service(statement: str) -> None:
    roots = "{m.split('.')[0] for m in sys.modules}"
    probe = f"import sys\n{statement}\nprint(','.join(sorted({roots} & {set(BROKER_MODULES)!r})))"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "", f"{statement!r} loaded {loaded}"


WEB_MODULES = ("starlette", "uvicorn", "jinja2", "sse_starlette")


def test_the_command_line_loads_the_web_stack_only_for_the_dashboard() -> None:
    """A ticker or an executor process starts through the command line: it must not pay for
    (in start-up time and memory) the dashboard's web framework it never serves."""
    roots = "{m.split('.')[0] for m in sys.modules}"
    probe = (
        "import sys\nfrom dvp_scheduler.cli import build_parser\nbuild_parser()\n"
        f"print(','.join(sorted({roots} & {set(WEB_MODULES)!r})))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "", f"building the command line loaded {loaded}"
