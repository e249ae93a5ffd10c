"""What runs a pointwise model's forward pass: torch (torch_pointwise.py), or
ONNX Runtime on CPU (here, importable without torch).

Both take the padded batch as numpy arrays (encodings.pad_batch) and give one
float32 numpy row per sequence, so a backend's planning and scoring code is the
same whichever runs the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

Batch = dict[str, np.ndarray]
# Texts for the export's example batch: two of each kind and of different
# lengths, so the exporter keeps batch and sequence sizes dynamic (it fixes a
# size it only ever saw as 1).
EXAMPLE_TEXTS = ("a query", "a second, longer query", "a document", "another document, a little longer")


class Runner(Protocol):
    name: str
    cpu_group_tokens: int

    def __call__(self, batch: Batch) -> np.ndarray: ...


class OnnxRunner:
    name = "onnxruntime"
    # Padded tokens per forward call on a CPU (encodings.run_by_length). ONNX
    # Runtime does best with smaller groups than torch (int8 MiniLM, fifty ~200-token
    # passages: 1,120 ms as one batch, 948 ms in groups of 1,024; bench/pointwise_groups.py).
    cpu_group_tokens = 1024

    def __init__(self, path: Path, threads: int) -> None:
        """`threads`: intra-op threads; 0 leaves ONNX Runtime's default (one per physical core)."""
        import onnxruntime

        options = onnxruntime.SessionOptions()
        # One forward at a time (the scheduler's worker): all cores go to it.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.path = path
        self._session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self._session.get_inputs()]

    def __call__(self, batch: Batch) -> np.ndarray:
        (output,) = self._session.run(None, {name: batch[name] for name in self.input_names})
        return np.asarray(output, dtype=np.float32)


POOLINGS = ("cls", "mean")


class PoolingRunner:
    """A graph that gives every token's hidden state (`last_hidden_state`, as encoders
    exported by others do), pooled here into one vector per sequence: the first
    token's (`cls`, BGE) or the mean over the attention mask (`mean`, E5), then
    L2-normalised where the model's embeddings are. The model's bytes stay as
    published, so parity with ONNX Runtime on the raw graph is exact up to pooling."""

    def __init__(self, inner: OnnxRunner, pooling: str, normalize: bool) -> None:
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
        self.name = inner.name
        self.cpu_group_tokens = inner.cpu_group_tokens
        self.path = inner.path
        self.pooling = pooling
        self.normalize = normalize
        self._inner = inner

    def __call__(self, batch: Batch) -> np.ndarray:
        hidden = self._inner(batch)
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = batch["attention_mask"].astype(np.float32)[:, :, None]
            pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
        if self.normalize:
            pooled = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return np.asarray(pooled, dtype=np.float32)
