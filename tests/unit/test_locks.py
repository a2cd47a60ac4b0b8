"""The locks agree with pyproject.toml and with each other, and the image gets every package."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", re.MULTILINE)


def pins(name: str) -> dict[str, str]:
    text = (ROOT / name).read_text()
    return {canonicalize_name(package): version for package, version in PIN.findall(text)}


def test_every_declared_dependency_is_pinned_within_its_range() -> None:
    locked = pins("requirements.lock")
    declared = [
        *PYPROJECT["project"]["dependencies"],
        *PYPROJECT["project"]["optional-dependencies"]["dev"],
    ]
    for line in declared:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{name} is not in requirements.lock: run make lock"
        assert requirement.specifier.contains(locked[name], prereleases=True), (
            f"requirements.lock pins {name}=={locked[name]}, outside {requirement.specifier}: "
            "run make lock"
        )


def test_the_runtime_lock_is_the_full_lock_less_the_dev_tools() -> None:
    runtime = pins("requirements-runtime.lock")
    full = pins("requirements.lock")
    assert runtime, "requirements-runtime.lock pins nothing"
    differing = {name: (v, full.get(name)) for name, v in runtime.items() if full.get(name) != v}
    assert not differing, f"the locks disagree (runtime, full): {differing}; run make lock"
    for line in PYPROJECT["project"]["dependencies"]:
        assert canonicalize_name(Requirement(line).name) in runtime


def test_every_lock_line_carries_a_hash() -> None:
    for name in ("requirements.lock", "requirements-runtime.lock"):
        text = (ROOT / name).read_text()
        for block in re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[-1]):
            if PIN.match(block):
                assert "--hash=sha256:" in block, f"{name}: no hash for {block.split()[0]}"


def test_the_image_copies_every_package() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\w+) \1$", dockerfile, re.MULTILINE))
    packages = {
        pattern.rstrip("*")
        for pattern in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    assert packages <= copied, f"the Dockerfile does not copy {sorted(packages - copied)}"
    assert "requirements-runtime.lock" in dockerfile
