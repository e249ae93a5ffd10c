"""Where Elasticsearch and OpenSearch differ for the first stage: kNN syntax,
native hybrid fusion, and how their clients are called and fail."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rerank_bridge.search.errors import EngineError, RequestError
from rerank_bridge.search.settings import Hybrid, KnnSearch

# Elasticsearch caps num_candidates at 10,000.
MAX_NUM_CANDIDATES = 10_000


@dataclass(frozen=True)
class FirstStageCall:
    body: dict[str, Any]
    params: dict[str, str]


class Dialect:
    name = ""

    def knn_clause(self, knn: KnnSearch, vector: list[float], k: int) -> dict[str, Any]:
        raise NotImplementedError

    def knn_call(self, base: dict[str, Any], knn: KnnSearch, vector: list[float], k: int) -> FirstStageCall:
        raise NotImplementedError

    def native_hybrid_call(
        self, base: dict[str, Any], knn: KnnSearch, vector: list[float], k: int, hybrid: Hybrid, window: int
    ) -> FirstStageCall:
        raise NotImplementedError

    @staticmethod
    def search_kwargs(index: str, call: FirstStageCall) -> dict[str, Any]:
        raise NotImplementedError


def _without_query(base: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in base.items() if key != "query"}


class Elasticsearch(Dialect):
    name = "elasticsearch"

    def knn_clause(self, knn: KnnSearch, vector: list[float], k: int) -> dict[str, Any]:
        clause: dict[str, Any] = {
            "field": knn.field,
            "query_vector": vector,
            "k": k,
            "num_candidates": min(MAX_NUM_CANDIDATES, max(k, knn.num_candidates or 2 * k)),
        }
        if knn.filter is not None:
            clause["filter"] = knn.filter
        return clause

    def knn_call(self, base: dict[str, Any], knn: KnnSearch, vector: list[float], k: int) -> FirstStageCall:
        return FirstStageCall({**_without_query(base), "knn": self.knn_clause(knn, vector, k)}, {})

    def native_hybrid_call(
        self, base: dict[str, Any], knn: KnnSearch, vector: list[float], k: int, hybrid: Hybrid, window: int
    ) -> FirstStageCall:
        retrievers = [{"standard": {"query": base["query"]}}, {"knn": self.knn_clause(knn, vector, k)}]
        rrf = {"retrievers": retrievers, "rank_window_size": window, "rank_constant": hybrid.rank_constant}
        return FirstStageCall({**_without_query(base), "retriever": {"rrf": rrf}}, {})

    @staticmethod
    def search_kwargs(index: str, call: FirstStageCall) -> dict[str, Any]:
        return {"index": index, "body": call.body}


class OpenSearch(Dialect):
    name = "opensearch"

    def knn_clause(self, knn: KnnSearch, vector: list[float], k: int) -> dict[str, Any]:
        inner: dict[str, Any] = {"vector": vector, "k": k}
        if knn.filter is not None:
            inner["filter"] = knn.filter
        return {"knn": {knn.field: inner}}

    def knn_call(self, base: dict[str, Any], knn: KnnSearch, vector: list[float], k: int) -> FirstStageCall:
        return FirstStageCall({**base, "query": self.knn_clause(knn, vector, k)}, {})

    def native_hybrid_call(
        self, base: dict[str, Any], knn: KnnSearch, vector: list[float], k: int, hybrid: Hybrid, window: int
    ) -> FirstStageCall:
        if not hybrid.pipeline:
            # Outside a pipeline that fuses it, a `hybrid` query answers with its
            # sub-queries' raw hits: the same document several times, and marker
            # hits with scores like -9.5e9. That window cannot be reranked.
            raise RequestError(
                "hybrid.pipeline",
                "OpenSearch fuses a hybrid query only in a search pipeline with a normalization "
                "or score-ranker processor: name it (`rerank-bridge wire opensearch --no-rerank "
                "--hybrid normalization` creates one)",
            )
        query = {"hybrid": {"queries": [base["query"], self.knn_clause(knn, vector, k)]}}
        return FirstStageCall({**base, "query": query}, {"search_pipeline": hybrid.pipeline})

    @staticmethod
    def search_kwargs(index: str, call: FirstStageCall) -> dict[str, Any]:
        return {"index": index, "body": call.body, "params": call.params or None}


def engine_client(
    kind: str,
    url: str,
    timeout: float = 120,
    auth: tuple[str, str] | None = None,
    ca_certs: str | None = None,
) -> Any:
    """The official synchronous client of an engine kind (its package imported only then),
    with basic auth and a CA bundle where given."""
    options: dict[str, Any] = {"ca_certs": ca_certs} if ca_certs else {}
    if kind == "elasticsearch":
        from elasticsearch import Elasticsearch

        return Elasticsearch(url, request_timeout=timeout, basic_auth=auth, **options)
    from opensearchpy import OpenSearch

    return OpenSearch(url, timeout=timeout, http_auth=auth, **options)


def bulk_helper(kind: str, streaming: bool = False) -> Any:
    """The official bulk helper of an engine kind: `bulk`, or `streaming_bulk`
    where the caller reports progress per document."""
    if kind == "elasticsearch":
        from elasticsearch import helpers
    else:
        from opensearchpy import helpers  # type: ignore[no-redef]
    return helpers.streaming_bulk if streaming else helpers.bulk


def kind_answering(product: str | None, root: Any) -> str | None:
    """Which engine answered GET /, from its X-Elastic-Product header (Elasticsearch
    sends it on every answer, and its test distribution refuses GET / itself) and the
    body (OpenSearch names its distribution there); None where neither says."""
    if product == "Elasticsearch":
        return "elasticsearch"
    version = root.get("version") if isinstance(root, dict) else None
    if isinstance(version, dict) and version.get("distribution") == "opensearch":
        return "opensearch"
    return None


def dialect_of(engine_client: Any) -> Dialect:
    module = type(engine_client).__module__
    if module.startswith("elasticsearch"):
        return Elasticsearch()
    if module.startswith("opensearchpy"):
        return OpenSearch()
    raise TypeError(f"not an Elasticsearch or OpenSearch client: {type(engine_client).__name__}")


def response_body(response: Any) -> dict[str, Any]:
    """The plain dict behind a client's response (Elasticsearch wraps it)."""
    body = getattr(response, "body", response)
    return dict(body)


def engine_error(error: Exception) -> EngineError | None:
    """The engine's own status and body, from either client's exception."""
    status = getattr(error, "status_code", None)
    if isinstance(status, int):
        return EngineError(status, getattr(error, "info", None) or getattr(error, "body", None) or str(error))
    return None
