"""The scoring server through the gRPC tools users reach for, with the
published descriptor set (proto/rerank_bridge/proto/v1/rerank.protoset):
grpcurl lists, describes and calls it, and ghz runs a short load."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest

from rerank_bridge.devtools import checkout
from rerank_bridge.server.app import BackgroundServer
from support.in_process import start_server
from support.live_fixtures import unavailable

ROOT = checkout.root()
PROTOSET = checkout.package_folder("rerank_bridge.proto.v1") / "rerank.protoset"
REQUEST = {
    "query": "river city",
    "documents": [{"id": "a", "text": "the river"}, {"id": "b", "text": "a city by the river"}],
    "top_n": 1,
}


def tool(name: str) -> str:
    path = ROOT / ".tools" / "bin" / name
    if not path.exists():
        unavailable(f"{name} is not installed: bash tools/install.sh builds it with Go")
    return str(path)


@pytest.fixture(scope="module")
def server() -> Iterator[BackgroundServer]:
    running = start_server(model="fake")
    yield running
    running.stop()


def run(*command: str) -> str:
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_grpcurl_reads_the_protoset_and_calls_rerank(server: BackgroundServer) -> None:
    grpcurl = tool("grpcurl")
    protoset = ["-protoset", str(PROTOSET)]
    assert "rerank.v1.Reranker" in run(grpcurl, *protoset, "list").split()
    described = run(grpcurl, *protoset, "describe", "rerank.v1.RerankRequest")
    assert "optional int32 top_n" in described and "repeated .rerank.v1.Document documents" in described
    answer = json.loads(
        run(
            grpcurl,
            "-plaintext",
            *protoset,
            "-d",
            json.dumps(REQUEST),
            server.address,
            "rerank.v1.Reranker/Rerank",
        )
    )
    assert [result["id"] for result in answer["results"]] == ["b"] and answer["model"] == "fake"
    # Without the protoset, through the server's reflection.
    assert "rerank.v1.Reranker" in run(grpcurl, "-plaintext", server.address, "list").split()


def test_ghz_loads_the_server_with_the_protoset(server: BackgroundServer) -> None:
    ghz = tool("ghz")
    summary = json.loads(
        run(
            ghz,
            "--insecure",
            "--protoset",
            str(PROTOSET),
            "--call",
            "rerank.v1.Reranker/Rerank",
            "-d",
            json.dumps(REQUEST),
            "-n",
            "40",
            "-c",
            "4",
            "--format",
            "json",
            server.address,
        )
    )
    assert summary["count"] == 40 and summary["statusCodeDistribution"] == {"OK": 40}
