"""The deployment files as they ship, read without a Docker engine: the
Dockerfiles linted by hadolint, the Kubernetes manifests validated against the
Kubernetes schemas (kubernetes-validate bundles them), and every image, compose
service and container holding the extras its command imports, starting that
command with arguments it accepts, unprivileged, with the health check that
reads its port. tests/deployment/test_containers.py runs the images themselves."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from offline_images import PROJECT_IMAGES

from rerank_bridge.bridge.config import load_config
from rerank_bridge.cli.main import parser
from rerank_bridge.devtools import checkout, local_engines
from support.command_extras import NEEDS

ROOT = checkout.root()
DOCKER = ROOT / "docker"
TOOLS = Path(sys.executable).parent
# What each image's command needs: the CPU server serves an exported folder, so ONNX
# Runtime without torch.
IMAGE_NEEDS = {"bridge": NEEDS["proxy"], "server": NEEDS["serve"], "server-cpu": {"server-onnx"}}


def stages() -> dict[str, dict[str, Any]]:
    """Each build stage: its parent, the extras it installs and its ENTRYPOINT/CMD."""
    found: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] = {}
    text = (DOCKER / "Dockerfile").read_text().replace("\\\n", " ")
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        if match := re.match(r"FROM (\S+) AS ([\w-]+)", line):
            current = found[match.group(2)] = {
                "parent": match.group(1),
                "extras": set(),
                "entrypoint": [],
                "cmd": [],
                "user": "",
                "healthcheck": [],
            }
        for extras in re.findall(r'pip install [^"]*"\.\[([\w,-]+)\]"', line):
            current["extras"] |= set(extras.split(","))
        for key in ("ENTRYPOINT", "CMD"):
            if line.startswith(key + " "):
                current[key.lower()] = yaml.safe_load(line[len(key) + 1 :])
        if line.startswith("USER "):
            current["user"] = line.split()[1]
        if line.startswith("HEALTHCHECK "):
            current["healthcheck"] = yaml.safe_load(line.split(" CMD ", 1)[1])
    return found


def with_nested(extras: set[str]) -> set[str]:
    """The extras and those they include ("rerank-bridge[server-onnx]" in pyproject.toml)."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    found, todo = set(), list(extras)
    while todo:
        extra = todo.pop()
        if extra not in found:
            found.add(extra)
            for requirement in declared[extra]:
                if match := re.fullmatch(r"rerank-bridge\[([\w,-]+)\]", requirement):
                    todo.extend(match.group(1).split(","))
    return found


def extras_of(name: str, found: dict[str, dict[str, Any]]) -> set[str]:
    stage = found[name]
    inherited = extras_of(stage["parent"], found) if stage["parent"] in found else set()
    return with_nested(set(stage["extras"])) | inherited


def accepted(subcommand: str, args: list[str]) -> None:
    """The arguments parse as `rerank-bridge <subcommand>` would parse them."""
    parsed = parser().parse_args([subcommand, *args])
    assert parsed.command == subcommand


def test_the_dockerfiles_pass_hadolint() -> None:
    files = [DOCKER / "Dockerfile", *sorted((DOCKER / "offline").glob("*.Dockerfile"))]
    result = subprocess.run([str(TOOLS / "hadolint"), *map(str, files)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_kubernetes_manifests_match_the_schemas() -> None:
    manifests = sorted(str(p) for p in (DOCKER / "k8s").glob("*.yaml"))
    result = subprocess.run(
        [str(TOOLS / "kubernetes-validate"), "--strict", *manifests], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") == 5


@pytest.mark.parametrize("target", sorted(PROJECT_IMAGES))
def test_each_image_installs_what_its_command_imports_and_runs_it_unprivileged(target: str) -> None:
    found = stages()
    entrypoint = found[target]["entrypoint"]
    assert entrypoint[0] == "rerank-bridge"
    subcommand = entrypoint[1]
    assert IMAGE_NEEDS[target] <= extras_of(target, found), f"{target} runs {subcommand}"
    accepted(subcommand, [*entrypoint[2:], *found[target]["cmd"]])
    assert f"--target {target} -t {PROJECT_IMAGES[target]} " in (DOCKER / "Dockerfile").read_text()
    assert found[target]["user"] == "10001"
    # The check reads the port from the container's own command line (rerank-bridge healthcheck).
    assert found[target]["healthcheck"] == ["rerank-bridge", "healthcheck"]


def _target_of(image: str) -> str:
    return next(target for target, name in PROJECT_IMAGES.items() if image == name)


def test_compose_services_start_their_images_commands() -> None:
    services = yaml.safe_load((DOCKER / "compose.yaml").read_text())["services"]
    found = stages()
    ours = {name: spec for name, spec in services.items() if spec["image"] in PROJECT_IMAGES.values()}
    assert set(ours) == {"rerank-server-1", "rerank-server-2", "rerank-bridge"}
    for spec in ours.values():
        target = _target_of(spec["image"])
        assert spec["build"]["target"] == target and "entrypoint" not in spec
        accepted(found[target]["entrypoint"][1], spec["command"])
    mounted = ours["rerank-bridge"]["volumes"][0].split(":")[1]
    assert mounted in ours["rerank-bridge"]["command"] and mounted in found["bridge"]["cmd"]
    # The engines are the releases the tests run, under the names tools/offline_images.py builds.
    engines = {spec["image"] for spec in services.values() if spec["image"] not in PROJECT_IMAGES.values()}
    assert engines == {local_engines.release_for(kind).image for kind in local_engines.KINDS}
    # Every published port listens on loopback only.
    published = [port for spec in services.values() for port in spec.get("ports", [])]
    assert published and all(port.startswith("127.0.0.1:") for port in published)


def test_the_compose_bridge_calls_both_scoring_servers() -> None:
    config = load_config(DOCKER / "bridge.yaml", {})
    assert config.reranker == ("rerank-server-1:50051", "rerank-server-2:50051")


def test_kubernetes_containers_start_their_images_commands() -> None:
    found = stages()
    containers = [
        container
        for path in sorted((DOCKER / "k8s").glob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text())
        if document["kind"] == "Deployment"
        for container in document["spec"]["template"]["spec"]["containers"]
    ]
    assert {_target_of(c["image"]) for c in containers} == {"server", "bridge"}
    for container in containers:
        assert "command" not in container  # the image's ENTRYPOINT is the command
        accepted(found[_target_of(container["image"])]["entrypoint"][1], container.get("args", []))


def test_the_shipped_commands_in_comments_parse() -> None:
    for line in (DOCKER / "Dockerfile").read_text().splitlines():
        if "docker run" in line:
            image_and_args = shlex.split(line.split("docker run", 1)[1])
            image = next(word for word in image_and_args if word in PROJECT_IMAGES.values())
            args = image_and_args[image_and_args.index(image) + 1 :]
            found = stages()
            target = _target_of(image)
            accepted(found[target]["entrypoint"][1], args or found[target]["cmd"])
