"""Reranked search on Elasticsearch or OpenSearch, sync and async.

    from elasticsearch import Elasticsearch
    from rerank_bridge.search import RerankClient, RerankingSearch, RerankSettings

    search = RerankingSearch(Elasticsearch("http://localhost:9200"), RerankClient("localhost:50051"))
    response = search.search("docs", {"query": {"match": {"text": "anemia"}}, "size": 10},
                             rerank=RerankSettings(fields=("title", "text")))

The first stage runs with size = rank window (default 50); the window is
reranked; `from`/`size` page through the reranked window. Asking past the
window behaves like Elasticsearch's rank_window_size: `size` larger than the
window is refused (400), and pages beyond the window come back empty.
The two classes share SearchPlan and differ only in awaiting their I/O.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import grpc

from rerank_bridge.proto.v1 import rerank_pb2 as pb
from rerank_bridge.search.client import AsyncRerankClient, RerankClient
from rerank_bridge.search.dialects import Dialect, dialect_of, engine_error, response_body
from rerank_bridge.search.errors import RerankRejected, reranker_error
from rerank_bridge.search.pipeline import Candidate, SearchPlan
from rerank_bridge.search.request_forms import parse_request
from rerank_bridge.search.settings import ChunkingSettings, Hybrid, KnnSearch, RerankSettings

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
        "chunking": chunking_message(settings.chunking),
        "return_passages": settings.best_passage != "none",
    }


def chunking_message(chunking: ChunkingSettings | None) -> pb.Chunking | None:
    if chunking is None:
        return None
    message = pb.Chunking(enabled=True, aggregation=chunking.aggregation)
    for name in ("size", "overlap", "max_chunks"):
        if (value := getattr(chunking, name)) is not None:
            setattr(message, name, value)
    return message


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


class _Base:
    def __init__(self, engine: Any, defaults: RerankSettings | None, dialect: Dialect | None) -> None:
        self.engine = engine
        self.defaults = defaults or RerankSettings()
        # Named explicitly where `engine` is not an official client (the HTTP bridge's forwarder).
        self.dialect = dialect or dialect_of(engine)

    def plan(
        self,
        body: dict[str, Any] | None,
        rerank: RerankSettings | None,
        knn: KnnSearch | None,
        hybrid: Hybrid | None,
    ) -> SearchPlan:
        return SearchPlan(parse_request(body, rerank or self.defaults, knn, hybrid), self.dialect)


@dataclass
class FirstStage:
    """The first stage's outcome: the plan it ran, the engine response to build
    on, and the window's candidates in first-stage order."""

    plan: SearchPlan
    base: dict[str, Any]
    candidates: list[Candidate]
    timer: StageTimer


class RerankingSearch(_Base):
    def __init__(
        self,
        engine: Any,
        reranker: RerankClient,
        defaults: RerankSettings | None = None,
        dialect: Dialect | None = None,
    ) -> None:
        super().__init__(engine, defaults, dialect)
        self.reranker = reranker

    def first_stage(
        self,
        index: str,
        body: dict[str, Any] | None = None,
        *,
        rerank: RerankSettings | None = None,
        knn: KnnSearch | None = None,
        hybrid: Hybrid | None = None,
        request_id: str | None = None,
    ) -> FirstStage:
        """Runs only the first stage (evaluation reranks its windows at several depths)."""
        plan, timer = self.plan(body, rerank, knn, hybrid), StageTimer()
        vector = None
        if (text := plan.vector_text) is not None:
            with timer("embed"), embedding_errors():
                vector = self.reranker.embed([text], plan.request.settings.timeout, request_id)[0]
        responses = []
        with timer("first_stage"), engine_errors():
            for call in plan.calls(vector):
                responses.append(response_body(self.engine.search(**self.dialect.search_kwargs(index, call))))
        base, candidates = plan.candidates(responses)
        return FirstStage(plan, base, candidates, timer)

    def search(
        self,
        index: str,
        body: dict[str, Any] | None = None,
        *,
        rerank: RerankSettings | None = None,
        knn: KnnSearch | None = None,
        hybrid: Hybrid | None = None,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        stage = self.first_stage(index, body, rerank=rerank, knn=knn, hybrid=hybrid, request_id=request_id)
        plan, timer, settings = stage.plan, stage.timer, stage.plan.request.settings
        if not (documents := plan.documents(stage.candidates)):
            return plan.respond(stage.base, stage.candidates, None, NO_TEXT, timer.ms)
        try:
            with timer("rerank"):
                ranking = self.reranker.rerank(
                    settings.query_text or "", documents, **rerank_options(settings, request_id)
                )
        except grpc.RpcError as error:
            return plan.respond(stage.base, stage.candidates, None, reranker_failure(plan, error), timer.ms)
        return plan.respond(stage.base, stage.candidates, ranking, timings_ms=timer.ms)


class AsyncRerankingSearch(_Base):
    """The asyncio twin of RerankingSearch, for AsyncElasticsearch / AsyncOpenSearch."""

    def __init__(
        self,
        engine: Any,
        reranker: AsyncRerankClient,
        defaults: RerankSettings | None = None,
        dialect: Dialect | None = None,
    ) -> None:
        super().__init__(engine, defaults, dialect)
        self.reranker = reranker

    async def search(
        self,
        index: str,
        body: dict[str, Any] | None = None,
        *,
        rerank: RerankSettings | None = None,
        knn: KnnSearch | None = None,
        hybrid: Hybrid | None = None,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        plan, timer = self.plan(body, rerank, knn, hybrid), StageTimer()
        settings = plan.request.settings
        vector = None
        if (text := plan.vector_text) is not None:
            with timer("embed"), embedding_errors():
                vector = (await self.reranker.embed([text], settings.timeout, request_id))[0]
        responses = []
        with timer("first_stage"), engine_errors():
            for call in plan.calls(vector):
                responses.append(
                    response_body(await self.engine.search(**self.dialect.search_kwargs(index, call)))
                )
        base, candidates = plan.candidates(responses)
        if not (documents := plan.documents(candidates)):
            return plan.respond(base, candidates, None, NO_TEXT, timer.ms)
        try:
            with timer("rerank"):
                ranking = await self.reranker.rerank(
                    settings.query_text or "", documents, **rerank_options(settings, request_id)
                )
        except grpc.RpcError as error:
            return plan.respond(base, candidates, None, reranker_failure(plan, error), timer.ms)
        return plan.respond(base, candidates, ranking, timings_ms=timer.ms)
