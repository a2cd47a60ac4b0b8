"""The DVP CMS plugin API of scheduled tasks, and the host that calls it.

Plugin authors import from the submodules, as the reference page shows:
``dvp_cms.plugins.base.Plugin``, ``dvp_cms.plugins.hookspec.ScheduledTaskHooks``,
``dvp_cms.plugins.context.HookContext`` and ``dvp_cms.plugins.hooks.scheduled_tasks``.
To test a plugin, use ``dvp_cms.plugins.testing``: it registers and runs tasks and asks for
retry decisions the way the engine does. ``dvp_cms.plugins.attempts`` runs one attempt and
classifies its outcome, for the executor and the testing helpers alike.
"""

from dvp_cms.plugins.base import Plugin
from dvp_cms.plugins.context import HookContext
from dvp_cms.plugins.discovery import ENTRY_POINT_GROUP, Discovery, discover_plugins, load_plugin
from dvp_cms.plugins.errors import (
    BadTaskResultError,
    DuplicateTaskError,
    PluginError,
    PluginLoadError,
    PluginRegistrationError,
    TaskDefinitionError,
    TaskNotRegisteredError,
    TaskResultFailure,
    TaskTimeoutError,
    UnserializableResultError,
)
from dvp_cms.plugins.hookspec import ScheduledTaskHooks
from dvp_cms.plugins.manager import (
    PluginDecision,
    PluginManager,
    RegisteredTask,
    Registration,
    implements,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "BadTaskResultError",
    "Discovery",
    "DuplicateTaskError",
    "HookContext",
    "Plugin",
    "PluginDecision",
    "PluginError",
    "PluginLoadError",
    "PluginManager",
    "PluginRegistrationError",
    "RegisteredTask",
    "Registration",
    "ScheduledTaskHooks",
    "TaskDefinitionError",
    "TaskNotRegisteredError",
    "TaskResultFailure",
    "TaskTimeoutError",
    "UnserializableResultError",
    "discover_plugins",
    "implements",
    "load_plugin",
]
