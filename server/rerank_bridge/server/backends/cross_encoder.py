"""Pointwise cross-encoders: Hugging Face sequence-classification rerankers
(bge-reranker, ms-marco cross-encoders). One sequence per (query, document) pair.

Scores are probabilities in [0, 1]: sigmoid of the logit for single-label
heads, softmax of the last class for two-label heads, as sentence-transformers'
CrossEncoder reports them. Nothing here imports torch: the model comes loaded
(torch_pointwise.load_cross_encoder, or onnx_bundle.load for an exported folder).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rerank_bridge.server.backends.base import Plan, Sequence
from rerank_bridge.server.backends.pointwise import PointwiseBackend
from rerank_bridge.server.domain import RerankOutcome, RerankRequest, ScoredDocument, Usage


def probabilities(logits: np.ndarray) -> np.ndarray:
    """Each row's relevance probability: sigmoid of one logit, or softmax's last class."""
    if logits.shape[1] == 1:
        return np.asarray(1.0 / (1.0 + np.exp(-logits[:, 0])), dtype=np.float32)
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return np.asarray(shifted[:, -1] / shifted.sum(axis=1), dtype=np.float32)


class CrossEncoderBackend(PointwiseBackend):
    kind = "cross-encoder"

    def plan_rerank(self, request: RerankRequest) -> Plan[RerankOutcome]:
        # The pair must fit the model: the query keeps room for at least one
        # document token, and the document gives way to what the query leaves.
        truncator = self.model.truncator
        room = self.model.max_length - truncator.special_tokens(pair=True)
        (query,) = truncator.cut([request.query], min(request.max_query_tokens, room - 1))
        docs = truncator.cut(
            [d.text for d in request.documents], min(request.max_document_tokens, room - query.tokens)
        )
        encodings = [truncator.model_input(query, doc) for doc in docs]
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
        return list(probabilities(self.run_model(payloads)).tolist())
