"""Pointwise cross-encoders: Hugging Face sequence-classification rerankers
(bge-reranker, ms-marco cross-encoders). One sequence per (query, document) pair.

Scores are probabilities in [0, 1]: sigmoid of the logit for single-label
heads, softmax of the last class for two-label heads, as sentence-transformers'
CrossEncoder reports them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from rerank_server.backends.base import Backend, BackendLimits, Plan, Sequence
from rerank_server.backends.encodings import pad_batch, run_by_length
from rerank_server.backends.runners import EXAMPLE_TEXTS, make_runner
from rerank_server.backends.truncation import Truncator
from rerank_server.devices import Placement
from rerank_server.domain import RerankOutcome, RerankRequest, ScoredDocument, Usage


class CrossEncoderBackend(Backend):
    truncator: Truncator
    kind = "cross-encoder"

    def __init__(
        self,
        folder: Path,
        model_id: str,
        placement: Placement,
        max_query_tokens: int,
        max_document_tokens: int,
        onnx_precision: str | None = None,
    ) -> None:
        """`onnx_precision` ("float32" or "int8") runs the model on ONNX Runtime instead of torch."""
        self.model_id = model_id
        self.placement = placement
        self.device = placement.device.type
        self.dtype = onnx_precision or placement.dtype_name
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self.truncator = Truncator(self.tokenizer)
        self.pad_id = int(self.tokenizer.pad_token_id or 0)
        # The ONNX graph is exported from eager attention: ONNX Runtime runs its
        # plain MatMul/Softmax faster than the exported SDPA (2.44 s vs 2.65 s on
        # 51 MiniLM sequences of 256 tokens, this 2-core CPU).
        attention = "eager" if onnx_precision else placement.attention
        model = AutoModelForSequenceClassification.from_pretrained(
            str(folder), dtype=placement.dtype, attn_implementation=attention
        ).to(placement.device)
        model.eval()
        context = int(getattr(model.config, "max_position_embeddings", 512))
        self.max_length = min(context, int(self.tokenizer.model_max_length or context))

        def example() -> dict[str, np.ndarray]:
            queries = self.truncator.cut(list(EXAMPLE_TEXTS[:2]), 16)
            documents = self.truncator.cut(list(EXAMPLE_TEXTS[2:]), 16)
            pairs = [self.truncator.model_input(q, d) for q, d in zip(queries, documents, strict=True)]
            return pad_batch(pairs, self.pad_id)

        self.run = make_runner(
            folder, self.kind, onnx_precision, model, lambda m, x: m(**x).logits, example, placement.device
        )
        self.runtime = self.run.name
        self.group_tokens = self.run.cpu_group_tokens if placement.device.type == "cpu" else 0
        self.limits = BackendLimits(
            max_documents_per_pass=1,
            context_length=self.max_length,
            max_query_tokens=max_query_tokens,
            max_document_tokens=max_document_tokens,
        )

    def plan_rerank(self, request: RerankRequest) -> Plan[RerankOutcome]:
        # The pair must fit the model: the query keeps room for at least one
        # document token, and the document gives way to what the query leaves.
        room = self.max_length - self.truncator.special_tokens(pair=True)
        (query,) = self.truncator.cut([request.query], min(request.max_query_tokens, room - 1))
        docs = self.truncator.cut(
            [d.text for d in request.documents], min(request.max_document_tokens, room - query.tokens)
        )
        encodings = [self.truncator.model_input(query, doc) for doc in docs]
        usage = Usage(
            query_tokens=query.tokens,
            document_tokens=sum(doc.tokens for doc in docs),
            total_tokens=sum(len(e["input_ids"]) for e in encodings),
            truncated_documents=sum(doc.truncated for doc in docs),
            sequences=len(encodings),
        )

        def finish(outputs: list[Any]) -> RerankOutcome:
            scored = [
                ScoredDocument(index=i, id=d.id, score=float(outputs[i]), truncated=docs[i].truncated)
                for i, d in enumerate(request.documents)
            ]
            return RerankOutcome(scored, usage)

        return Plan([Sequence(len(e["input_ids"]), e) for e in encodings], finish)

    def forward(self, payloads: list[Any]) -> list[Any]:
        logits = torch.from_numpy(run_by_length(self.run, payloads, self.pad_id, self.group_tokens))
        probabilities = torch.sigmoid(logits[:, 0]) if logits.shape[1] == 1 else logits.softmax(-1)[:, -1]
        return list(probabilities.tolist())
