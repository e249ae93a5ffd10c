"""The deployment files as they ship (no Docker engine runs here): the
Dockerfile linted by hadolint, the Kubernetes manifests validated against the
Kubernetes schemas (kubernetes-validate bundles them), and every image, compose
service and container holding the extras its command imports and starting
that command with arguments it accepts."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from command_extras import NEEDS

from rerank_bridge_cli.main import parser

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
TOOLS = Path(sys.executable).parent
# The image each Dockerfile target is tagged with (its build comments, compose and the manifests agree).
IMAGES = {"server": "rerank-bridge-server", "bridge": "rerank-bridge-proxy"}


def stages() -> dict[str, dict[str, Any]]:
    """Each build stage: its parent, the extras it installs and its ENTRYPOINT/CMD."""
    found: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] = {}
    text = (DOCKER / "Dockerfile").read_text().replace("\\\n", " ")
    for line in text.splitlines():
        if match := re.match(r"FROM (\S+) AS (\w+)", line):
            current = found[match.group(2)] = {
                "parent": match.group(1),
                "extras": set(),
                "entrypoint": [],
                "cmd": [],
            }
        for extras in re.findall(r'pip install [^"]*"\.\[([\w,]+)\]"', line):
            current["extras"] |= set(extras.split(","))
        for key in ("ENTRYPOINT", "CMD"):
            if line.startswith(key + " "):
                current[key.lower()] = yaml.safe_load(line[len(key) + 1 :])
    return found


def extras_of(name: str, found: dict[str, dict[str, Any]]) -> set[str]:
    stage = found[name]
    inherited = extras_of(stage["parent"], found) if stage["parent"] in found else set()
    return set(stage["extras"]) | inherited


def accepted(subcommand: str, args: list[str]) -> None:
    """The arguments parse as `rerank-bridge <subcommand>` would parse them."""
    parsed = parser().parse_args([subcommand, *args])
    assert parsed.command == subcommand


def test_the_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [str(TOOLS / "hadolint"), str(DOCKER / "Dockerfile")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_kubernetes_manifests_match_the_schemas() -> None:
    manifests = sorted(str(p) for p in (DOCKER / "k8s").glob("*.yaml"))
    result = subprocess.run(
        [str(TOOLS / "kubernetes-validate"), "--strict", *manifests], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") == 5


@pytest.mark.parametrize("target", ["server", "bridge"])
def test_each_image_installs_what_its_command_imports(target: str) -> None:
    found = stages()
    entrypoint = found[target]["entrypoint"]
    assert entrypoint[0] == "rerank-bridge"
    subcommand = entrypoint[1]
    assert NEEDS[subcommand] <= extras_of(target, found), f"{target} runs {subcommand}"
    accepted(subcommand, [*entrypoint[2:], *found[target]["cmd"]])
    for comment in re.findall(rf"--target {target} .*", (DOCKER / "Dockerfile").read_text()):
        assert f"-t {IMAGES[target]}:" in comment


def _target_of(image: str) -> str:
    return next(target for target, name in IMAGES.items() if image.startswith(name + ":"))


def test_compose_services_start_their_images_commands() -> None:
    services = yaml.safe_load((DOCKER / "compose.yaml").read_text())["services"]
    found = stages()
    ours = {name: spec for name, spec in services.items() if spec["image"].split(":")[0] in IMAGES.values()}
    assert set(ours) == {"rerank-server", "rerank-bridge"}
    for spec in ours.values():
        target = _target_of(spec["image"])
        assert spec["build"]["target"] == target and "entrypoint" not in spec
        # ${VAR:-default} is what compose substitutes when VAR is unset.
        args = [re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", arg) for arg in spec["command"]]
        accepted(found[target]["entrypoint"][1], args)
    mounted = ours["rerank-bridge"]["volumes"][0].split(":")[1]
    assert mounted in ours["rerank-bridge"]["command"] and mounted in found["bridge"]["cmd"]


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
            image = next(word for word in image_and_args if word.split(":")[0] in IMAGES.values())
            args = image_and_args[image_and_args.index(image) + 1 :]
            found = stages()
            target = _target_of(image)
            accepted(found[target]["entrypoint"][1], args or found[target]["cmd"])
