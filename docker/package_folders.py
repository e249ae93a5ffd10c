"""Creates the empty folder of every package pyproject.toml lists, so that the images can
install the project's dependencies (`pip install ".[extra]"`) before its code is copied
in: a change to the code then reinstalls the project alone. pyproject's package-dir is
the one list of folders; this reads it rather than repeating it."""

import pathlib
import tomllib

with open("pyproject.toml", "rb") as file:
    setuptools = tomllib.load(file)["tool"]["setuptools"]
folders = setuptools["package-dir"]
for package in setuptools["packages"]:
    root = max((name for name in folders if package == name or package.startswith(name + ".")), key=len)
    pathlib.Path(folders[root], *package[len(root) :].split(".")[1:]).mkdir(parents=True, exist_ok=True)
