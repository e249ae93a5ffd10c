"""The loaded models and their schedulers, and whether they are ready to serve.

The gRPC server starts listening before the models load (so health checks can
answer NOT_SERVING meanwhile); Runtime is what the servicer asks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from rerank_bridge.server import metrics
from rerank_bridge.server.backends.base import Backend
from rerank_bridge.server.backends.registry import load_backend, load_embedder
from rerank_bridge.server.config import ServerConfig
from rerank_bridge.server.cpu_features import CpuFeatures
from rerank_bridge.server.embedding_cache import EmbeddingCache
from rerank_bridge.server.errors import Unavailable
from rerank_bridge.server.scheduler import Scheduler
from rerank_bridge.server.validation import RequestLimits

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Loaded:
    config: ServerConfig
    reranker: Backend
    rerank_scheduler: Scheduler
    embedder: Backend | None
    embed_scheduler: Scheduler | None
    request_limits: RequestLimits

    def schedulers(self) -> list[Scheduler]:
        extra = [self.embed_scheduler] if self.embed_scheduler not in (None, self.rerank_scheduler) else []
        return [self.rerank_scheduler, *[s for s in extra if s is not None]]


def _scheduler(backend: Backend, config: ServerConfig, on_death: Callable[[], None] | None) -> Scheduler:
    return Scheduler(
        backend, config.max_batch_tokens, config.max_batch_sequences, config.max_queue, on_death=on_death
    )


def _quiet_model_loading() -> None:
    """Progress bars and load reports are noise in a server log; the backends
    check what matters (missing weights) themselves."""
    try:
        import transformers
    except ImportError:  # the fake backend needs no transformers
        return
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


def load(
    config: ServerConfig, on_worker_death: Callable[[], None] | None = None, cpu: CpuFeatures | None = None
) -> Loaded:
    """Builds the backends, warms them up and starts their schedulers (blocking).
    `on_worker_death` is called (from the dying thread) if a scheduler's worker dies;
    `cpu` describes the CPU an `auto` dtype is chosen for (detected when None)."""
    if config.threads:
        import torch

        torch.set_num_threads(config.threads)
    _quiet_model_loading()
    reranker = load_backend(config, cpu)
    log.info(
        "loaded %s reranker %s on %s (%s; %s)",
        reranker.kind,
        reranker.model_id,
        reranker.device,
        reranker.dtype,
        reranker.dtype_reason,
    )
    metrics.describe_model(reranker, "rerank")
    embedder = load_embedder(config, reranker, cpu)
    if embedder is not None and embedder is not reranker:
        log.info(
            "loaded embedding model %s (%s; %s)", embedder.model_id, embedder.dtype, embedder.dtype_reason
        )
        metrics.describe_model(embedder, "embed")
    for backend in dict.fromkeys(b for b in (reranker, embedder) if b is not None):
        backend.warm_up()
        if backend.scores_text_vectors and config.embedding_cache_mb:
            backend.embedding_cache = EmbeddingCache(backend.model_id, config.embedding_cache_mb * 2**20)
    rerank_scheduler = _scheduler(reranker, config, on_worker_death)
    embed_scheduler = None
    if embedder is not None:
        embed_scheduler = (
            rerank_scheduler if embedder is reranker else _scheduler(embedder, config, on_worker_death)
        )
    loaded = Loaded(
        config=config,
        reranker=reranker,
        rerank_scheduler=rerank_scheduler,
        embedder=embedder,
        embed_scheduler=embed_scheduler,
        request_limits=RequestLimits(
            max_documents=config.max_documents,
            max_query_tokens=min(config.max_query_tokens, reranker.limits.max_query_tokens),
            max_document_tokens=min(config.max_document_tokens, reranker.limits.max_document_tokens),
            max_embed_texts=config.max_embed_texts,
            max_chunks_per_document=config.max_chunks_per_document,
            max_chunks_per_request=config.max_chunks_per_request,
            chunk_size=min(config.chunk_size, reranker.limits.max_document_tokens),
            chunk_overlap=config.chunk_overlap,
            chunk_aggregation=config.chunk_aggregation,
        ),
    )
    for scheduler in loaded.schedulers():
        scheduler.start()
    return loaded


class Runtime:
    def __init__(self) -> None:
        self.loaded: Loaded | None = None
        self.failure: str | None = None

    def require_ready(self) -> Loaded:
        if self.loaded is None:
            raise Unavailable(
                self.failure or "the model is still loading; health reports SERVING once it is ready"
            )
        return self.loaded

    def stop(self) -> None:
        if self.loaded is not None:
            for scheduler in self.loaded.schedulers():
                scheduler.stop()
