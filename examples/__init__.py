"""Example DVP CMS plugins with demo schedules of seconds, run by ``make run``."""
