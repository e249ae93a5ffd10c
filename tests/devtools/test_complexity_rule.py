"""The project's lint rules stop a long orchestrator at review: ruff, with the
project's own configuration, refuses a 150-line function and takes a short one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from rerank_bridge.devtools import checkout


def lint(tmp_path: Path, lines: int) -> subprocess.CompletedProcess[str]:
    body = "".join(f"    value_{i} = {i} + total\n    total += value_{i}\n" for i in range(lines // 2))
    source = tmp_path / "orchestrator.py"
    source.write_text(f"def orchestrate(total: int) -> int:\n{body}    return total\n")
    ruff = Path(sys.executable).parent / "ruff"
    config = checkout.root() / "pyproject.toml"
    return subprocess.run(
        [str(ruff), "check", "--config", str(config), "--no-cache", str(source)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_a_150_line_function_fails_and_a_short_one_passes(tmp_path: Path) -> None:
    long = lint(tmp_path, 150)
    assert long.returncode == 1 and "PLR0915" in long.stdout, long.stdout
    short = lint(tmp_path, 40)
    assert short.returncode == 0, short.stdout
