"""The committed stubs are exactly what the pinned generator makes from the .proto."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from rerank_bridge.devtools import checkout

ROOT = checkout.root()


def test_generated_stubs_match_the_proto(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(ROOT / "proto" / "generate.py"), "--out", str(tmp_path)], check=True)
    fresh = sorted([*tmp_path.rglob("*_pb2*"), *tmp_path.rglob("*.protoset")])
    assert fresh, "the generator wrote nothing"
    for path in fresh:
        committed = ROOT / "proto" / path.relative_to(tmp_path)
        assert committed.exists(), f"{committed} is missing: run python proto/generate.py"
        assert committed.read_bytes() == path.read_bytes(), (
            f"{committed} is stale: run python proto/generate.py"
        )
