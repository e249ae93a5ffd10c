"""What a pointwise backend (cross-encoder, bi-encoder) runs, whatever loaded it:
a model folder read by torch (torch_pointwise.py) or an exported ONNX folder read
without torch (onnx_bundle.py)."""

from __future__ import annotations

from dataclasses import dataclass

from rerank_server.backends.runners import Runner
from rerank_server.backends.truncation import Truncator


@dataclass(frozen=True)
class PointwiseModel:
    truncator: Truncator
    pad_id: int
    max_length: int  # tokens one sequence may hold, special tokens included
    run: Runner
    device: str  # "cpu" or "cuda"
    dtype: str  # "float32", "bfloat16", ... or "int8" on ONNX Runtime
    embed_dimensions: int = 0  # a bi-encoder's vector size

    @property
    def group_tokens(self) -> int:
        """Padded tokens per forward call (encodings.run_by_length): sorted small groups
        on a CPU, one batch on a GPU."""
        return self.run.cpu_group_tokens if self.device == "cpu" else 0
