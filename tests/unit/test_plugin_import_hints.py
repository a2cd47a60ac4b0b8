"""A plugin module that fails to import for a known reason gets a load error naming the fix."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dvp_cms.plugins import PluginLoadError, discover_plugins, load_plugin

# A hook annotated the way the reference page prints it: a quoted class name "| None".
PLUGIN_SOURCE = """
from typing import TYPE_CHECKING

from dvp_cms.plugins import base
from dvp_cms.plugins.hookspec import ScheduledTaskHooks

if TYPE_CHECKING:
    from dvp_cms.plugins.hooks.scheduled_tasks import TaskRetryDecision


class Plugin(base.Plugin, ScheduledTaskHooks):
    name = "pasted"

    def dvp_task_failed(self, ctx, task, error, execution_ctx) -> "TaskRetryDecision" | None:
        return None
"""


@pytest.fixture
def plugin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        if name.startswith("pasted_hooks"):
            del sys.modules[name]


@pytest.mark.skipif(sys.version_info >= (3, 14), reason="annotations are lazy from Python 3.14")
def test_a_quoted_or_none_annotation_names_the_future_import(plugin_dir: Path) -> None:
    module = plugin_dir / "pasted_hooks.py"
    module.write_text(PLUGIN_SOURCE)
    with pytest.raises(PluginLoadError) as error:
        load_plugin("pasted_hooks:Plugin")
    message = str(error.value)
    assert "TypeError: unsupported operand type(s) for |: 'str' and 'NoneType'" in message
    assert "`from __future__ import annotations` at the top of" in message
    assert str(module) in message
    found = discover_plugins(["pasted_hooks:Plugin"], use_entry_points=False)
    assert "from __future__ import annotations" in str(found.errors[0])


def test_with_the_future_import_the_same_module_loads(plugin_dir: Path) -> None:
    (plugin_dir / "pasted_hooks_fixed.py").write_text(
        "from __future__ import annotations\n" + PLUGIN_SOURCE
    )
    plugin = load_plugin("pasted_hooks_fixed:Plugin")
    assert plugin.name == "pasted"


def test_other_import_errors_get_no_such_hint(plugin_dir: Path) -> None:
    (plugin_dir / "pasted_hooks_other.py").write_text("value = 1 | None\n")
    with pytest.raises(PluginLoadError) as error:
        load_plugin("pasted_hooks_other:Plugin")
    assert "'int' and 'NoneType'" in str(error.value)
    assert "__future__" not in str(error.value)
