"""The blocked-loop watchdog names the plugin whose code holds the loop."""

from __future__ import annotations

import sys

from executor._watchdog import find_culprit


def plugin_code() -> str | None:
    return find_culprit(sys._getframe(), {__name__: "demo"})


def test_the_innermost_plugin_frame_is_named() -> None:
    culprit = plugin_code()
    assert culprit is not None
    assert culprit.startswith("plugin 'demo' (")
    assert "test_watchdog.py" in culprit
    assert "in plugin_code" in culprit


def test_no_plugin_frame_names_nobody() -> None:
    assert find_culprit(sys._getframe(), {"somewhere.else": "demo"}) is None
