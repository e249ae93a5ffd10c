"""The local engine launcher as a process manager or a shell runs it: SIGTERM,
or SIGINT sent to a launcher in the background (where a shell has set SIGINT
to be ignored), stops the node and removes its folder."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from rerank_bridge.devtools import checkout, local_engines
from support.live_fixtures import unavailable

pytestmark = pytest.mark.live
LAUNCHER = checkout.root() / "tools" / "local_engines.py"


def _in_the_background() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # what `command &` does in a non-interactive shell


def reachable(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5):
            return True
    except OSError as error:
        return getattr(error, "code", None) is not None  # an HTTP error is still an answer


@pytest.mark.parametrize(
    ("kind", "signum"), [("opensearch", signal.SIGTERM), ("elasticsearch", signal.SIGINT)]
)
def test_a_signal_stops_the_node_and_removes_its_folder(kind: str, signum: int, tmp_path: Path) -> None:
    try:
        local_engines.fetch(kind)
    except Exception as error:
        unavailable(f"cannot fetch {kind}: {error}")
    log = tmp_path / "launcher.err"
    with log.open("w") as errors:
        launcher = subprocess.Popen(
            [sys.executable, str(LAUNCHER), "start", kind],
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            preexec_fn=_in_the_background,
        )
    try:
        assert launcher.stdout is not None
        line = launcher.stdout.readline()
        match = re.match(rf"{kind}-\S+: (\S+) \(folder (\S+)\)", line)
        if not match:
            launcher.wait(timeout=30)
            raise AssertionError(f"the launcher said {line!r}; its stderr:\n{log.read_text()[-3000:]}")
        url, folder = match.group(1), Path(match.group(2))
        assert reachable(url) and folder.is_dir()
        launcher.send_signal(signum)
        assert launcher.wait(timeout=90) == 0
        assert not folder.exists()
        assert not reachable(url)
    finally:
        launcher.kill()
        launcher.wait()
