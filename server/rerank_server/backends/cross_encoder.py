"""Pointwise cross-encoders: Hugging Face sequence-classification rerankers
(bge-reranker, ms-marco cross-encoders). One sequence per (query, document) pair.

Scores are probabilities in [0, 1]: sigmoid of the logit for single-label
heads, softmax of the last class for two-label heads, as sentence-transformers'
CrossEncoder reports them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from rerank_server.backends.base import Backend, BackendLimits, Plan, Sequence
from rerank_server.backends.encodings import pad_batch
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
    ) -> None:
        self.model_id = model_id
        self.placement = placement
        self.device = placement.device.type
        self.dtype = placement.dtype_name
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self.truncator = Truncator(self.tokenizer)
        self.model = AutoModelForSequenceClassification.from_pretrained(
            str(folder), dtype=placement.dtype, attn_implementation=placement.attention
        ).to(placement.device)
        self.model.eval()
        context = int(getattr(self.model.config, "max_position_embeddings", 512))
        self.max_length = min(context, int(self.tokenizer.model_max_length or context))
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

    @torch.inference_mode()
    def forward(self, payloads: list[Any]) -> list[Any]:
        logits = self.model(**pad_batch(self.tokenizer, payloads, self.placement.device)).logits.float()
        probabilities = torch.sigmoid(logits[:, 0]) if logits.shape[1] == 1 else logits.softmax(-1)[:, -1]
        return list(probabilities.cpu().tolist())
