"""The shipped operations files: the Prometheus alerts pass promtool's check and their unit
tests, every alert is tested and explained in the README, and every query of the Grafana
dashboard is valid PromQL. (That they name only metrics the services export is checked against
the running services: tests/integration/test_overdue.py.)

promtool comes with Debian's ``prometheus`` package; ``.ci/run`` installs it where it is
missing. Elsewhere, without it, the promtool tests are skipped and say why; in CI (``CI`` set)
they fail instead, so that they never pass unrun.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
ALERT_TESTS = ROOT / "deploy" / "prometheus" / "alerts.test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboard.json"
README = ROOT / "README.md"

PROMTOOL = shutil.which("promtool")


@pytest.fixture
def promtool() -> str:
    """The promtool binary, or a skip (a failure in CI) saying how to get it."""
    if PROMTOOL is None:
        reason = (
            "no promtool on PATH: install Debian's package (apt-get install prometheus); "
            ".ci/run installs it where it is missing"
        )
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return PROMTOOL


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"] if "alert" in rule]


def dashboard_queries() -> list[str]:
    """Every query of the dashboard, with Grafana's variables given a value."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    queries = [target["expr"] for panel in panels for target in panel["targets"]]
    return [query.replace("$__rate_interval", "5m") for query in queries]


def operating_section() -> str:
    text = README.read_text()
    start = text.index("## Operating it")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def test_the_alert_rules_pass_promtools_check(promtool: str) -> None:
    result = run([promtool, "check", "rules", str(ALERTS)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


def test_the_alerts_unit_tests_pass(promtool: str) -> None:
    result = run([promtool, "test", "rules", str(ALERT_TESTS)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_unit_tested_and_explained_in_the_readme() -> None:
    names = [rule["alert"] for rule in alert_rules()]
    assert set(names) >= {
        "DvpTaskFailingRepeatedly",
        "DvpTaskOverdue",
        "DvpFireLatenessHigh",
        "DvpWorkQueueGrowing",
        "DvpProjectorLagging",
        "DvpNoExecutorConsuming",
    }
    tests = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    tested = {case["alertname"] for test in tests for case in test["alert_rule_test"]}
    firing = {
        case["alertname"]
        for test in tests
        for case in test["alert_rule_test"]
        if case.get("exp_alerts")
    }
    assert tested == firing == set(names)
    section = operating_section()
    for name in names:
        assert f"`{name}`" in section, f"the README's 'Operating it' does not explain {name}"


def test_the_dashboard_queries_are_valid_promql(promtool: str, tmp_path: Path) -> None:
    queries = dashboard_queries()
    assert len(queries) >= 9
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query_{number}", "expr": query}
                    for number, query in enumerate(queries)
                ],
            }
        ]
    }
    checked = tmp_path / "dashboard-queries.yml"
    checked.write_text(yaml.safe_dump(rules))
    result = run([promtool, "check", "rules", str(checked)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dashboard_has_the_panels_operators_need() -> None:
    titles = " | ".join(panel["title"] for panel in json.loads(DASHBOARD.read_text())["panels"])
    for wanted in (
        "Fires and outcomes per second",
        "Fire lateness",
        "Work queued",
        "Retries waiting",
        "Failures by task",
        "Overdue tasks",
    ):
        assert wanted in titles
    # Every query reads one of the services' metrics (their names start with dvp_).
    for query in dashboard_queries():
        assert re.search(r"\bdvp_[a-z_]+", query), query
