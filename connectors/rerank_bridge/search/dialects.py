"""Every way Elasticsearch and OpenSearch differ, in one place: kNN syntax, native
hybrid fusion, the official client and its bulk helper (each package imported only
when asked for), raw REST calls, the product header, the vector field mapping,
and how points in time close. One instance per engine: `DIALECTS[kind]`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
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
    # Headers every answer from this engine carries (Elasticsearch's clients refuse
    # answers without its product header, errors included).
    product_headers: Mapping[str, str] = MappingProxyType({})

    def client(
        self, url: str, timeout: float = 120, auth: tuple[str, str] | None = None, ca_certs: str | None = None
    ) -> Any:
        """The official synchronous client, with basic auth and a CA bundle where given."""
        raise NotImplementedError

    def bulk_helper(self, streaming: bool = False) -> Any:
        """The official bulk helper: `bulk`, or `streaming_bulk` to report progress per document."""
        raise NotImplementedError

    def perform_request(self, client: Any, method: str, path: str, body: Any, headers: dict[str, str]) -> Any:
        """One raw REST call through the official client."""
        raise NotImplementedError

    def vector_index(self, client: Any, dimensions: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """(index settings, mapping) for a cosine HNSW vector field on the engine behind `client`."""
        raise NotImplementedError

    def pit_closes(self, pit_ids: list[str]) -> list[tuple[tuple[str, ...], dict[str, Any]]]:
        """The DELETE requests (path segments, body) that close these points in time."""
        raise NotImplementedError

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

    product_headers = MappingProxyType({"X-Elastic-Product": "Elasticsearch"})

    def client(
        self, url: str, timeout: float = 120, auth: tuple[str, str] | None = None, ca_certs: str | None = None
    ) -> Any:
        from elasticsearch import Elasticsearch as Client

        options: dict[str, Any] = {"ca_certs": ca_certs} if ca_certs else {}
        return Client(url, request_timeout=timeout, basic_auth=auth, **options)

    def bulk_helper(self, streaming: bool = False) -> Any:
        from elasticsearch import helpers

        return helpers.streaming_bulk if streaming else helpers.bulk

    def perform_request(self, client: Any, method: str, path: str, body: Any, headers: dict[str, str]) -> Any:
        return client.perform_request(method, path, headers=headers, body=body)

    def vector_index(self, client: Any, dimensions: int) -> tuple[dict[str, Any], dict[str, Any]]:
        return {}, {"type": "dense_vector", "dims": dimensions, "index": True, "similarity": "cosine"}

    def pit_closes(self, pit_ids: list[str]) -> list[tuple[tuple[str, ...], dict[str, Any]]]:
        return [(("_pit",), {"id": pit_id}) for pit_id in pit_ids]  # one per call

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

    def client(
        self, url: str, timeout: float = 120, auth: tuple[str, str] | None = None, ca_certs: str | None = None
    ) -> Any:
        from opensearchpy import OpenSearch as Client

        options: dict[str, Any] = {"ca_certs": ca_certs} if ca_certs else {}
        return Client(url, timeout=timeout, http_auth=auth, **options)

    def bulk_helper(self, streaming: bool = False) -> Any:
        from opensearchpy import helpers

        return helpers.streaming_bulk if streaming else helpers.bulk

    def perform_request(self, client: Any, method: str, path: str, body: Any, headers: dict[str, str]) -> Any:
        return client.transport.perform_request(method, path, body=body)

    def vector_index(self, client: Any, dimensions: int) -> tuple[dict[str, Any], dict[str, Any]]:
        # The Lucene engine: the Maven build of k-NN has no native libraries.
        settings: dict[str, Any] = {"index.knn": True}
        if int(client.info()["version"]["number"].split(".")[0]) >= 3:
            # k-NN 3.x rebuilds vectors into _source from doc values ("derived source").
            # On 3.5 one scroll over such an index breaks every later search there that
            # fetches _source (503, all shards failed): keep the vectors in _source.
            settings["index.knn.derived_source.enabled"] = False
        method = {"name": "hnsw", "engine": "lucene", "space_type": "cosinesimil"}
        return settings, {"type": "knn_vector", "dimension": dimensions, "method": method}

    def pit_closes(self, pit_ids: list[str]) -> list[tuple[tuple[str, ...], dict[str, Any]]]:
        return [(("_search", "point_in_time"), {"pit_id": pit_ids})]

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


DIALECTS: dict[str, Dialect] = {"elasticsearch": Elasticsearch(), "opensearch": OpenSearch()}


def dialect_of(engine_client: Any) -> Dialect:
    """The dialect of an official client (either major, sync or async)."""
    module = type(engine_client).__module__
    if module.startswith("elasticsearch"):
        return DIALECTS["elasticsearch"]
    if module.startswith("opensearchpy"):
        return DIALECTS["opensearch"]
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
