"""Run nats-server in a container with testcontainers (needs a Docker engine)."""

from __future__ import annotations

from typing import Any, Final, Self

from dvp_scheduler.errors import NatsServerError

IMAGE: Final = "nats:2.12-alpine"


def docker_available() -> bool:
    """Whether a Docker engine answers here."""
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env().ping()
    except Exception:
        return False
    return True


class DockerNatsServer:
    """A nats-server container with JetStream on, its client port mapped to loopback."""

    def __init__(self, image: str = IMAGE) -> None:
        self._image = image
        self._container: Any = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            raise NatsServerError("the nats-server container is not running")
        return self._url

    def start(self) -> Self:
        """Start the container and wait until the server is ready."""
        from testcontainers.core.container import DockerContainer
        from testcontainers.core.waiting_utils import wait_for_logs

        container = DockerContainer(self._image).with_command("-js").with_exposed_ports(4222)
        container.start()
        self._container = container
        wait_for_logs(container, "Server is ready", timeout=30)
        host = container.get_container_host_ip()
        self._url = f"nats://{host}:{container.get_exposed_port(4222)}"
        return self

    def stop(self) -> None:
        container, self._container = self._container, None
        if container is not None:
            container.stop()
        self._url = None
