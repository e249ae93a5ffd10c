"""Domain results, and the loaded models' description, to rerank.v1 messages."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rerank_bridge.proto.v1 import rerank_pb2
from rerank_bridge.server.domain import EmbedOutcome, Passage, RerankOutcome, Timings, Usage

if TYPE_CHECKING:
    from rerank_bridge.server.runtime import Loaded

EMBEDDING_SOURCES = {
    "": rerank_pb2.EMBEDDING_SOURCE_UNSPECIFIED,
    "encoded": rerank_pb2.EMBEDDING_SOURCE_ENCODED,
    "stored": rerank_pb2.EMBEDDING_SOURCE_STORED,
    "cached": rerank_pb2.EMBEDDING_SOURCE_CACHED,
}


def usage_message(usage: Usage) -> rerank_pb2.Usage:
    return rerank_pb2.Usage(
        query_tokens=usage.query_tokens,
        document_tokens=usage.document_tokens,
        total_tokens=usage.total_tokens,
        truncated_documents=usage.truncated_documents,
        sequences=usage.sequences,
        chunks=usage.chunks,
    )


def _passage(passage: Passage | None) -> rerank_pb2.Passage | None:
    if passage is None:
        return None
    return rerank_pb2.Passage(start=passage.start, end=passage.end, score=passage.score)


def timings_message(timings: Timings, total_ms: float) -> rerank_pb2.Timings:
    return rerank_pb2.Timings(queue_ms=timings.queue_ms, compute_ms=timings.compute_ms, total_ms=total_ms)


def rerank_response(
    outcome: RerankOutcome,
    top_n: int | None,
    timings: Timings,
    total_ms: float,
    model: str,
    embeddings_fallback: str = "",
) -> rerank_pb2.RerankResponse:
    """`embeddings_fallback`: why stored vectors the request carried were encoded over
    (stored_vectors.usable), empty when none were."""
    results = [
        rerank_pb2.RerankResult(
            index=doc.index,
            id=doc.id,
            score=doc.score,
            truncated=doc.truncated,
            embedding=doc.embedding or (),
            best_passage=_passage(doc.passage),
            source=EMBEDDING_SOURCES[doc.source],
        )
        for doc in outcome.ranked(top_n)
    ]
    return rerank_pb2.RerankResponse(
        results=results,
        usage=usage_message(outcome.usage),
        timings=timings_message(timings, total_ms),
        model=model,
        query_embedding=outcome.query_embedding or (),
        embeddings_fallback=embeddings_fallback,
    )


def embed_response(
    outcome: EmbedOutcome, timings: Timings, total_ms: float, model: str
) -> rerank_pb2.EmbedResponse:
    return rerank_pb2.EmbedResponse(
        embeddings=[rerank_pb2.Embedding(values=v) for v in outcome.vectors],
        dimensions=len(outcome.vectors[0]) if outcome.vectors else 0,
        usage=usage_message(outcome.usage),
        timings=timings_message(timings, total_ms),
        model=model,
    )


def model_info_message(loaded: Loaded) -> rerank_pb2.ModelInfo:
    """What GetModelInfo answers: the loaded models and the limits requests meet."""
    limits = loaded.reranker.limits
    return rerank_pb2.ModelInfo(
        model_id=loaded.reranker.model_id,
        model_digest=loaded.reranker.digest,
        kind=loaded.reranker.kind,
        dtype=loaded.reranker.dtype,
        dtype_reason=loaded.reranker.dtype_reason,
        device=loaded.reranker.device,
        runtime=loaded.reranker.runtime,
        limits=rerank_pb2.Limits(
            max_documents_per_request=loaded.request_limits.max_documents,
            max_documents_per_pass=limits.max_documents_per_pass,
            max_query_tokens=loaded.request_limits.max_query_tokens,
            max_document_tokens=loaded.request_limits.max_document_tokens,
            context_length=limits.context_length,
            max_message_bytes=loaded.config.max_message_bytes,
            max_embed_texts=loaded.request_limits.max_embed_texts,
            max_chunks_per_document=loaded.request_limits.max_chunks_per_document,
            max_chunks_per_request=loaded.request_limits.max_chunks_per_request,
        ),
        embed_model_id=loaded.embedder.model_id if loaded.embedder else "",
        embed_model_digest=loaded.embedder.digest if loaded.embedder else "",
        embed_dimensions=(loaded.embedder.embed_dimensions or 0) if loaded.embedder else 0,
    )
