"""dvp-scheduler's command line: runs each service, the embedded broker, and operator commands."""

__version__ = "0.1.0"
