"""The listwise block budget on a CPU: capped by the memory free at load."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from rerank_bridge.server.backends import listwise
from rerank_bridge.server.backends.block_budget import (
    ACTIVATION_SHARE,
    activation_bytes_per_token,
    available_memory,
    cpu_block_tokens,
)
from rerank_bridge.server.backends.listwise import ListwiseBackend
from rerank_bridge.server.devices import resolve_placement
from rerank_bridge.server.domain import Document, RerankRequest

# jina-reranker-v3's decoder (Qwen3-0.6B): 16 query heads and 8 key/value heads of 128.
QWEN3_0_6B = SimpleNamespace(
    hidden_size=1024, intermediate_size=3072, num_attention_heads=16, num_key_value_heads=8, head_dim=128
)
GIB = 2**30


def test_bytes_per_token_count_every_tensor_one_layer_makes() -> None:
    # 5 x hidden 1024, 4 x query 2048, 4 x key/value 1024, 4 x intermediate 3072;
    # bf16 is 2 bytes, fp32 4.
    assert activation_bytes_per_token(QWEN3_0_6B, 2) == 2 * (5120 + 8192 + 4096 + 12288)
    assert activation_bytes_per_token(QWEN3_0_6B, 4) == 2 * activation_bytes_per_token(QWEN3_0_6B, 2)


def write(folder: Path, meminfo_kib: int | None, cgroup_max: str | None, cgroup_used: int = 0) -> Path:
    if meminfo_kib is not None:
        (folder / "meminfo").write_text(f"MemTotal: 99999999 kB\nMemAvailable: {meminfo_kib} kB\n")
    if cgroup_max is not None:
        (folder / "memory.max").write_text(cgroup_max + "\n")
        (folder / "memory.current").write_text(f"{cgroup_used}\n")
    return folder


@pytest.mark.parametrize(
    ("meminfo_kib", "cgroup_max", "used", "expected"),
    [
        (8 * 2**20, None, 0, 8 * GIB),  # a machine: MemAvailable
        (8 * 2**20, "max", 0, 8 * GIB),  # a cgroup without a limit
        (8 * 2**20, str(3 * GIB), GIB, 2 * GIB),  # a container's limit less what it uses
        (None, str(3 * GIB), 0, 3 * GIB),
        (None, None, 0, None),  # nothing readable: no cap
    ],
)
def test_free_memory_is_the_tighter_of_the_machine_and_the_container(
    tmp_path: Path, meminfo_kib: int | None, cgroup_max: str | None, used: int, expected: int | None
) -> None:
    write(tmp_path, meminfo_kib, cgroup_max, used)
    assert available_memory(tmp_path / "meminfo", tmp_path) == expected


def test_the_block_is_the_models_context_where_memory_allows_and_less_where_not() -> None:
    per_token = activation_bytes_per_token(QWEN3_0_6B, 2)
    assert cpu_block_tokens(131072, per_token, 64 * GIB, 4096) == 131072
    assert cpu_block_tokens(131072, per_token, None, 4096) == 131072
    tight = cpu_block_tokens(131072, per_token, 2 * GIB, 4096)
    assert tight % 1024 == 0
    assert tight * per_token <= 2 * GIB * ACTIVATION_SHARE < (tight + 1024) * per_token
    # Never below one request's smallest block, however little is free.
    assert cpu_block_tokens(131072, per_token, 10 * 2**20, 4096) == 4096


@pytest.mark.slow
def test_a_cpu_backend_packs_blocks_within_the_memory_cap(
    listwise_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    placement = resolve_placement("cpu", "float32")

    def backend() -> ListwiseBackend:
        return ListwiseBackend(listwise_dir, "tiny", placement, 64, 256)

    # With plenty free the block is the model's context...
    monkeypatch.setattr(listwise, "available_memory", lambda: 64 * GIB)
    roomy = backend()
    per_token = activation_bytes_per_token(roomy.model.config, 4)
    model_context = int(roomy.model.config.max_position_embeddings)
    assert roomy.limits.context_length == model_context > 1024
    # ...and with room for 1,024 tokens' activations, 1,024 tokens, which a request
    # longer than that is packed within.
    monkeypatch.setattr(listwise, "available_memory", lambda: int(1024 * per_token / ACTIVATION_SHARE))
    capped = backend()
    assert capped.limits.context_length == 1024
    request = RerankRequest(
        query="proteins",
        documents=tuple(Document(str(i), "protein cell gene " * 100) for i in range(12)),
        top_n=None,
        instruction="",
        max_query_tokens=64,
        max_document_tokens=256,
    )
    plan = capped.plan_rerank(request)
    assert len(plan.sequences) > 1
    assert all(s.num_tokens <= 1024 for s in plan.sequences)
    assert sum(len(s.payload.doc_positions) for s in plan.sequences) == 12
    # An explicit --context-length wins over the cap.
    explicit = ListwiseBackend(listwise_dir, "tiny", placement, 512, 64, context_length=100)
    assert explicit.limits.context_length == 100
