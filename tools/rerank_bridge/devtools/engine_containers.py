"""Elasticsearch, OpenSearch and this project's images in containers, through
testcontainers: one node for the live suite, clusters of several nodes, and the
scoring server and bridge images.

- Images: each release's official name (local_engines.Release.image), or the one in
  $RERANK_ELASTICSEARCH_IMAGE / $RERANK_OPENSEARCH_IMAGE. Where no registry answers,
  tools/offline_images.py builds stand-ins under the official names.
- Ports are published on 127.0.0.1 only and tests talk to them there; containers
  talk to each other only on networks a test creates (random names, removed after).
- Readiness is what each engine answers: GET /_cluster/health, with the node count a
  cluster must reach (the integ-test Elasticsearch answers GET / with 405).
- The nodes of a cluster share one network namespace, held by a container that only
  sleeps, and talk to each other over loopback. Elasticsearch then runs its production
  bootstrap checks as warnings, so a cluster starts where Docker gives containers
  fewer than 65,535 open files (this project's CI machines). Each node is still its
  own container, JVM and data folder: killing one is a node failure.
"""

from __future__ import annotations

import contextlib
import os
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from testcontainers.core.config import testcontainers_config
from testcontainers.core.container import DockerContainer
from testcontainers.core.network import Network

from rerank_bridge.devtools import local_engines

HEAP = "384m"
HTTP, TRANSPORT = 9200, 9300
IMAGE_VARIABLES = {"elasticsearch": "RERANK_ELASTICSEARCH_IMAGE", "opensearch": "RERANK_OPENSEARCH_IMAGE"}


def image_for(release: local_engines.Release) -> str:
    return os.environ.get(IMAGE_VARIABLES[release.kind]) or release.image


def docker_client() -> Any:
    """The Docker engine's client, or None where none answers."""
    try:
        import docker

        client = docker.from_env(timeout=10)
        client.ping()
    except Exception:
        return None
    return client


def why_not_here(client: Any, image: str) -> str | None:
    """None when the image is here or could be pulled; else why not."""
    import docker.errors

    try:
        client.images.get(image)
        return None
    except docker.errors.ImageNotFound:
        pass
    try:
        client.images.pull(image)
        return None
    except docker.errors.APIError as error:
        return f"image {image} is not here and cannot be pulled ({str(error).splitlines()[0]})"


def why_no_containers(images: list[str]) -> str | None:
    """None when testcontainers can start these images here; else one line saying why not."""
    client = docker_client()
    if client is None:
        return "no Docker engine answers"
    for image in images:
        if (why := why_not_here(client, image)) is not None:
            return f"{why}; where no registry answers, build it with tools/offline_images.py"
    # testcontainers starts Ryuk beside the first container or network, to remove them
    # should the run die; nothing here builds its image.
    ryuk = testcontainers_config.ryuk_image
    if not testcontainers_config.ryuk_disabled and (why := why_not_here(client, ryuk)) is not None:
        return f"{why}: set TESTCONTAINERS_RYUK_DISABLED=true to run without testcontainers' reaper"
    return None


class ContainersUnavailable(RuntimeError):
    """testcontainers cannot start these images here; the message says why, in one line."""


def require_containers(images: list[str]) -> None:
    """Raises ContainersUnavailable, naming the image (and for Ryuk's, the variable that
    turns it off), before testcontainers would fail on it with a traceback of its own."""
    if (why := why_no_containers(images)) is not None:
        raise ContainersUnavailable(why)


def publish_on_loopback(container: DockerContainer, *ports: int) -> DockerContainer:
    """Publishes container ports on 127.0.0.1 (a free host port each), never on every interface."""
    for port in ports:
        container.ports[f"{port}/tcp"] = ("127.0.0.1", None)  # type: ignore[assignment]
    return container


def host_port(container: DockerContainer, port: int) -> int:
    wrapped = container.get_wrapped_container()
    wrapped.reload()
    return int(wrapped.attrs["NetworkSettings"]["Ports"][f"{port}/tcp"][0]["HostPort"])


def logs_tail(container: DockerContainer, characters: int = 3000) -> str:
    out, err = container.get_logs()
    return (out + err).decode(errors="replace")[-characters:]


def exited(container: DockerContainer) -> str | None:
    wrapped = container.get_wrapped_container()
    wrapped.reload()
    if wrapped.status in ("created", "running", "restarting"):
        return None
    return f"{container.image} exited ({wrapped.status}):\n{logs_tail(container)}"


def single_node_environment(kind: str) -> dict[str, str]:
    """What the official images read to run one node without security. Shards are placed,
    and Elasticsearch's segments merged, however full the host's disk is (a test's answers
    must not depend on it; the local nodes do the same)."""
    environment = {
        "discovery.type": "single-node",
        "cluster.routing.allocation.disk.threshold_enabled": "false",
    }
    if kind == "elasticsearch":
        environment |= {
            "xpack.security.enabled": "false",
            "indices.merge.disk.watermark.high": "100%",
            "ES_JAVA_OPTS": f"-Xms{HEAP} -Xmx{HEAP}",
        }
    else:
        environment |= {
            "DISABLE_SECURITY_PLUGIN": "true",
            "DISABLE_INSTALL_DEMO_CONFIG": "true",
            "OPENSEARCH_JAVA_OPTS": f"-Xms{HEAP} -Xmx{HEAP}",
        }
    return environment


def cluster_node_environment(kind: str, name: str, number: int, nodes: int) -> dict[str, str]:
    """Node `number` of a cluster sharing one network namespace: HTTP on every interface
    (HTTP+number), transport on loopback (TRANSPORT+number)."""
    environment = {
        key: value for key, value in single_node_environment(kind).items() if key != "discovery.type"
    }
    names = [f"{name}-{i}" for i in range(nodes)]
    environment |= {
        "cluster.name": name,
        "node.name": names[number],
        "http.host": "0.0.0.0",
        "http.port": str(HTTP + number),
        "transport.host": "127.0.0.1",
        "transport.port": str(TRANSPORT + number),
        "discovery.seed_hosts": ",".join(f"127.0.0.1:{TRANSPORT + i}" for i in range(nodes)),
        # Where vm.max_map_count is Linux's default (65530), mmap'd Lucene files run out.
        "node.store.allow_mmap": "false",
    }
    managers = (
        "cluster.initial_master_nodes" if kind == "elasticsearch" else "cluster.initial_cluster_manager_nodes"
    )
    environment[managers] = ",".join(names)
    return environment


@contextlib.contextmanager
def single_node(
    release: local_engines.Release, network: Network | None = None, alias: str = "", timeout: float = 240
) -> Iterator[str]:
    """One node of the release's image (on `network` as `alias`, when given); yields its
    URL on loopback."""
    image = image_for(release)
    require_containers([image])
    container = DockerContainer(image, env=single_node_environment(release.kind), network=network)
    if alias:
        container.with_network_aliases(alias)
    publish_on_loopback(container, HTTP)
    with container:
        url = f"http://127.0.0.1:{host_port(container, HTTP)}"
        local_engines.wait_until_healthy(url, timeout, exited=lambda: exited(container))
        yield url


@dataclass
class Cluster:
    kind: str
    image: str
    name: str
    network: Network
    holder: DockerContainer
    nodes: list[DockerContainer] = field(default_factory=list)

    @property
    def url(self) -> str:
        """Node 0's HTTP on loopback."""
        return self.node_url(0)

    def node_url(self, number: int) -> str:
        return f"http://127.0.0.1:{host_port(self.holder, HTTP + number)}"

    @property
    def internal_url(self) -> str:
        """Node 0's HTTP from another container on the cluster's network."""
        return f"http://{self.name}:{HTTP}"

    def kill(self, number: int) -> None:
        self.nodes[number].get_wrapped_container().kill()

    def alive(self) -> list[int]:
        return [number for number, node in enumerate(self.nodes) if exited(node) is None]


@contextlib.contextmanager
def cluster(
    release: local_engines.Release, nodes: int = 3, name: str = "", timeout: float = 300
) -> Iterator[Cluster]:
    """`nodes` nodes of the release's image in one cluster on a network of its own
    (or the one given); yields it once every node has joined."""
    image = image_for(release)
    require_containers([image])
    name = name or f"{release.kind}-cluster"
    with Network() as network:
        # The holder keeps the namespace (and the published ports) while any node dies.
        holder = DockerContainer(image, entrypoint=["sleep", "infinity"], network=network)
        holder.with_network_aliases(name)
        publish_on_loopback(holder, *(HTTP + i for i in range(nodes)))
        with holder:
            built = Cluster(release.kind, image, name, network, holder)
            try:
                for number in range(nodes):
                    node = DockerContainer(
                        image,
                        env=cluster_node_environment(release.kind, name, number, nodes),
                        network_mode=f"container:{holder.get_container_id()}",
                    )
                    node.start()
                    built.nodes.append(node)

                def any_exited() -> str | None:
                    return next((why for node in built.nodes if (why := exited(node))), None)

                local_engines.wait_until_healthy(built.url, timeout, nodes=nodes, exited=any_exited)
                yield built
            finally:
                for node in built.nodes:
                    node.stop()


@contextlib.contextmanager
def project_container(
    image: str,
    command: list[str],
    network: Network,
    alias: str,
    ports: tuple[int, ...],
    volumes: tuple[tuple[str, str], ...] = (),
) -> Iterator[DockerContainer]:
    """One of this project's images on `network` as `alias`, with `ports` on loopback and
    host folders mounted read-only (host path, container path)."""
    require_containers([image])
    container = DockerContainer(image, command=command, network=network)  # type: ignore[arg-type]
    container.with_network_aliases(alias)
    publish_on_loopback(container, *ports)
    for host, inside in volumes:
        container.with_volume_mapping(host, inside, "ro")
    with container:
        yield container


def health_status(container: DockerContainer) -> str:
    """Docker's verdict from the image's HEALTHCHECK: starting, healthy or unhealthy."""
    wrapped = container.get_wrapped_container()
    wrapped.reload()
    return str(wrapped.attrs["State"].get("Health", {}).get("Status", "none"))


def wait_for_health(container: DockerContainer, wanted: str = "healthy", timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while (status := health_status(container)) != wanted:
        if (why := exited(container)) is not None:
            raise RuntimeError(why)
        if time.monotonic() > deadline:
            raise TimeoutError(f"{container.image} is {status}, not {wanted}, after {timeout:.0f} s")
        time.sleep(1)


def get_json(url: str, timeout: float = 30) -> Any:
    import json

    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


def wait_for_index(url: str, index: str, status: str = "green", timeout: int = 120) -> dict[str, Any]:
    """The index's health once it reaches `status` (the same REST call on both engines;
    opensearch-py reads a `timeout` argument as its own HTTP timeout)."""
    return dict(
        get_json(f"{url}/_cluster/health/{index}?wait_for_status={status}&timeout={timeout}s", timeout + 10)
    )
