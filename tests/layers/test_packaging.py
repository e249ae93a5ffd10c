"""pyproject.toml lists each subpackage and its folder by hand (setuptools cannot find
a namespace package spread over several roots): a package left off the list would
be missing from the wheel, so the list is checked against the folders."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("proto", "server", "connectors", "tools")


def test_the_wheel_lists_every_package_of_the_layout_at_its_folder() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {
        ".".join(
            init.parent.relative_to(ROOT / folder).parts
        ): f"{folder}/{init.parent.relative_to(ROOT / folder)}"
        for folder in FOLDERS
        for init in (ROOT / folder / "rerank_bridge").rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert sorted(setuptools["packages"]) == sorted(on_disk)
    for package, folder in setuptools["package-dir"].items():
        assert on_disk[package] == folder
