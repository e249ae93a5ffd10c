"""The package's folder map is kept in one place: the package roots pyproject.toml gives
setuptools ([tool.setuptools.packages.find] where), under which it finds every
subpackage of rerank_bridge. What cannot read that table is held to it here: no folder
holding part of the package is left out of the roots, mypy resolves modules from the
same roots, and the wheel carries every module of the map and nothing from elsewhere."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from rerank_bridge.devtools import checkout


def test_every_folder_that_holds_part_of_the_package_is_a_root() -> None:
    holding = [
        folder.parent.name for folder in checkout.root().glob(f"*/{checkout.PACKAGE}") if folder.is_dir()
    ]
    assert sorted(holding) == sorted(checkout.package_roots())


def test_mypy_resolves_modules_from_the_package_roots() -> None:
    assert checkout.pyproject()["tool"]["mypy"]["mypy_path"] == [*checkout.package_roots(), "tests"]


def test_the_map_holds_each_layer_of_the_package() -> None:
    # The map is read, not assumed: a root that went missing from `where` loses its packages.
    assert {"rerank_bridge.proto.v1", "rerank_bridge.server.backends", "rerank_bridge.search._sync"} <= set(
        checkout.package_folders()
    )


@pytest.mark.slow
def test_the_wheel_carries_every_module_of_the_map_and_nothing_else(project_wheel: Path) -> None:
    folders = checkout.package_folders()
    modules = {
        "/".join([*package.split("."), module.name])
        for package, folder in folders.items()
        for module in folder.glob("*.py")
    }
    packaged = [
        name for name in zipfile.ZipFile(project_wheel).namelist() if name.startswith(f"{checkout.PACKAGE}/")
    ]
    assert {name for name in packaged if name.endswith(".py")} == modules
    # Package data (the contract, its descriptor set, stubs, py.typed) comes from the map's folders too.
    for name in packaged:
        package, _, file = name.rpartition("/")
        assert (folders[package.replace("/", ".")] / file).is_file(), name
    assert f"{checkout.PACKAGE}/proto/v1/rerank.protoset" in packaged
