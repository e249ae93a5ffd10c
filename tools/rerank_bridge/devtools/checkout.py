"""Where things lie in a checkout of rerank-bridge, for the tools, benchmarks and tests.

- The checkout: the nearest folder above this file whose pyproject.toml names the
  project. Found by looking, never by counting parent folders, so a module that moves
  finds the same checkout.
- The shared folder (evaluation data, the engines' extra jars): $RERANK_SHARED, else
  `shared` beside the checkout (`../shared`, where CI and a new contributor's clone
  find it).
- The package's folder map (each subpackage of rerank_bridge and its folder): read from
  the one place that keeps it, the package roots pyproject.toml gives setuptools
  ([tool.setuptools.packages.find] where), each holding one part of the namespace
  package `rerank_bridge`.

An installed wheel has no checkout: these answer only from a source tree.
"""

from __future__ import annotations

import functools
import os
import tomllib
from pathlib import Path
from typing import Any

PROJECT = "rerank-bridge"
PACKAGE = "rerank_bridge"
SHARED_VARIABLE = "RERANK_SHARED"


def _names_the_project(pyproject: Path) -> bool:
    try:
        return bool(tomllib.loads(pyproject.read_text())["project"]["name"] == PROJECT)
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return False


@functools.cache
def root() -> Path:
    """The checkout this module lies in."""
    here = Path(__file__).resolve()
    for folder in here.parents:
        if _names_the_project(folder / "pyproject.toml"):
            return folder
    raise RuntimeError(f"{here} lies in no checkout of {PROJECT} (no pyproject.toml above it names it)")


def shared() -> Path:
    """The shared folder: $RERANK_SHARED, else `shared` beside the checkout."""
    configured = os.environ.get(SHARED_VARIABLE)
    return Path(configured) if configured else root().parent / "shared"


def shared_data(*parts: str) -> Path:
    """A collection (or a file in it) of the shared evaluation data."""
    return shared().joinpath("data", *parts)


def shared_engines(*parts: str) -> Path:
    """What the shared folder holds for the engines that Maven Central lacks."""
    return shared().joinpath("engines", *parts)


def pyproject() -> dict[str, Any]:
    return tomllib.loads((root() / "pyproject.toml").read_text())


def package_roots() -> tuple[str, ...]:
    """The folders (relative to the checkout) that each hold a part of rerank_bridge."""
    return tuple(pyproject()["tool"]["setuptools"]["packages"]["find"]["where"])


def package_folders() -> dict[str, Path]:
    """Every subpackage of rerank_bridge (dotted, from `rerank_bridge.`) and its folder:
    the folders with an __init__.py under each package root's `rerank_bridge`."""
    folders = {}
    for package_root in package_roots():
        base = root() / package_root
        for init in sorted((base / PACKAGE).rglob("__init__.py")):
            folders[".".join(init.parent.relative_to(base).parts)] = init.parent
    return folders


def package_folder(package: str) -> Path:
    """One subpackage's folder, e.g. package_folder("rerank_bridge.search")."""
    return package_folders()[package]
