"""Before testcontainers starts anything, the helpers ask whether it can: a Docker engine
that answers, and every image, Ryuk's among them unless it is turned off. Where one is
missing (no registry answers here), the answer is one line naming the image, and for
Ryuk the variable that turns it off, never testcontainers' own traceback."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import docker.errors
import pytest
from testcontainers.core.config import testcontainers_config

from rerank_bridge.devtools import checkout, engine_containers


class DockerHolding:
    """A Docker engine that answers and holds these images, with no registry to pull from."""

    def __init__(self, *present: str) -> None:
        self.present = set(present)
        self.images = self  # docker-py's client.images.get / .pull

    def get(self, image: str) -> str:
        if image not in self.present:
            raise docker.errors.ImageNotFound(f"No such image: {image}")
        return image

    def pull(self, image: str) -> Any:
        raise docker.errors.APIError(f"pull access denied for {image}\nthe registry's details")


def test_a_missing_ryuk_image_is_named_with_the_variable_that_turns_it_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engine_containers, "docker_client", lambda: DockerHolding("engine:1"))
    monkeypatch.setattr(testcontainers_config, "ryuk_disabled", False)
    with pytest.raises(engine_containers.ContainersUnavailable) as raised:
        engine_containers.require_containers(["engine:1"])
    ryuk = testcontainers_config.ryuk_image
    assert str(raised.value) == (
        f"image {ryuk} is not here and cannot be pulled (pull access denied for {ryuk}): "
        "set TESTCONTAINERS_RYUK_DISABLED=true to run without testcontainers' reaper"
    )


def test_with_ryuk_off_only_the_images_asked_for_are_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_containers, "docker_client", lambda: DockerHolding("engine:1"))
    monkeypatch.setattr(testcontainers_config, "ryuk_disabled", True)
    assert engine_containers.why_no_containers(["engine:1"]) is None
    why = engine_containers.why_no_containers(["engine:1", "server:1"])
    assert why is not None and why.startswith("image server:1 is not here and cannot be pulled")


def test_every_container_start_asks_first(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each helper that hands an image to testcontainers refuses before testcontainers runs.
    monkeypatch.setattr(engine_containers, "why_no_containers", lambda images: f"no {images[0]} here")
    release = engine_containers.local_engines.RELEASES["opensearch-3.5.0"]
    starts = [
        lambda: engine_containers.single_node(release),
        lambda: engine_containers.cluster(release),
        lambda: engine_containers.project_container("server:1", [], None, "alias", ()),  # type: ignore[arg-type]
    ]
    for start in starts:
        with pytest.raises(engine_containers.ContainersUnavailable, match=r"^no \S+ here$"), start():
            pass


def test_the_container_soak_says_why_it_cannot_start_in_one_line() -> None:
    done = subprocess.run(
        [sys.executable, str(checkout.root() / "bench" / "soak.py"), "--containers"],
        env={"PATH": "/usr/bin:/bin", "DOCKER_HOST": "unix:///nonexistent/docker.sock"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == "soak --containers: no Docker engine answers", done.stderr[-2000:]
