"""The precision a model runs at on a CPU follows what the CPU can multiply natively.

The CPU is described, not detected, in most of these tests (CpuFeatures is handed
down to resolve_placement and the registry), so each case runs on any machine.
"""

from __future__ import annotations

import re
import urllib.request

import grpc
import pytest
import torch

from rerank_bridge.devtools.local_engines import free_port
from rerank_bridge.proto.v1 import rerank_pb2 as pb
from rerank_bridge.proto.v1 import rerank_pb2_grpc
from rerank_bridge.server import cpu_features
from rerank_bridge.server.backends.base import run_plan
from rerank_bridge.server.backends.registry import load_backend
from rerank_bridge.server.config import BUILTIN_MINILM, ServerConfig
from rerank_bridge.server.cpu_features import CpuFeatures
from rerank_bridge.server.devices import cpu_dtype, resolve_placement
from rerank_bridge.server.domain import Document, RerankRequest
from support.server_process import start

SAPPHIRE_RAPIDS = CpuFeatures("Xeon", amx_bf16=True, amx_int8=True, avx512_bf16=True, avx512_vnni=True)
ZEN4 = CpuFeatures("EPYC", avx512_bf16=True, avx512_vnni=True)
SKYLAKE = CpuFeatures("Xeon", avx512_vnni=False)
ICE_LAKE = CpuFeatures("Xeon", avx512_vnni=True)


@pytest.mark.parametrize(
    ("cpu", "dtype", "named"),
    [
        (SAPPHIRE_RAPIDS, torch.bfloat16, "AMX-BF16"),
        (ZEN4, torch.bfloat16, "AVX512-BF16"),
        (SKYLAKE, torch.float32, "neither AMX-BF16 nor AVX512-BF16"),
        (ICE_LAKE, torch.float32, "neither AMX-BF16 nor AVX512-BF16"),
    ],
)
def test_auto_picks_bf16_only_where_the_cpu_multiplies_it_natively(
    cpu: CpuFeatures, dtype: torch.dtype, named: str
) -> None:
    placement = resolve_placement("cpu", "auto", cpu=cpu)
    assert placement.dtype == dtype
    assert named in placement.dtype_reason


@pytest.mark.parametrize("cpu", [SAPPHIRE_RAPIDS, SKYLAKE])
def test_an_explicit_dtype_overrides_the_features(cpu: CpuFeatures) -> None:
    for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        placement = resolve_placement("cpu", name, cpu=cpu)
        assert (placement.dtype, placement.dtype_reason) == (dtype, "set explicitly (--dtype)")


def test_an_unknown_dtype_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="dtype must be one of auto, float32, bfloat16, float16; got 'fp8'"):
        resolve_placement("cpu", "fp8", cpu=ZEN4)


def test_detection_reads_torchs_cpu_capabilities() -> None:
    capabilities = torch.cpu.get_capabilities()
    detected = cpu_features.detect()
    for flag in ("amx_bf16", "amx_int8", "avx512_bf16", "avx512_vnni"):
        assert getattr(detected, flag) == bool(capabilities.get(flag)), flag


@pytest.mark.slow
def test_a_loaded_model_runs_at_the_chosen_dtype() -> None:
    config = ServerConfig(model=BUILTIN_MINILM, embed_model="none")
    with_bf16, without = load_backend(config, ZEN4), load_backend(config, SKYLAKE)
    assert (with_bf16.dtype, with_bf16.dtype_reason) == ("bfloat16", cpu_dtype(ZEN4)[1])
    assert (without.dtype, without.dtype_reason) == ("float32", cpu_dtype(SKYLAKE)[1])
    # The weights themselves, not only the label: the same request scores differently.
    request = RerankRequest(
        query="which proteins change with age",
        documents=tuple(
            Document(str(i), f"passage {i} on immune proteins in older patients") for i in range(4)
        ),
        top_n=None,
        instruction="",
        max_query_tokens=512,
        max_document_tokens=512,
    )
    fast, exact = (
        [d.score for d in run_plan(b, b.plan_rerank(request)).scored] for b in (with_bf16, without)
    )
    assert fast != exact
    assert fast == pytest.approx(exact, abs=0.02)


@pytest.mark.slow
def test_model_info_and_the_metrics_say_which_dtype_and_why() -> None:
    """A served model on this machine: what it reports is what its features choose."""
    expected_dtype, expected_reason = cpu_dtype(cpu_features.detect())
    metrics_port = free_port()
    process, address = start("--model", BUILTIN_MINILM, "--metrics-port", str(metrics_port))
    try:
        with grpc.insecure_channel(address) as channel:
            info = rerank_pb2_grpc.RerankerStub(channel).GetModelInfo(pb.GetModelInfoRequest(), timeout=30)
        assert info.dtype == str(expected_dtype).removeprefix("torch.")
        assert info.dtype_reason == expected_reason
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as response:
            text = response.read().decode()
        line = re.search(r'^rerank_server_model_info\{[^}]*role="rerank"[^}]*\} 1\.0$', text, re.MULTILINE)
        assert line, text
        assert f'dtype="{info.dtype}"' in line.group(0)
        assert f'dtype_reason="{expected_reason}"' in line.group(0)
    finally:
        process.terminate()
        process.wait(timeout=60)
