"""Reranked search on Elasticsearch or OpenSearch, sync and async.

    from elasticsearch import Elasticsearch
    from rerank_connectors import RerankClient, RerankingSearch, RerankSettings

    search = RerankingSearch(Elasticsearch("http://localhost:9200"), RerankClient("localhost:50051"),
                             RerankSettings(fields=("title", "text")))
    response = search.search("docs", {"query": {"match": {"text": "anemia"}}, "size": 10},
                             rerank=RerankSettings(fields=("title", "text"), query_text="anemia"))

The first stage runs with size = rank window (default 50); the window is
reranked; `from`/`size` page through the reranked window. Asking past the
window behaves like Elasticsearch's rank_window_size: `size` larger than the
window is refused (400), and pages beyond the window come back empty.
"""

from __future__ import annotations

from typing import Any

import grpc

from rerank_connectors.client import AsyncRerankClient, RerankClient, Reranking
from rerank_connectors.dialects import Dialect, dialect_of, engine_error, response_body
from rerank_connectors.errors import RerankUnavailable
from rerank_connectors.pipeline import SearchPlan
from rerank_connectors.request_forms import parse_request
from rerank_connectors.settings import Hybrid, KnnSearch, RerankSettings


def _plan(
    dialect: Dialect,
    defaults: RerankSettings,
    body: dict[str, Any] | None,
    rerank: RerankSettings | None,
    knn: KnnSearch | None,
    hybrid: Hybrid | None,
) -> SearchPlan:
    return SearchPlan(parse_request(body, rerank or defaults, knn, hybrid), dialect)


def _reranker_failure(plan: SearchPlan, error: grpc.RpcError) -> str:
    code = error.code().name if hasattr(error, "code") else "UNKNOWN"
    details = error.details() if hasattr(error, "details") else str(error)
    if not plan.request.settings.fail_open:
        raise RerankUnavailable(code, details or "") from error
    return f"{code}: {details}"


def _engine_failure(error: Exception) -> Exception:
    mapped = engine_error(error)
    return mapped if mapped is not None else error


class RerankingSearch:
    def __init__(self, engine: Any, reranker: RerankClient, defaults: RerankSettings | None = None) -> None:
        self.engine = engine
        self.reranker = reranker
        self.defaults = defaults or RerankSettings()
        self.dialect = dialect_of(engine)

    def search(
        self,
        index: str,
        body: dict[str, Any] | None = None,
        *,
        rerank: RerankSettings | None = None,
        knn: KnnSearch | None = None,
        hybrid: Hybrid | None = None,
    ) -> dict[str, Any]:
        plan = _plan(self.dialect, self.defaults, body, rerank, knn, hybrid)
        vector = None
        if (text := plan.vector_text) is not None:
            try:
                vector = self.reranker.embed([text], timeout=plan.request.settings.timeout)[0]
            except grpc.RpcError as error:
                # Without a query vector there is no first stage to fall back to.
                raise RerankUnavailable(error.code().name, error.details() or "") from error
        responses = []
        for call in plan.calls(vector):
            try:
                result = self.engine.search(**self.dialect.search_kwargs(index, call))
            except Exception as error:
                raise _engine_failure(error) from error
            responses.append(response_body(result))
        base, candidates = plan.candidates(responses)
        documents = plan.documents(candidates)
        if not documents:
            return plan.respond(base, candidates, None, "no candidate had text to rerank")
        settings = plan.request.settings
        try:
            ranking: Reranking = self.reranker.rerank(
                settings.query_text or "",
                documents,
                instruction=settings.instruction,
                max_document_tokens=settings.max_document_tokens,
                timeout=settings.timeout,
            )
        except grpc.RpcError as error:
            return plan.respond(base, candidates, None, _reranker_failure(plan, error))
        return plan.respond(base, candidates, ranking)


class AsyncRerankingSearch:
    """The asyncio twin of RerankingSearch, for AsyncElasticsearch / AsyncOpenSearch."""

    def __init__(
        self, engine: Any, reranker: AsyncRerankClient, defaults: RerankSettings | None = None
    ) -> None:
        self.engine = engine
        self.reranker = reranker
        self.defaults = defaults or RerankSettings()
        self.dialect = dialect_of(engine)

    async def search(
        self,
        index: str,
        body: dict[str, Any] | None = None,
        *,
        rerank: RerankSettings | None = None,
        knn: KnnSearch | None = None,
        hybrid: Hybrid | None = None,
    ) -> dict[str, Any]:
        plan = _plan(self.dialect, self.defaults, body, rerank, knn, hybrid)
        vector = None
        if (text := plan.vector_text) is not None:
            try:
                vector = (await self.reranker.embed([text], timeout=plan.request.settings.timeout))[0]
            except grpc.RpcError as error:
                raise RerankUnavailable(error.code().name, error.details() or "") from error
        responses = []
        for call in plan.calls(vector):
            try:
                result = await self.engine.search(**self.dialect.search_kwargs(index, call))
            except Exception as error:
                raise _engine_failure(error) from error
            responses.append(response_body(result))
        base, candidates = plan.candidates(responses)
        documents = plan.documents(candidates)
        if not documents:
            return plan.respond(base, candidates, None, "no candidate had text to rerank")
        settings = plan.request.settings
        try:
            ranking = await self.reranker.rerank(
                settings.query_text or "",
                documents,
                instruction=settings.instruction,
                max_document_tokens=settings.max_document_tokens,
                timeout=settings.timeout,
            )
        except grpc.RpcError as error:
            return plan.respond(base, candidates, None, _reranker_failure(plan, error))
        return plan.respond(base, candidates, ranking)
