# Generated from _async/connector.py by `python connectors/generate_sync.py`: edit that file.
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

from rerank_bridge.search._sync.client import RerankClient
from rerank_bridge.search.concurrency import call_all
from rerank_bridge.search.dialects import Dialect, engine_error, response_body
from rerank_bridge.search.errors import EngineError
from rerank_bridge.search.fusion import Hit
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
from rerank_bridge.search.settings import Hybrid, KnnSearch, RerankSettings, StoredVectorSettings
from rerank_bridge.search.stored_vectors import recorded_models, stored_vector_use


class RerankingSearch(SearchBase):
    """Searches through the engine's official Elasticsearch or OpenSearch client."""

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
        return self._first_stage(index, self.parse(body, rerank, knn, hybrid), request_id)

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
        return self.search_parsed(index, self.parse(body, rerank, knn, hybrid), request_id=request_id)

    def search_parsed(
        self, index: str, request: SearchRequest, *, request_id: str | None = None
    ) -> dict[str, Any]:
        """A search already read by `parse_request` (the HTTP bridge reads each body once)."""
        stage = self._first_stage(index, request, request_id)
        plan, timer, settings = stage.plan, stage.timer, request.settings
        if not (documents := plan.documents(stage.candidates)):
            return plan.respond(stage.base, stage.candidates, None, NO_TEXT, timer.ms)
        vectors = None
        if settings.stored_vectors is not None:
            with timer("stored_vectors"):
                hits = {doc_id: stage.candidates[int(doc_id)].hit for doc_id, _ in documents}
                recorded = self._recorded_models(settings.stored_vectors, hits)
                vectors = stored_vector_use(settings.stored_vectors, documents, hits, recorded)
        try:
            with timer("rerank"):
                ranking = self.reranker.rerank(
                    settings.query_text or "",
                    documents,
                    **rerank_options(settings, request_id),
                    **(vectors.rerank_options() if vectors is not None else {}),
                )
        except grpc.RpcError as error:
            failure = reranker_failure(plan, error)
            return plan.respond(stage.base, stage.candidates, None, failure, timer.ms, vectors)
        return plan.respond(stage.base, stage.candidates, ranking, timings_ms=timer.ms, vectors=vectors)

    def _recorded_models(self, settings: StoredVectorSettings, hits: dict[str, Hit]) -> dict[str, str | None]:
        """The model each of the hits' indices records for the vector field (none asked
        for when the settings name the model). An engine that refuses the mapping to
        this caller records none: the texts are encoded instead."""
        if settings.model is not None:
            return {}
        indices = ",".join(sorted({str(hit.get("_index", "")) for hit in hits.values()}))
        if (known := self.recorded_models.get(indices, settings.field)) is not None:
            return known
        try:
            mappings = response_body(self.engine.indices.get_mapping(index=indices))
        except Exception as error:
            if not isinstance(error, EngineError) and engine_error(error) is None:
                raise
            return {}
        recorded = recorded_models(mappings, settings.field)
        self.recorded_models.put(indices, settings.field, recorded)
        return recorded

    def _first_stage(self, index: str, request: SearchRequest, request_id: str | None) -> FirstStage:
        plan, timer = SearchPlan(request, self.dialect), StageTimer()
        vector = None
        if (text := plan.vector_text) is not None:
            with timer("embed"), embedding_errors():
                timeout = request.settings.timeout
                vector = (self.reranker.embed([text], timeout, request_id, input_type="query"))[0]
        searches = [
            partial(self.engine.search, **self.dialect.search_kwargs(index, call))
            for call in plan.calls(vector)
        ]
        with timer("first_stage"), engine_errors():
            responses = [response_body(answer) for answer in call_all(searches)]
        base, candidates = plan.candidates(responses)
        return FirstStage(plan, base, candidates, timer)
