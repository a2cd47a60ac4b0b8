"""The base class of DVP CMS plugins."""

from __future__ import annotations


class Plugin:
    """A DVP CMS plugin. Subclasses set `name` and `version` and mix in hook classes such as
    `dvp_cms.plugins.hookspec.ScheduledTaskHooks`.
    """

    name: str = ""
    version: str = "0.0.0"
    description: str = ""

    def __repr__(self) -> str:
        return f"<plugin {self.name or type(self).__name__} {self.version}>"
