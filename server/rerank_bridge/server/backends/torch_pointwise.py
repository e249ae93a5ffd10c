"""Pointwise models loaded with torch from a Hugging Face or sentence-transformers
folder, and run by torch or, with an ONNX precision, by ONNX Runtime on the graph
exported from the loaded module (onnx_export.py caches it beside the model)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from sentence_transformers import SentenceTransformer
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from rerank_bridge.server.backends import onnx_export
from rerank_bridge.server.backends.bi_encoder import BiEncoderBackend
from rerank_bridge.server.backends.cross_encoder import CrossEncoderBackend
from rerank_bridge.server.backends.encodings import pad_batch
from rerank_bridge.server.backends.pointwise import PointwiseModel
from rerank_bridge.server.backends.runners import EXAMPLE_TEXTS, Batch, OnnxRunner, Runner
from rerank_bridge.server.backends.truncation import Truncator
from rerank_bridge.server.devices import Placement
from rerank_bridge.server.domain import Prompts

log = logging.getLogger(__name__)


class TorchRunner:
    name = "torch"
    # Padded tokens per forward call on a CPU (encodings.run_by_length): the fastest
    # size for MiniLM on fifty ~200-token passages, bench/pointwise_groups.py (fp32:
    # 2,265 ms as one batch, 1,902 ms in groups of 2,048; bf16 1,179 ms, within 3 % of
    # its best, 1,024; this 2-core CPU).
    cpu_group_tokens = 2048

    def __init__(self, call: Callable[[dict[str, torch.Tensor]], torch.Tensor], device: torch.device) -> None:
        self._call = call
        self._device = device

    @torch.inference_mode()
    def __call__(self, batch: Batch) -> np.ndarray:
        tensors = {name: torch.from_numpy(array).to(self._device) for name, array in batch.items()}
        return self._call(tensors).float().cpu().numpy()


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


def onnx_reason(precision: str) -> str:
    if precision == "int8":
        return "ONNX Runtime int8: --runtime onnx --dtype int8 (dynamic quantisation)"
    return "ONNX Runtime float32: --runtime onnx runs float32 unless --dtype int8"


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


def load_cross_encoder(
    folder: Path,
    model_id: str,
    placement: Placement,
    max_query_tokens: int,
    max_document_tokens: int,
    onnx_precision: str | None = None,
) -> CrossEncoderBackend:
    """`onnx_precision` ("float32" or "int8") runs the model on ONNX Runtime instead of torch."""
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    truncator = Truncator.of(tokenizer)
    pad_id = int(tokenizer.pad_token_id or 0)
    # The ONNX graph is exported from eager attention: ONNX Runtime runs its
    # plain MatMul/Softmax faster than the exported SDPA (2.44 s vs 2.65 s on
    # 51 MiniLM sequences of 256 tokens, this 2-core CPU).
    attention = "eager" if onnx_precision else placement.attention
    model = AutoModelForSequenceClassification.from_pretrained(
        str(folder), dtype=placement.dtype, attn_implementation=attention
    ).to(placement.device)
    model.eval()
    context = int(getattr(model.config, "max_position_embeddings", 512))

    def example() -> Batch:
        queries = truncator.cut(list(EXAMPLE_TEXTS[:2]), 16)
        documents = truncator.cut(list(EXAMPLE_TEXTS[2:]), 16)
        pairs = [truncator.model_input(q, d) for q, d in zip(queries, documents, strict=True)]
        return pad_batch(pairs, pad_id)

    run = make_runner(
        folder, "cross-encoder", onnx_precision, model, lambda m, x: m(**x).logits, example, placement.device
    )
    loaded = PointwiseModel(
        truncator=truncator,
        pad_id=pad_id,
        max_length=min(context, int(tokenizer.model_max_length or context)),
        run=run,
        device=placement.device.type,
        dtype=onnx_precision or placement.dtype_name,
        dtype_reason=onnx_reason(onnx_precision) if onnx_precision else placement.dtype_reason,
    )
    return CrossEncoderBackend(model_id, loaded, max_query_tokens, max_document_tokens)


def load_bi_encoder(
    folder: Path,
    model_id: str,
    placement: Placement,
    max_query_tokens: int,
    max_document_tokens: int,
    onnx_precision: str | None = None,
) -> BiEncoderBackend:
    """`onnx_precision` ("float32" or "int8") runs the model on ONNX Runtime instead of torch."""
    # Eager attention for the export, as in load_cross_encoder.
    arguments = {"attn_implementation": "eager"} if onnx_precision else {}
    model = SentenceTransformer(str(folder), device=str(placement.device), model_kwargs=arguments)
    model.to(placement.dtype)
    model.eval()
    truncator = Truncator.of(model.tokenizer)
    pad_id = int(model.tokenizer.pad_token_id or 0)
    max_length = int(model.max_seq_length)

    def example() -> Batch:
        limit = min(16, max_length - truncator.special_tokens(pair=False))
        cuts = truncator.cut(list(EXAMPLE_TEXTS), limit)
        return pad_batch([truncator.model_input(cut) for cut in cuts], pad_id)

    run = make_runner(
        folder,
        "bi-encoder",
        onnx_precision,
        model,
        lambda m, x: m(x)["sentence_embedding"],
        example,
        placement.device,
    )
    loaded = PointwiseModel(
        truncator=truncator,
        pad_id=pad_id,
        max_length=max_length,
        run=run,
        device=placement.device.type,
        dtype=onnx_precision or placement.dtype_name,
        dtype_reason=onnx_reason(onnx_precision) if onnx_precision else placement.dtype_reason,
        embed_dimensions=int(model.get_embedding_dimension() or 0),
        prompts=Prompts.of(model.prompts),
    )
    return BiEncoderBackend(model_id, loaded, max_query_tokens, max_document_tokens)
