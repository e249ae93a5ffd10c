"""Reranked search on Elasticsearch or OpenSearch.

    from elasticsearch import Elasticsearch
    from rerank_bridge.search import RerankClient, RerankingSearch, RerankSettings

    search = RerankingSearch(Elasticsearch("http://localhost:9200"), RerankClient("localhost:50051"))
    response = search.search("docs", {"query": {"match": {"text": "anemia"}}, "size": 10},
                             rerank=RerankSettings(fields=("title", "text")))

The first stage runs with size = rank window (default 50); the window is
reranked; `from`/`size` page through the reranked window. Asking past the
window behaves like Elasticsearch's rank_window_size: `size` larger than the
window is refused (400), and pages beyond the window come back empty. A hybrid
search's keyword and kNN queries run at once.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import grpc

from rerank_bridge.search._async.client import AsyncRerankClient
from rerank_bridge.search.concurrency import gather_calls
from rerank_bridge.search.dialects import Dialect, response_body
from rerank_bridge.search.pipeline import SearchPlan
from rerank_bridge.search.request_forms import SearchRequest
from rerank_bridge.search.search_steps import (
    NO_TEXT,
    FirstStage,
    SearchBase,
    StageTimer,
    embedding_errors,
    engine_errors,
    rerank_options,
    reranker_failure,
)
from rerank_bridge.search.settings import Hybrid, KnnSearch, RerankSettings


class AsyncRerankingSearch(SearchBase):
    """Searches through the engine's official AsyncElasticsearch or AsyncOpenSearch client."""

    def __init__(
        self,
        engine: Any,
        reranker: AsyncRerankClient,
        defaults: RerankSettings | None = None,
        dialect: Dialect | None = None,
    ) -> None:
        super().__init__(engine, defaults, dialect)
        self.reranker = reranker

    async def first_stage(
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
        return await self._first_stage(index, self.parse(body, rerank, knn, hybrid), request_id)

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
        return await self.search_parsed(index, self.parse(body, rerank, knn, hybrid), request_id=request_id)

    async def search_parsed(
        self, index: str, request: SearchRequest, *, request_id: str | None = None
    ) -> dict[str, Any]:
        """A search already read by `parse_request` (the HTTP bridge reads each body once)."""
        stage = await self._first_stage(index, request, request_id)
        plan, timer, settings = stage.plan, stage.timer, request.settings
        if not (documents := plan.documents(stage.candidates)):
            return plan.respond(stage.base, stage.candidates, None, NO_TEXT, timer.ms)
        try:
            with timer("rerank"):
                ranking = await self.reranker.rerank(
                    settings.query_text or "", documents, **rerank_options(settings, request_id)
                )
        except grpc.RpcError as error:
            return plan.respond(stage.base, stage.candidates, None, reranker_failure(plan, error), timer.ms)
        return plan.respond(stage.base, stage.candidates, ranking, timings_ms=timer.ms)

    async def _first_stage(self, index: str, request: SearchRequest, request_id: str | None) -> FirstStage:
        plan, timer = SearchPlan(request, self.dialect), StageTimer()
        vector = None
        if (text := plan.vector_text) is not None:
            with timer("embed"), embedding_errors():
                timeout = request.settings.timeout
                vector = (await self.reranker.embed([text], timeout, request_id, input_type="query"))[0]
        searches = [
            partial(self.engine.search, **self.dialect.search_kwargs(index, call))
            for call in plan.calls(vector)
        ]
        with timer("first_stage"), engine_errors():
            responses = [response_body(answer) for answer in await gather_calls(searches)]
        base, candidates = plan.candidates(responses)
        return FirstStage(plan, base, candidates, timer)
