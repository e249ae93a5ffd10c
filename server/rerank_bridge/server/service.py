"""The rerank.v1 servicer: a thin translator (messages -> domain -> scheduler -> response_messages)."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from grpc import aio

from rerank_bridge.proto.v1 import rerank_pb2, rerank_pb2_grpc
from rerank_bridge.server import chunking, response_messages, stored_vectors, validation
from rerank_bridge.server.domain import Timings, Usage
from rerank_bridge.server.errors import DeadlineExceeded, Unimplemented
from rerank_bridge.server.metrics import LATENCY, TOKENS

if TYPE_CHECKING:
    from rerank_bridge.server.runtime import Runtime


def _deadline(context: aio.ServicerContext) -> float | None:
    """The client's deadline on the monotonic clock, refusing one already past."""
    remaining = context.time_remaining()
    if remaining is None:
        return None
    if remaining <= 0:
        raise DeadlineExceeded("the request's deadline passed before it was read")
    return time.monotonic() + float(remaining)


def record(method: str, timings: Timings, usage: Usage) -> None:
    LATENCY.labels(method, "queue").observe(timings.queue_ms / 1e3)
    LATENCY.labels(method, "compute").observe(timings.compute_ms / 1e3)
    TOKENS.labels("query").inc(usage.query_tokens)
    TOKENS.labels("document").inc(usage.document_tokens)
    TOKENS.labels("total").inc(usage.total_tokens)


class RerankerService(rerank_pb2_grpc.RerankerServicer):  # type: ignore[misc]
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    async def Rerank(
        self, request: rerank_pb2.RerankRequest, context: aio.ServicerContext
    ) -> rerank_pb2.RerankResponse:
        started = time.perf_counter()
        loaded = self._runtime.require_ready()
        validation.check_model(request.model, loaded.reranker.model_id)
        domain = validation.rerank_request(request, loaded.request_limits, loaded.reranker.returns_embeddings)
        domain, embeddings_fallback = stored_vectors.usable(domain, loaded.reranker)
        deadline = _deadline(context)
        # Tokenising fifty documents takes milliseconds: keep it off the event loop.
        limit = loaded.request_limits.max_chunks_per_request
        plan = await asyncio.to_thread(chunking.plan, loaded.reranker, domain, limit)
        outcome, timings = await loaded.rerank_scheduler.run(plan, deadline)
        record("Rerank", timings, outcome.usage)
        total_ms = (time.perf_counter() - started) * 1e3
        return response_messages.rerank_response(
            outcome, domain.top_n, timings, total_ms, loaded.reranker.model_id, embeddings_fallback
        )

    async def Embed(
        self, request: rerank_pb2.EmbedRequest, context: aio.ServicerContext
    ) -> rerank_pb2.EmbedResponse:
        started = time.perf_counter()
        loaded = self._runtime.require_ready()
        if loaded.embedder is None or loaded.embed_scheduler is None:
            raise Unimplemented("this server hosts no embedding model (start it with --embed-model)")
        validation.check_model(request.model, loaded.embedder.model_id)
        domain = validation.embed_request(request, loaded.request_limits)
        deadline = _deadline(context)
        plan = await asyncio.to_thread(loaded.embedder.plan_embed, domain)
        outcome, timings = await loaded.embed_scheduler.run(plan, deadline)
        record("Embed", timings, outcome.usage)
        total_ms = (time.perf_counter() - started) * 1e3
        return response_messages.embed_response(outcome, timings, total_ms, loaded.embedder.model_id)

    async def GetModelInfo(
        self, request: rerank_pb2.GetModelInfoRequest, context: aio.ServicerContext
    ) -> rerank_pb2.ModelInfo:
        return response_messages.model_info_message(self._runtime.require_ready())
