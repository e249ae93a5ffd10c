"""The steps of a reranked search that the async connector and the sync one generated
from it share: stage timing, the engine's and the reranker's failures, the settings
a rerank call carries, and the first stage's outcome."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import grpc

from rerank_bridge.search.dialects import Dialect, dialect_of, engine_error
from rerank_bridge.search.errors import RerankRejected, reranker_error
from rerank_bridge.search.pipeline import Candidate, SearchPlan
from rerank_bridge.search.request_forms import SearchRequest, parse_request
from rerank_bridge.search.settings import Hybrid, KnnSearch, RerankSettings
from rerank_bridge.search.stored_vectors import RecordedModels

NO_TEXT = "no candidate had text to rerank"


class StageTimer:
    """Wall time per stage, reported in the response's `rerank.took_ms`."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.ms[stage] = self.ms.get(stage, 0.0) + (time.perf_counter() - started) * 1e3


@contextmanager
def engine_errors() -> Iterator[None]:
    """The engine's failures leave as EngineError with its status and body."""
    try:
        yield
    except Exception as error:
        mapped = engine_error(error)
        if mapped is None:
            raise
        raise mapped from error


@contextmanager
def embedding_errors() -> Iterator[None]:
    # Without a query vector there is no first stage to fall back to: never fail open.
    try:
        yield
    except grpc.RpcError as error:
        raise reranker_error(error.code().name, error.details() or "") from error


def rerank_options(settings: RerankSettings, request_id: str | None) -> dict[str, Any]:
    return {
        "instruction": settings.instruction,
        "max_document_tokens": settings.max_document_tokens,
        "timeout": settings.timeout,
        "request_id": request_id,
        "chunking": settings.chunking,
        "return_passages": settings.best_passage != "none",
    }


# What the scoring server refuses in a window, by the setting that caused it.
WINDOW_FIELDS = {
    "documents": "rank_window_size",
    "max_document_tokens": "rerank.max_document_tokens",
    **{
        f"chunking.{name}": f"rerank.chunking.{name}"
        for name in ("size", "overlap", "aggregation", "max_chunks")
    },
}


def reranker_failure(plan: SearchPlan, error: grpc.RpcError) -> str:
    """An outage under fail-open: the reason to report. Otherwise raises:
    RerankUnavailable when fail-closed, RerankRejected when the server refused
    the request itself (the caller's error is never hidden by fail-open)."""
    code, details = error.code().name, error.details() or ""
    failure = reranker_error(code, details, WINDOW_FIELDS)
    if isinstance(failure, RerankRejected) or not plan.request.settings.fail_open:
        raise failure from error
    return f"{code}: {details}"


class SearchBase:
    """What the sync and async connectors share: the engine, its dialect, the defaults."""

    def __init__(self, engine: Any, defaults: RerankSettings | None, dialect: Dialect | None) -> None:
        self.engine = engine
        self.defaults = defaults or RerankSettings()
        # Named explicitly where `engine` is not an official client (the HTTP bridge's forwarder).
        self.dialect = dialect or dialect_of(engine)
        self.recorded_models = RecordedModels()

    def parse(
        self,
        body: dict[str, Any] | None,
        rerank: RerankSettings | None,
        knn: KnnSearch | None,
        hybrid: Hybrid | None,
    ) -> SearchRequest:
        return parse_request(body, rerank or self.defaults, knn, hybrid)


@dataclass
class FirstStage:
    """The first stage's outcome: the plan it ran, the engine response to build
    on, and the window's candidates in first-stage order."""

    plan: SearchPlan
    base: dict[str, Any]
    candidates: list[Candidate]
    timer: StageTimer
