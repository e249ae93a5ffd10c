"""The benchmarks' FLOP count from a model's shape (bench/roofline.py) against
torch's own count of the forward pass it stands for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import AutoModel

from rerank_bridge.server.backends.registry import builtin_minilm_folder
from roofline import Shape

pytestmark = pytest.mark.slow


def counted(folder: Path, tokens: int) -> int:
    model = AutoModel.from_pretrained(str(folder), attn_implementation="sdpa").eval()
    # Ids every vocabulary here holds (the tiny trained one has 669).
    ids = torch.randint(10, 600, (1, tokens), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(input_ids=ids)
    return int(counter.get_total_flops())


@pytest.mark.parametrize("tokens", [32, 230])
def test_minilm_flops_from_its_shape_match_torchs_count(tokens: int) -> None:
    folder = builtin_minilm_folder()
    shape = Shape.of(json.loads((folder / "config.json").read_text()))
    # torch also counts BERT's pooler (one hidden x hidden layer), which the shape leaves out.
    assert shape.sequence_flops(tokens) == pytest.approx(counted(folder, tokens), rel=0.01)


def test_the_listwise_decoders_flops_from_its_shape_match_torchs_count(listwise_dir: Path) -> None:
    """Gated feed-forward and grouped-query projections. torch counts attention in full;
    the shape halves it only when asked to (causal=True), for kernels that skip the
    masked half."""
    shape = Shape.of(json.loads((listwise_dir / "config.json").read_text()))
    full = shape.sequence_flops(300, gated=True)
    assert full == pytest.approx(counted(listwise_dir, 300), rel=0.01)
    assert shape.sequence_flops(300, causal=True, gated=True) < full
