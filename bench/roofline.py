"""The machine's ceiling for a model: FLOPs per request from the model's shape,
the measured matrix-multiply rate per precision, and the floor they give.

    .venv/bin/python bench/roofline.py            # this machine's rates as JSON

A forward pass of a transformer encoder or decoder is almost all matrix
multiplies, so `FLOPs / rate` is the least time a request can take on this
CPU at that precision: the floor the benchmarks quote each backend's share of.
Rates are medians of repeated multiplies at a model's own shapes (tokens x
hidden x intermediate), not a vendor's peak: what the kernels reach here.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rerank_bridge.server import cpu_features


@dataclass(frozen=True)
class Shape:
    """What the FLOP count needs from a model's config.json."""

    layers: int
    hidden: int
    intermediate: int
    # Query heads x head size; the key/value width (grouped-query attention) for the projections.
    attention_width: int
    key_value_width: int

    @classmethod
    def of(cls, config: dict[str, Any]) -> Shape:
        hidden = int(config["hidden_size"])
        heads = int(config["num_attention_heads"])
        head_size = int(config.get("head_dim") or hidden // heads)
        key_value_heads = int(config.get("num_key_value_heads") or heads)
        return cls(
            layers=int(config["num_hidden_layers"]),
            hidden=hidden,
            intermediate=int(config["intermediate_size"]),
            attention_width=heads * head_size,
            key_value_width=key_value_heads * head_size,
        )

    def sequence_flops(self, tokens: int, causal: bool = False, gated: bool = False) -> float:
        """Multiply-adds x 2 of one sequence: the projections and feed-forward per token,
        and attention's two products (scores and weighted values), halved when causal."""
        projections = 2 * self.hidden * self.attention_width + 2 * self.hidden * self.key_value_width
        feed_forward = (3 if gated else 2) * self.hidden * self.intermediate
        per_token = 2 * (projections + feed_forward)
        attention = 2 * 2 * tokens * tokens * self.attention_width * (0.5 if causal else 1.0)
        return float(self.layers * (per_token * tokens + attention))


def _median_seconds(run: Callable[[], object], repeats: int) -> float:
    for _ in range(2):
        run()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def torch_gflops(m: int, k: int, n: int, dtype: torch.dtype, repeats: int = 7) -> float:
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(m, k, generator=generator).to(dtype)
    b = torch.randn(k, n, generator=generator).to(dtype)
    return 2 * m * k * n / _median_seconds(lambda: a @ b, repeats) / 1e9


def onnx_int8_gflops(m: int, k: int, n: int, repeats: int = 7) -> float:
    """ONNX Runtime's dynamic int8 multiply (the node quantize_dynamic writes for a
    MatMul: activations quantised per call, int8 weights), fp32 in and out."""
    import onnx
    import onnxruntime
    from onnx import TensorProto, helper, numpy_helper

    weights = np.random.default_rng(0).integers(-127, 128, size=(k, n), dtype=np.int8)
    node = helper.make_node("DynamicQuantizeMatMul", ["a", "b", "b_scale"], ["y"], domain="com.microsoft")
    graph = helper.make_graph(
        [node],
        "int8_matmul",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [m, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])],
        [
            numpy_helper.from_array(weights, "b"),
            numpy_helper.from_array(np.array(0.01, np.float32), "b_scale"),
        ],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    )
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "int8.onnx"
        onnx.save(model, str(path))
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        a = np.random.default_rng(1).standard_normal((m, k)).astype(np.float32)
        seconds = _median_seconds(lambda: session.run(None, {"a": a}), repeats)
    return 2 * m * k * n / seconds / 1e9


def matmul_rates(shape: Shape, tokens: int, precisions: Sequence[str]) -> dict[str, float]:
    """GFLOP/s per precision at the model's two feed-forward shapes (the bulk of its
    FLOPs), the better of the two: the rate a well-fed kernel reaches here."""
    shapes = [(tokens, shape.hidden, shape.intermediate), (tokens, shape.intermediate, shape.hidden)]
    measure: dict[str, Callable[[int, int, int], float]] = {
        "float32": lambda m, k, n: torch_gflops(m, k, n, torch.float32),
        "bfloat16": lambda m, k, n: torch_gflops(m, k, n, torch.bfloat16),
        "int8": onnx_int8_gflops,
    }
    return {p: round(max(measure[p](*s) for s in shapes), 1) for p in precisions}


def minilm_shape() -> Shape:
    """The packaged all-MiniLM-L6-v2's, from its config.json."""
    from rerank_bridge.server.backends.registry import builtin_minilm_folder

    return Shape.of(json.loads((builtin_minilm_folder() / "config.json").read_text()))


def machine() -> dict[str, Any]:
    import os
    import platform

    features = cpu_features.detect()
    return {
        "cpu": features.name or platform.processor(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "features": dataclasses.asdict(features),
    }


def main() -> None:
    # At the tokens of one 50-document request.
    rates = matmul_rates(minilm_shape(), 11600, ["float32", "bfloat16", "int8"])
    print(json.dumps({"benchmark": "roofline", "machine": machine(), "matmul_gflops": rates}, indent=2))


if __name__ == "__main__":
    main()
