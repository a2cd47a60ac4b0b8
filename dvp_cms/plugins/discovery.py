"""Finding plugins: installed entry points (group ``dvp_cms.plugins``) and ``module:attr``."""

from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Final

from dvp_cms.plugins.base import Plugin
from dvp_cms.plugins.errors import PluginError, PluginLoadError

ENTRY_POINT_GROUP: Final = "dvp_cms.plugins"
"""Packages declare plugins under this entry point group: ``name = "module:PluginClass"``."""

log = logging.getLogger("dvp_cms.plugins")


@dataclass
class Discovery:
    """The plugins that loaded, and an error for each one that did not."""

    plugins: list[Plugin] = field(default_factory=list)
    errors: list[PluginError] = field(default_factory=list)


def load_plugin(reference: str) -> Plugin:
    """Load ``module:attr``: a plugin class (instantiated without arguments) or instance."""
    module_name, sep, attr_path = reference.partition(":")
    if not sep or not module_name or not attr_path:
        raise PluginLoadError(
            f"plugin reference {reference!r} must look like 'package.module:PluginClass'"
        )
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as error:
        raise PluginLoadError(
            f"cannot load plugin {reference!r}: importing {module_name!r} failed: "
            f"{type(error).__name__}: {error}{_import_hint(error, module_name)}"
        ) from error
    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise PluginLoadError(
                f"cannot load plugin {reference!r}: {module_name!r} has no attribute {attr_path!r}"
            ) from None
    return _instantiate(target, reference)


def _import_hint(error: Exception, module_name: str) -> str:
    """What to do about an import error that has a known cause, or ``""``."""
    message = str(error)
    # Without postponed annotations, Python evaluates ``-> "TaskRetryDecision" | None`` at
    # import, and a string does not support ``|``.
    if (
        isinstance(error, TypeError)
        and "unsupported operand type(s) for |" in message
        and "'str'" in message
    ):
        return (
            '; a quoted annotation such as -> "TaskRetryDecision" | None needs '
            f"`from __future__ import annotations` at the top of {_module_file(module_name)}"
        )
    return ""


def _module_file(module_name: str) -> str:
    """The file of ``module_name`` (which failed to import), or its name if unknown."""
    try:
        spec = importlib.util.find_spec(module_name)
    except Exception:
        spec = None
    if spec is not None and spec.origin and spec.has_location:
        return spec.origin
    return module_name


def _instantiate(target: Any, reference: str) -> Plugin:
    if isinstance(target, type):
        if not issubclass(target, Plugin):
            raise PluginLoadError(
                f"cannot load plugin {reference!r}: {target.__name__} does not subclass "
                "dvp_cms.plugins.base.Plugin"
            )
        try:
            target = target()
        except Exception as error:
            raise PluginLoadError(
                f"cannot load plugin {reference!r}: {target.__name__}() raised "
                f"{type(error).__name__}: {error}"
            ) from error
    if not isinstance(target, Plugin):
        raise PluginLoadError(
            f"cannot load plugin {reference!r}: expected a Plugin subclass or instance, "
            f"got {type(target).__name__}"
        )
    if not isinstance(target.name, str) or not target.name:
        raise PluginLoadError(f"cannot load plugin {reference!r}: set its class attribute 'name'")
    return target


def discover_plugins(references: Iterable[str] = (), *, use_entry_points: bool = True) -> Discovery:
    """Load the installed entry-point plugins, then each ``module:attr`` reference.

    A plugin that fails to load is reported in `Discovery.errors` and the others still load.
    A second plugin with a name already loaded is rejected.
    """
    discovery = Discovery()
    candidates: list[tuple[str, Any]] = []
    if use_entry_points:
        for entry in entry_points(group=ENTRY_POINT_GROUP):
            candidates.append((f"{entry.value} (entry point {entry.name!r})", entry))
    candidates.extend((reference, None) for reference in references)
    names: dict[str, str] = {}
    for reference, entry in candidates:
        try:
            plugin = _instantiate(entry.load(), reference) if entry else load_plugin(reference)
        except PluginError as error:
            discovery.errors.append(error)
            continue
        except Exception as error:  # an entry point whose module fails to import
            hint = _import_hint(error, entry.module) if entry else ""
            discovery.errors.append(
                PluginLoadError(
                    f"cannot load plugin {reference}: {type(error).__name__}: {error}{hint}"
                )
            )
            continue
        if plugin.name in names:
            discovery.errors.append(
                PluginLoadError(
                    f"plugin {reference} is named {plugin.name!r}, like {names[plugin.name]}: "
                    "plugin names must be unique; the first one is kept"
                )
            )
            continue
        names[plugin.name] = reference
        discovery.plugins.append(plugin)
    for problem in discovery.errors:
        log.error("%s", problem)
    return discovery
