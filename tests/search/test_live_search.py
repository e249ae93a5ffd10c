"""Reranked search against real Elasticsearch and OpenSearch nodes (each test
runs on both): BM25, kNN and hybrid first stages, paging, failure modes,
engine errors, and the engines' own reranking syntaxes."""

from __future__ import annotations

import asyncio
import importlib.metadata
from typing import Any

import pytest

from rerank_bridge.devtools import local_engines
from rerank_bridge.devtools.local_engines import free_port
from rerank_bridge.search import (
    HIT_KEY,
    AsyncRerankClient,
    AsyncRerankingSearch,
    EngineError,
    Hybrid,
    KnnSearch,
    RequestError,
    RerankClient,
    RerankingSearch,
    RerankRejected,
    RerankSettings,
    RerankUnavailable,
)
from rerank_bridge.search.settings import ChunkingSettings
from rerank_bridge.server.app import BackgroundServer
from support.live_fixtures import Corpus, Engine
from support.search_checks import WINDOW, assert_reranked, first_stage, ids, knn_body, match

pytestmark = pytest.mark.live


def settings(query: str, **overrides: Any) -> RerankSettings:
    return RerankSettings(fields=("text",), query_text=query, rank_window_size=WINDOW, **overrides)


@pytest.fixture
def search(engine: Engine, reranker: RerankClient) -> RerankingSearch:
    return RerankingSearch(engine.client, reranker)


@pytest.fixture
def query(corpus: Corpus) -> str:
    return str(corpus.queries[3]["text"])


def test_bm25_window_is_reranked_without_losing_a_hit(
    engine: Engine, search: RerankingSearch, reranker: RerankClient, query: str
) -> None:
    response = search.search(engine.index, match(query), rerank=settings(query))
    window = first_stage(engine, match(query))
    assert len(window["hits"]["hits"]) == WINDOW
    assert_reranked(response, window, reranker, query)
    ranks = {hit["_id"]: rank for rank, hit in enumerate(window["hits"]["hits"], start=1)}
    for hit in response["hits"]["hits"]:
        assert hit[HIT_KEY]["first_stage_rank"] == ranks[hit["_id"]]
        assert hit[HIT_KEY]["reranked"] is True
    # The reranker really changed something on this query.
    assert ids(response) != ids(window)
    assert response["hits"]["total"] == window["hits"]["total"]


def test_knn_window_is_reranked(
    engine: Engine, search: RerankingSearch, reranker: RerankClient, query: str
) -> None:
    response = search.search(
        engine.index, {"size": WINDOW}, rerank=settings(query), knn=KnnSearch(field="vector")
    )
    vector = reranker.embed([query])[0]
    window = first_stage(engine, knn_body(engine, vector))
    assert_reranked(response, window, reranker, query)


@pytest.mark.parametrize("method", ["rrf", "linear"])
def test_hybrid_window_is_fused_then_reranked(
    engine: Engine, search: RerankingSearch, reranker: RerankClient, query: str, method: str
) -> None:
    response = search.search(
        engine.index,
        match(query),
        rerank=settings(query),
        knn=KnnSearch(field="vector"),
        hybrid=Hybrid(method=method),
    )
    keyword = ids(first_stage(engine, match(query)))
    vector = ids(first_stage(engine, knn_body(engine, reranker.embed([query])[0])))
    returned = ids(response)
    assert len(returned) == len(set(returned)) == WINDOW
    assert set(returned) <= set(keyword) | set(vector)
    if method == "rrf":
        # The fused score is the reciprocal-rank formula over the two engine rankings.
        expected = {
            doc: sum(1 / (60 + ranking.index(doc) + 1) for ranking in (keyword, vector) if doc in ranking)
            for doc in set(keyword) | set(vector)
        }
        best = sorted(expected, key=lambda d: -expected[d])[:WINDOW]
        assert set(returned) == set(best) or sorted(expected[d] for d in returned) == sorted(
            expected[d] for d in best
        )
        for hit in response["hits"]["hits"]:
            assert hit[HIT_KEY]["first_stage_score"] == pytest.approx(expected[hit["_id"]])
    scores = [hit["_score"] for hit in response["hits"]["hits"]]
    assert scores == sorted(scores, reverse=True)


def test_pages_cover_the_window_once_and_stop_at_its_end(
    engine: Engine, search: RerankingSearch, query: str
) -> None:
    full = ids(search.search(engine.index, match(query), rerank=settings(query)))
    pages = [
        ids(search.search(engine.index, {**match(query, size=7), "from": start}, rerank=settings(query)))
        for start in (0, 7, 14)
    ]
    assert [len(page) for page in pages] == [7, 7, 6]
    assert [doc for page in pages for doc in page] == full
    # Past the window: nothing, as Elasticsearch's rank_window_size does.
    assert (
        ids(search.search(engine.index, {**match(query, size=5), "from": WINDOW}, rerank=settings(query)))
        == []
    )
    with pytest.raises(RequestError) as raised:
        search.search(engine.index, match(query, size=WINDOW + 5), rerank=settings(query))
    assert raised.value.field == "size"


def test_engine_response_parts_survive(engine: Engine, search: RerankingSearch, query: str) -> None:
    body = {
        **match(query),
        "_source": ["article"],
        "highlight": {"fields": {"text": {}}},
        "aggs": {"languages": {"terms": {"field": "lang"}}},
    }
    response = search.search(engine.index, body, rerank=settings(query))
    direct = first_stage(engine, body)
    assert response["aggregations"] == direct["aggregations"]
    assert response["_shards"] == direct["_shards"]
    for hit in response["hits"]["hits"]:
        assert set(hit["_source"]) == {"article"}  # filtered as the caller asked
        assert "fields" not in hit  # the text fetched for the reranker is not leaked
        assert hit["_index"] == engine.index
    assert any("highlight" in hit for hit in response["hits"]["hits"])


def test_response_loads_in_the_clients_response_types(
    engine: Engine, search: RerankingSearch, query: str
) -> None:
    response = search.search(engine.index, match(query, size=5), rerank=settings(query))
    if engine.kind == "elasticsearch":
        from elasticsearch.dsl import Search
        from elasticsearch.dsl.response import Response
    else:
        from opensearchpy.helpers.response import Response  # type: ignore[assignment]
        from opensearchpy.helpers.search import Search  # type: ignore[assignment]
    loaded = Response(Search(index=engine.index), response)
    assert [hit.meta.id for hit in loaded] == ids(response)
    assert [hit.meta.score for hit in loaded] == [hit["_score"] for hit in response["hits"]["hits"]]
    assert loaded.hits.total.value == response["hits"]["total"]["value"]


@pytest.fixture
def stopped_reranker() -> RerankClient:
    """A client whose server is not there (nothing listens on the port)."""
    return RerankClient(f"127.0.0.1:{free_port()}", timeout=2)


def test_fail_open_returns_the_first_stage_flagged(
    engine: Engine, stopped_reranker: RerankClient, query: str
) -> None:
    search = RerankingSearch(engine.client, stopped_reranker)
    response = search.search(engine.index, match(query), rerank=settings(query))
    window = first_stage(engine, match(query))
    assert ids(response) == ids(window)
    assert [h["_score"] for h in response["hits"]["hits"]] == [h["_score"] for h in window["hits"]["hits"]]
    assert response["rerank"]["reranked"] is False
    assert response["rerank"]["error"].startswith("UNAVAILABLE")
    assert all(hit[HIT_KEY]["reranked"] is False for hit in response["hits"]["hits"])


def test_fail_closed_raises(engine: Engine, stopped_reranker: RerankClient, query: str) -> None:
    search = RerankingSearch(engine.client, stopped_reranker)
    with pytest.raises(RerankUnavailable) as raised:
        search.search(engine.index, match(query), rerank=settings(query, fail_open=False))
    assert raised.value.code == "UNAVAILABLE"
    assert raised.value.status == 503


def test_a_window_the_server_refuses_is_the_callers_error_even_fail_open(
    engine: Engine, fake_server: BackgroundServer, query: str
) -> None:
    """The fake server takes 5 documents a request: a window of 20 is refused (INVALID_ARGUMENT),
    which fail-open must not hide behind the first stage's order."""
    with RerankClient(fake_server.address, timeout=10) as small, pytest.raises(RerankRejected) as raised:
        RerankingSearch(engine.client, small).search(engine.index, match(query), rerank=settings(query))
    assert raised.value.status == 400 and raised.value.field == "rank_window_size"
    assert "the limit is 5" in str(raised.value)


def test_engine_errors_pass_through(engine: Engine, search: RerankingSearch, query: str) -> None:
    with pytest.raises(EngineError) as missing:
        search.search(f"{engine.index}-missing", match(query), rerank=settings(query))
    assert missing.value.status == 404
    assert "index_not_found_exception" in str(missing.value.body)
    with pytest.raises(EngineError) as malformed:
        search.search(engine.index, {"query": {"no_such_query": {}}}, rerank=settings(query))
    assert malformed.value.status == 400
    assert "no_such_query" in str(malformed.value.body)


def test_native_fusion_is_asked_of_the_engine(engine: Engine, search: RerankingSearch, query: str) -> None:
    """Elasticsearch here lacks the licensed rrf retriever: its refusal comes back as
    it is. OpenSearch's hybrid query needs the pipeline that fuses it, so without
    one the connector refuses before asking (tests/wiring/test_opensearch_native.py runs
    the hybrid query on a node that has it)."""
    refusal = EngineError if engine.kind == "elasticsearch" else RequestError
    with pytest.raises(refusal) as raised:
        search.search(
            engine.index,
            match(query),
            rerank=settings(query),
            knn=KnnSearch(field="vector"),
            hybrid=Hybrid(native=True),
        )
    if isinstance(raised.value, EngineError):
        assert raised.value.status == 400
        assert "rrf" in str(raised.value.body)
    else:
        assert raised.value.field == "hybrid.pipeline"


def test_elasticsearch_text_similarity_reranker_syntax(
    engine: Engine, search: RerankingSearch, query: str
) -> None:
    body = {
        "retriever": {
            "text_similarity_reranker": {
                "retriever": {"standard": {"query": {"match": {"text": query}}}},
                "field": "text",
                "inference_id": "rerank-bridge",
                "inference_text": query,
                "rank_window_size": WINDOW,
            }
        },
        "size": WINDOW,
    }
    assert ids(search.search(engine.index, body)) == ids(
        search.search(engine.index, match(query), rerank=settings(query))
    )
    # Elasticsearch's own default window is 10.
    del body["retriever"]["text_similarity_reranker"]["rank_window_size"]
    body["size"] = 10
    response = search.search(engine.index, body)
    assert response["rerank"]["rank_window_size"] == 10
    assert sorted(ids(response)) == sorted(ids(first_stage(engine, match(query, size=10))))


def test_opensearch_rerank_ext_syntax(engine: Engine, reranker: RerankClient, query: str) -> None:
    search = RerankingSearch(
        engine.client, reranker, RerankSettings(fields=("text",), rank_window_size=WINDOW)
    )
    body = {**match(query), "ext": {"rerank": {"query_context": {"query_text_path": "query.match.text"}}}}
    explicit = search.search(engine.index, match(query), rerank=settings(query))
    assert ids(search.search(engine.index, body)) == ids(explicit)
    body["ext"] = {"rerank": {"query_context": {"query_text": query}}}
    assert ids(search.search(engine.index, body)) == ids(explicit)


def test_async_connector_matches_the_sync_one(
    engine: Engine, search: RerankingSearch, scoring_server: BackgroundServer, query: str
) -> None:
    async def scenario() -> dict[str, Any]:
        client = engine.async_client()
        try:
            async with AsyncRerankClient(scoring_server.address, timeout=120) as reranker:
                searcher = AsyncRerankingSearch(client, reranker)
                return await searcher.search(
                    engine.index, match(query), rerank=settings(query), knn=KnnSearch(field="vector")
                )
        finally:
            await client.close()

    expected = search.search(
        engine.index, match(query), rerank=settings(query), knn=KnnSearch(field="vector")
    )
    assert ids(asyncio.run(scenario())) == ids(expected)


def test_the_client_major_matches_the_engines(engine: Engine, record_property: Any) -> None:
    """Each engine runs with the client major made for it. The junit report names each
    engine's version, client, node count and where it runs (an image, or a local node);
    the version matrix and the container lane read them back."""
    nodes = engine.client.nodes.info(node_id="_local", metric="_none")["nodes"]
    engine_version = next(iter(nodes.values()))["version"]
    client_version = importlib.metadata.version(local_engines.CLIENTS[engine.kind])
    record_property(f"{engine.kind}_version", engine_version)
    record_property(f"{engine.kind}_client_version", client_version)
    record_property(f"{engine.kind}_nodes", engine.client.cluster.health()["number_of_nodes"])
    record_property(f"{engine.kind}_origin", engine.origin)
    assert engine_version.split(".")[0] == client_version.split(".")[0]


def test_chunked_rerank_gives_each_hit_its_best_passage(
    engine: Engine, search: RerankingSearch, reranker: RerankClient, query: str
) -> None:
    chunks = ChunkingSettings(size=8, overlap=2)
    response = search.search(
        engine.index, match(query), rerank=settings(query, chunking=chunks, best_passage="highlight")
    )
    texts = {hit["_id"]: hit["_source"]["text"] for hit in first_stage(engine, match(query))["hits"]["hits"]}
    direct = reranker.rerank(
        query,
        list(texts.items()),
        chunking=ChunkingSettings(size=8, overlap=2),
        return_passages=True,
    )
    hits = response["hits"]["hits"]
    assert [d.id for d in direct.documents] == ids(response)
    assert [hit["_score"] for hit in hits] == pytest.approx([d.score for d in direct.documents], abs=1e-6)
    for hit, scored in zip(hits, direct.documents, strict=True):
        best = hit[HIT_KEY]["best_passage"]
        assert scored.passage is not None and (best["start"], best["end"]) == (
            scored.passage.start,
            scored.passage.end,
        )
        assert best["text"] == texts[hit["_id"]][best["start"] : best["end"]]
        assert hit["highlight"]["_rerank.best_passage"] == [best["text"]]
    assert any(len(hit[HIT_KEY]["best_passage"]["text"]) < len(texts[hit["_id"]]) for hit in hits)
