"""The version matrix's older row: Elasticsearch 8.19 and OpenSearch 2.19 (the
neural-search release), each with the client major made for it.

One Python process holds one major of each client, so this test runs the
connector, bridge and eval live suites in a pytest of their own with the older
clients first on the path (.clients/previous, made by tools/install.sh); a bare
engine kind then starts the release of that major. The rest of the suite runs
the newest row: Elasticsearch 9.2 with elasticsearch 9.x and OpenSearch 3.5 with
opensearch-py 3.x."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from rerank_bridge.devtools import checkout
from support.live_fixtures import unavailable

pytestmark = [pytest.mark.live, pytest.mark.slow]
PREVIOUS_CLIENTS = checkout.root() / ".clients" / "previous"
LIVE_SUITES = (
    "tests/search/test_live_search.py",
    "tests/bridge/test_bridge_live.py",
    "tests/bridge/test_bridge_clients.py",
    "tests/evaluation/test_eval.py",
    "tests/wiring/test_opensearch_native.py",
)
EXPECTED = {"elasticsearch": "8.19.", "opensearch": "2.19."}


def test_the_previous_majors_pass_the_live_suites_with_their_own_clients(tmp_path: Path) -> None:
    if not (PREVIOUS_CLIENTS / "elasticsearch").is_dir():
        unavailable(f"the previous client majors are not installed in {PREVIOUS_CLIENTS} (tools/install.sh)")
    report = tmp_path / "previous-majors.xml"
    env = {key: value for key, value in os.environ.items() if key not in ("ES_URL", "OS_URL")}
    env["PYTHONPATH"] = os.pathsep.join([str(PREVIOUS_CLIENTS), env.get("PYTHONPATH", "")])
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={report}",
            *LIVE_SUITES,
        ],
        cwd=checkout.root(),
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    suite = ElementTree.parse(report).getroot().find("testsuite")
    assert suite is not None
    assert suite.get("skipped") == suite.get("failures") == suite.get("errors") == "0"
    cases = [(case.get("classname", ""), case.get("name", "")) for case in suite.iter("testcase")]
    for module in LIVE_SUITES:
        assert any(classname == module[:-3].replace("/", ".") for classname, _ in cases), module
    for kind in EXPECTED:
        assert sum(f"[{kind}" in name for _, name in cases) >= 20, kind
    properties = {
        prop.get("name"): prop.get("value", "")
        for prop in suite.iter("property")
        if prop.get("name", "").endswith("version")
    }
    for kind, release in EXPECTED.items():
        assert properties[f"{kind}_version"].startswith(release), properties
        assert properties[f"{kind}_client_version"].split(".")[0] == release.split(".")[0], properties
