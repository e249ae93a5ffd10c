"""What a pointwise backend (cross-encoder, bi-encoder) runs, whatever loaded it:
a model folder read by torch (torch_pointwise.py) or an exported ONNX folder read
without torch (onnx_bundle.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rerank_bridge.server.backends.base import Backend, BackendLimits
from rerank_bridge.server.backends.encodings import run_by_length
from rerank_bridge.server.backends.runners import Runner
from rerank_bridge.server.backends.truncation import Truncator
from rerank_bridge.server.domain import Prompts


@dataclass(frozen=True)
class PointwiseModel:
    truncator: Truncator
    pad_id: int
    max_length: int  # tokens one sequence may hold, special tokens included
    run: Runner
    device: str  # "cpu" or "cuda"
    dtype: str  # "float32", "bfloat16", ... or "int8" on ONNX Runtime
    dtype_reason: str
    embed_dimensions: int = 0  # a bi-encoder's vector size
    prompts: Prompts = field(default_factory=Prompts)  # a bi-encoder's

    @property
    def group_tokens(self) -> int:
        """Padded tokens per forward call (encodings.run_by_length): sorted small groups
        on a CPU, one batch on a GPU."""
        return self.run.cpu_group_tokens if self.device == "cpu" else 0


class PointwiseBackend(Backend):
    """What cross-encoders and bi-encoders share: one sequence per pair or text, at most
    the model's length, run shortest first in groups (encodings.run_by_length)."""

    def __init__(
        self, model_id: str, model: PointwiseModel, max_query_tokens: int, max_document_tokens: int
    ) -> None:
        self.model_id = model_id
        self.model = model
        self.truncator = model.truncator
        self.device = model.device
        self.dtype = model.dtype
        self.dtype_reason = model.dtype_reason
        self.runtime = model.run.name
        # Padded tokens per forward call (bench/pointwise_groups.py varies it).
        self.group_tokens = model.group_tokens
        self.limits = BackendLimits(
            max_documents_per_pass=1,
            context_length=model.max_length,
            max_query_tokens=max_query_tokens,
            max_document_tokens=max_document_tokens,
        )

    def run_model(self, payloads: list[Any]) -> np.ndarray:
        """One output row per payload, in order."""
        return run_by_length(self.model.run, payloads, self.model.pad_id, self.group_tokens)
