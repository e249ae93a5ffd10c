"""Prometheus metrics of the scoring server (served by `--metrics-port`).

Module-level, so every server in a process shares them: a process runs one
server in production; tests that start several only read differences.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge, Histogram, Info

if TYPE_CHECKING:
    from rerank_bridge.server.backends.base import Backend

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

REQUESTS = Counter(
    "rerank_server_requests_total", "RPCs answered, by method and status code", ["method", "code"]
)
LATENCY = Histogram(
    "rerank_server_stage_seconds",
    "Time per request by stage: queue (waiting for the model), compute (forward passes), total",
    ["method", "stage"],
    buckets=LATENCY_BUCKETS,
)
QUEUE_DEPTH = Gauge("rerank_server_queue_depth", "Requests admitted and not yet answered")
BATCH_SEQUENCES = Histogram(
    "rerank_server_batch_sequences", "Sequences per forward pass", buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256)
)
TOKENS = Counter("rerank_server_tokens_total", "Tokens read by the model, by kind", ["kind"])
EMBEDDING_CACHE = Counter(
    "rerank_server_embedding_cache_total",
    "A bi-encoder's embedding cache, by model: lookups that hit or missed, entries evicted",
    ["model", "event"],
)
EMBEDDING_CACHE_BYTES = Gauge(
    "rerank_server_embedding_cache_bytes", "Bytes the embedding cache holds, by model", ["model"]
)
DOCUMENT_VECTORS = Counter(
    "rerank_server_document_vectors_total",
    "Where a bi-encoder's document vectors came from: encoded, stored (sent with the request), cached",
    ["source"],
)
STORED_VECTOR_FALLBACKS = Counter(
    "rerank_server_stored_vector_fallbacks_total",
    "Rerank requests whose stored vectors were not used, so their texts were encoded, by reason "
    "(model, dimensions, kind, chunking)",
    ["reason"],
)
MODEL = Info(
    "rerank_server_model",
    "The model serving each role (rerank, embed): what runs it, at which dtype, and why that dtype",
    ["role"],
)


def describe_model(backend: Backend, role: str) -> None:
    MODEL.labels(role=role).info(
        {
            "model": backend.model_id,
            "kind": backend.kind,
            "runtime": backend.runtime,
            "device": backend.device,
            "dtype": backend.dtype,
            "dtype_reason": backend.dtype_reason,
        }
    )
