"""What the live search tests check of a response: the first stage it came from,
and that a window was reranked by the scoring server, no hit lost or repeated."""

from __future__ import annotations

from typing import Any

import pytest

from rerank_bridge.search import RerankClient
from support.live_fixtures import Engine

WINDOW = 20


def match(query: str, size: int = WINDOW) -> dict[str, Any]:
    return {"query": {"match": {"text": query}}, "size": size}


def ids(response: dict[str, Any]) -> list[str]:
    return [hit["_id"] for hit in response["hits"]["hits"]]


def first_stage(engine: Engine, body: dict[str, Any]) -> dict[str, Any]:
    result = engine.client.search(index=engine.index, body=body)
    return dict(getattr(result, "body", result))


def knn_body(engine: Engine, vector: list[float], k: int = WINDOW) -> dict[str, Any]:
    if engine.kind == "elasticsearch":
        return {
            "knn": {"field": "vector", "query_vector": vector, "k": k, "num_candidates": 2 * k},
            "size": k,
        }
    return {"query": {"knn": {"vector": {"vector": vector, "k": k}}}, "size": k}


def assert_reranked(
    response: dict[str, Any], window: dict[str, Any], reranker: RerankClient, query: str
) -> None:
    """Same hits as the window, each once, ordered and scored by the reranker, and
    the connector's `rerank` section says so."""
    assert_ordered_by_reranker(response, window, reranker, query)
    assert response["rerank"]["reranked"] is True


def assert_ordered_by_reranker(
    response: dict[str, Any], window: dict[str, Any], reranker: RerankClient, query: str
) -> None:
    """Same hits as the window, each once, ordered and scored by the reranker."""
    hits = response["hits"]["hits"]
    assert sorted(ids(response)) == sorted(ids(window))
    assert len(set(ids(response))) == len(hits)
    scores = [hit["_score"] for hit in hits]
    assert scores == sorted(scores, reverse=True)
    texts = {hit["_id"]: hit["_source"]["text"] for hit in window["hits"]["hits"]}
    direct = reranker.rerank(query, list(texts.items()))
    assert [d.id for d in direct.documents] == ids(response)
    assert scores == pytest.approx([d.score for d in direct.documents], abs=1e-6)
