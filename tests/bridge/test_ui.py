"""The bridge's /ui page in headless Chromium, against a real engine: what a
person sees is two top-ten lists, rank movements and the reranker's name."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from rerank_bridge.bridge.config import BridgeConfig
from rerank_bridge.server.app import BackgroundServer
from support.bridge_runner import RunningBridge
from support.live_fixtures import Corpus, Engine, unavailable

pytestmark = pytest.mark.live
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=20000",
]


@pytest.fixture
def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        unavailable("Debian's chromium package is not installed")
    assert path is not None
    return path


@pytest.fixture
def bridge(engine: Engine, scoring_server: BackgroundServer) -> Iterator[RunningBridge]:
    with RunningBridge(BridgeConfig(engine_url=engine.url, reranker=scoring_server.address)) as running:
        yield running


def browse(chromium: str, url: str, profile: Path, *extra: str) -> str:
    result = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, url],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HOME": str(profile)},
    )
    return result.stdout


def test_ui_shows_first_stage_and_reranked_lists_side_by_side(
    engine: Engine, bridge: RunningBridge, corpus: Corpus, chromium: str, tmp_path: Path
) -> None:
    query = str(corpus.queries[3]["text"])
    params = urllib.parse.urlencode({"index": engine.index, "q": query, "fields": "text"})
    url = f"{bridge.url}/ui?{params}"
    dom = browse(chromium, url, tmp_path / "profile", "--dump-dom")
    assert 'data-ready="1"' in dom, dom[-2000:]
    first = re.search(r'<ol id="first">(.*?)</ol>', dom, re.S)
    reranked = re.search(r'<ol id="reranked">(.*?)</ol>', dom, re.S)
    assert first and reranked
    assert first.group(1).count("<li>") == 10 and reranked.group(1).count("<li>") == 10
    assert "reranked by all-MiniLM-L6-v2" in dom
    movements = [int(m) for m in re.findall(r'data-movement="(-?\d+)"', reranked.group(1))]
    assert len(movements) == 10 and any(m != 0 for m in movements)
    # The first reranked item is the one the server scores best among the window.
    assert re.search(r"[↑↓=]", reranked.group(1))
    browse(
        chromium,
        url,
        tmp_path / "profile2",
        "--screenshot=" + str(tmp_path / "ui.png"),
        "--window-size=1280,900",
    )
    assert (tmp_path / "ui.png").stat().st_size > 10_000
