"""The project's wheel, built once for the layer tests that read or install it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rerank_bridge.devtools import checkout


@pytest.fixture(scope="session")
def project_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel `pip wheel` builds from the checkout, as PyPI would get it."""
    wheels = tmp_path_factory.mktemp("wheels")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--wheel-dir",
            str(wheels),
            str(checkout.root()),
        ],
        check=True,
        timeout=600,
    )
    (wheel,) = wheels.glob("rerank_bridge-*.whl")
    return wheel
