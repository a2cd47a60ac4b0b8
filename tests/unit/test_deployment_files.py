"""The compose file parses, and every command it runs is a real command of the CLI."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml

from dvp_scheduler.cli import build_parser
from dvp_scheduler.cli._common import METRICS_ENVIRONMENT, ConnectionEnvironment

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict[str, object]:
    document = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(document, dict)
    return document


def our_services() -> dict[str, dict[str, object]]:
    services = compose()["services"]
    assert isinstance(services, dict)
    return {
        name: spec for name, spec in services.items() if spec.get("image") == "dvp-scheduler:local"
    }


def test_the_cluster_has_three_nats_nodes_and_every_role() -> None:
    services = compose()["services"]
    assert isinstance(services, dict)
    nats_nodes = [
        name for name, spec in services.items() if str(spec.get("image", "")).startswith("nats:")
    ]
    assert len(nats_nodes) == 3
    ours = our_services()
    assert ours["ticker"]["deploy"] == {"replicas": 2}
    assert ours["executor"]["deploy"] == {"replicas": 3}
    assert "projector" in ours
    assert ours["dashboard"]["ports"] == ["8470:8470"]
    assert ours["init"]["command"] == ["init", "--replicas", "3"]


def test_every_command_is_a_real_cli_command() -> None:
    parser = build_parser()
    commands = {name: spec["command"] for name, spec in our_services().items()}
    assert len(commands) >= 5
    for name, command in commands.items():
        assert isinstance(command, list), name
        args = parser.parse_args([str(part) for part in command])  # exits on an unknown flag
        assert isinstance(args, argparse.Namespace)
        assert callable(args.handler), name


def test_the_environment_is_what_the_services_read() -> None:
    known = {f"DVP_NATS_{field.upper()}" for field in ConnectionEnvironment.model_fields}
    known.update(METRICS_ENVIRONMENT)
    for name, spec in our_services().items():
        environment = spec.get("environment", {})
        assert isinstance(environment, dict)
        assert set(environment) <= known, name


def test_the_services_serve_metrics_on_every_address(monkeypatch: pytest.MonkeyPatch) -> None:
    services = our_services()
    environment = services["ticker"]["environment"]
    assert isinstance(environment, dict)
    for variable, value in environment.items():
        monkeypatch.setenv(variable, str(value))
    parser = build_parser()
    for name in ("ticker", "executor", "projector"):
        command = services[name]["command"]
        assert isinstance(command, list)
        args = parser.parse_args([str(part) for part in command])
        assert (args.metrics_host, args.metrics_port) == ("0.0.0.0", 9464), name


def test_the_dockerfile_installs_every_package() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in (
        "contracts",
        "dvp_cms",
        "ticker",
        "executor",
        "projector",
        "dvp_scheduler",
        "examples",
    ):
        assert f"COPY {package} {package}" in dockerfile
    assert 'ENTRYPOINT ["dvp-scheduler"]' in dockerfile
