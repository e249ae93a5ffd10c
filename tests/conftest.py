"""Shared fixtures: the tiny models are built once per session through the
project's own builder, and loaded through the server's real loaders; the project's
wheel is built once for the tests that read or install it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from rerank_bridge.devtools import checkout
from rerank_bridge.proto.v1 import rerank_pb2_grpc
from rerank_bridge.server.app import BackgroundServer
from support.in_process import start_server


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rerank_bridge.devtools.tiny_models import build_cross_encoder, build_listwise

    root = tmp_path_factory.mktemp("tiny-models")
    build_listwise(root / "listwise")
    build_cross_encoder(root / "cross-encoder")
    return root


@pytest.fixture(scope="session")
def listwise_dir(tiny_models: Path) -> Path:
    return tiny_models / "listwise"


@pytest.fixture(scope="session")
def qwen_listwise_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny listwise model with the real Qwen3 tokenizer (rerank_bridge.devtools.qwen_vocab)."""
    from rerank_bridge.devtools.tiny_models import build_listwise

    return build_listwise(tmp_path_factory.mktemp("tiny-qwen3") / "listwise", vocabulary="qwen3")


@pytest.fixture(scope="session")
def cross_encoder_dir(tiny_models: Path) -> Path:
    return tiny_models / "cross-encoder"


@pytest.fixture(scope="session")
def minilm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packaged MiniLM's files linked into a folder of the test's own, so an ONNX
    export lands there and not in the installed package."""
    from rerank_bridge.server.backends.registry import builtin_minilm_folder

    folder = tmp_path_factory.mktemp("minilm")
    for entry in builtin_minilm_folder().iterdir():
        if entry.name != "onnx":
            (folder / entry.name).symlink_to(entry)
    return folder


@pytest.fixture(scope="module")
def fake_server() -> Iterator[BackgroundServer]:
    server = start_server(model="fake", max_documents=5, max_message_bytes=64 * 1024)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fake_stub(fake_server: BackgroundServer) -> Iterator[rerank_pb2_grpc.RerankerStub]:
    with grpc.insecure_channel(fake_server.address) as channel:
        yield rerank_pb2_grpc.RerankerStub(channel)


pytest_plugins = ["support.live_fixtures"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--bridge-examples",
        type=int,
        default=2000,
        help="requests the bridge's property-based boundary test tries (the long form: 20000)",
    )


@pytest.fixture(scope="session")
def bridge_examples(request: pytest.FixtureRequest) -> int:
    return int(request.config.getoption("--bridge-examples"))


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
