"""The library as an application installs it: `pip install rerank-bridge` (the core
extra alone) into an empty virtual environment, then import the public API. Nothing
heavy may come with it: no torch or transformers (the server's), no aiohttp (the
bridge's), no engine client (the application brings its own)."""

from __future__ import annotations

import json
import subprocess
import venv
from pathlib import Path

import pytest

HEAVY = ("torch", "transformers", "aiohttp", "elasticsearch", "opensearchpy", "numpy")
PROBE = f"""
import json, sys
import rerank_bridge.search
from rerank_bridge.search import AsyncRerankingSearch, RerankClient, RerankingSearch, RerankSettings
from rerank_bridge.search.dialects import Elasticsearch, OpenSearch
print(json.dumps(sorted(name for name in {HEAVY!r} if name in sys.modules)))
"""


@pytest.mark.slow
def test_the_core_install_imports_the_library_and_nothing_heavy(tmp_path: Path, project_wheel: Path) -> None:
    env = tmp_path / "env"
    venv.create(env, with_pip=True)
    python = env / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "--quiet", str(project_wheel)], check=True, timeout=600)
    installed = subprocess.run([python, "-m", "pip", "list", "--format=json"], capture_output=True, text=True)
    names = {package["name"].lower() for package in json.loads(installed.stdout)}
    assert "grpcio" in names and not names & {"torch", "transformers", "aiohttp", "elasticsearch"}, names
    probe = subprocess.run([python, "-c", PROBE], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert probe.returncode == 0, probe.stderr
    assert json.loads(probe.stdout) == []
