"""What runs a pointwise model's forward pass: torch, or ONNX Runtime on CPU.

Both take the padded batch as numpy arrays (encodings.pad_batch) and give one
float32 numpy row per sequence, so a backend's planning and scoring code is the
same whichever runs the model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from rerank_server.backends import onnx_export

log = logging.getLogger(__name__)

Batch = dict[str, np.ndarray]
# Texts for the export's example batch: two of each kind and of different
# lengths, so the exporter keeps batch and sequence sizes dynamic (it fixes a
# size it only ever saw as 1).
EXAMPLE_TEXTS = ("a query", "a second, longer query", "a document", "another document, a little longer")


class Runner(Protocol):
    name: str
    cpu_group_tokens: int

    def __call__(self, batch: Batch) -> np.ndarray: ...


class TorchRunner:
    name = "torch"
    # Padded tokens per forward call on a CPU (encodings.run_by_length): the fastest
    # size for MiniLM on fifty ~200-token passages, bench/pointwise_groups.py
    # (2,422 ms as one batch, 1,897 ms in groups of 2,048, this 2-core CPU).
    cpu_group_tokens = 2048

    def __init__(self, call: Callable[[dict[str, torch.Tensor]], torch.Tensor], device: torch.device) -> None:
        self._call = call
        self._device = device

    @torch.inference_mode()
    def __call__(self, batch: Batch) -> np.ndarray:
        tensors = {name: torch.from_numpy(array).to(self._device) for name, array in batch.items()}
        return self._call(tensors).float().cpu().numpy()


class OnnxRunner:
    name = "onnxruntime"
    # As TorchRunner's; ONNX Runtime does best with smaller groups (int8: 1,120 ms
    # as one batch, 948 ms in groups of 1,024).
    cpu_group_tokens = 1024

    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        # One forward at a time (the scheduler's worker): all cores go to it.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self._session.get_inputs()]

    def __call__(self, batch: Batch) -> np.ndarray:
        (output,) = self._session.run(None, {name: batch[name] for name in self.input_names})
        return np.asarray(output, dtype=np.float32)


class _NamedInputs(torch.nn.Module):
    """The encoders' inputs as named arguments (what the exporter traces) to the
    dict a model's call takes; an input the model does not read stays None."""

    def __init__(self, module: torch.nn.Module, call: Callable[..., torch.Tensor]) -> None:
        super().__init__()
        self.module = module
        self.call = call

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        given = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        return self.call(self.module, {name: value for name, value in given.items() if value is not None})


def make_runner(
    folder: Path,
    name: str,
    onnx_precision: str | None,
    module: torch.nn.Module,
    call: Callable[[torch.nn.Module, dict[str, torch.Tensor]], torch.Tensor],
    example: Callable[[], Batch],
    device: torch.device,
) -> Runner:
    """torch on `module`, or, with `onnx_precision`, the model exported from it (on its
    first load only) and opened in ONNX Runtime. `example()` gives a small padded
    batch with every input the model reads, for the export."""
    if not onnx_precision:
        return TorchRunner(lambda batch: call(module, batch), device)

    def build() -> tuple[torch.nn.Module, dict[str, torch.Tensor], str]:
        wrapper = _NamedInputs(module, call).eval()
        return wrapper, {key: torch.from_numpy(array) for key, array in example().items()}, "output"

    path = onnx_export.exported_model(folder, name, onnx_precision, build)
    log.info("ONNX Runtime serves %s from %s", folder, path)
    return OnnxRunner(path, torch.get_num_threads())
