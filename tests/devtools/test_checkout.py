"""Paths come from rerank_bridge.devtools.checkout: the checkout found by looking for its
pyproject.toml, the shared folder beside it (or $RERANK_SHARED), never a count of parent
folders. A clone is put beside a `shared/` folder, as CI and a new contributor's machine
have it, and its own tools must find the neural jars, the data and the engines there."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from rerank_bridge.devtools import checkout, local_engines

# Run by the clone's Python code alone: -S leaves site-packages (and so the editable
# install of this checkout) off the path. It imports only what a bare tools run imports.
PROBE = """
import json
import long_documents
from rerank_bridge.devtools import local_engines
print(json.dumps({
    "module": local_engines.__file__,
    "neural_jars": str(local_engines.neural_jars()),
    "data": str(long_documents.DATA),
}))
"""


def clone_beside_shared(work: Path) -> tuple[Path, Path]:
    """`work/clone`, the files of this checkout that would land (tracked or not, unless
    ignored), and `work/shared` with the neural jars and a collection."""
    clone, shared = work / "clone", work / "shared"
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=checkout.root(),
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split("\0")
    for name in filter(None, files):
        source = checkout.root() / name
        if source.is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, clone / name)
    jars = shared / "engines" / local_engines.NEURAL_FOLDER
    jars.mkdir(parents=True)
    for jar in local_engines.NEURAL_JARS:
        (jars / jar).write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip: only its place matters here
    (shared / "data" / "xquad-r" / "en").mkdir(parents=True)
    return clone, shared


def probe(clone: Path, cwd: Path, **environment: str) -> dict[str, str]:
    # The tools' scripts and the devtools' part of the namespace package, both in tools/.
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(clone / "tools"), **environment}
    done = subprocess.run(
        [sys.executable, "-S", "-c", PROBE], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_a_clone_beside_a_shared_folder_finds_the_neural_jars_data_and_engines(tmp_path: Path) -> None:
    clone, shared = clone_beside_shared(tmp_path / "work")
    found = probe(clone, cwd=tmp_path)
    assert Path(found["module"]).is_relative_to(clone)  # the clone's code ran, not this checkout's
    assert found["neural_jars"] == str(shared / "engines" / local_engines.NEURAL_FOLDER)
    assert found["data"] == str(shared / "data" / "xquad-r")


def test_rerank_shared_names_another_shared_folder(tmp_path: Path) -> None:
    clone, shared = clone_beside_shared(tmp_path / "work")
    elsewhere = tmp_path / "elsewhere"
    shutil.move(shared, elsewhere)
    assert probe(clone, cwd=tmp_path)["neural_jars"] == "None"  # nothing beside the clone now
    found = probe(clone, cwd=tmp_path, RERANK_SHARED=str(elsewhere))
    assert found["neural_jars"] == str(elsewhere / "engines" / local_engines.NEURAL_FOLDER)
    assert found["data"] == str(elsewhere / "data" / "xquad-r")


def test_the_neural_jars_are_looked_for_in_the_shared_folder_it_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RERANK_SHARED", str(tmp_path / "no-shared"))
    monkeypatch.delenv("RERANK_NEURAL_JARS", raising=False)
    assert local_engines.neural_jars() is None
    assert local_engines.neural_folder() == tmp_path / "no-shared" / "engines" / local_engines.NEURAL_FOLDER


def test_the_checkout_is_the_folder_whose_pyproject_names_the_project() -> None:
    root = checkout.root()
    assert tomllib.loads((root / "pyproject.toml").read_text())["project"]["name"] == checkout.PROJECT
    assert Path(checkout.__file__).resolve().is_relative_to(root)


# A path built from __file__ may name the file's own folder, never one above it.
COUNTED = re.compile(r"__file__.*(\.parents\b|\.parent\.parent|\"\.\.\")")
# The shared folder is found in one place, not beside a parent folder by hand.
SHARED_BY_HAND = re.compile(r"\.parents?\b\S* / \"shared\"")
# This file holds the forbidden forms on purpose, as the rule's own examples.
EXAMPLES = Path(__file__).resolve().relative_to(checkout.root()).as_posix()
HELPER = Path(checkout.__file__).resolve().relative_to(checkout.root()).as_posix()


def test_no_module_finds_a_path_by_counting_parent_folders() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "*.py"], cwd=checkout.root(), check=True, capture_output=True, text=True
    ).stdout.split()
    assert len(tracked) > 100  # the walk saw the code
    found = [
        f"{name}:{number}: {line.strip()}"
        for name in tracked
        for number, line in enumerate((checkout.root() / name).read_text().splitlines(), 1)
        if name != EXAMPLES and (COUNTED.search(line) or (SHARED_BY_HAND.search(line) and name != HELPER))
    ]
    assert found == []


def test_the_rule_catches_the_paths_it_forbids() -> None:
    for line in (
        'DATA = Path(__file__).resolve().parents[2] / "shared" / "data"',
        "ROOT = Path(__file__).resolve().parent.parent",
        'ROOT = os.path.join(os.path.dirname(__file__), "..")',
    ):
        assert COUNTED.search(line), line
    assert not COUNTED.search('PROTO_ROOT = Path(__file__).resolve().parent / "v1"')
    assert SHARED_BY_HAND.search('DATA = ROOT.parent / "shared" / "data"')
    assert SHARED_BY_HAND.search('DATA = here.parents[3] / "shared"')
    assert not SHARED_BY_HAND.search('clone, shared = work / "clone", work / "shared"')
