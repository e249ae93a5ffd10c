"""Blending on real Elasticsearch and OpenSearch nodes: through the Python
connector (BM25 and hybrid first stages) and through the HTTP bridge, per
request and per index from its configuration."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rerank_bridge.bridge.config import load_config
from rerank_bridge.search import (
    HIT_KEY,
    BlendSettings,
    Hybrid,
    KnnSearch,
    RerankClient,
    RerankingSearch,
    RerankSettings,
)
from rerank_bridge.search.blending import blend
from rerank_bridge.server.app import BackgroundServer
from support.bridge_runner import RunningBridge
from support.live_fixtures import Corpus, Engine
from support.raw_http import send
from support.search_checks import WINDOW, first_stage, ids, match

pytestmark = pytest.mark.live
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def query(corpus: Corpus) -> str:
    return str(corpus.queries[5]["text"])


def settings(query: str, blend_settings: BlendSettings | None) -> RerankSettings:
    return RerankSettings(fields=("text",), query_text=query, rank_window_size=WINDOW, blend=blend_settings)


def assert_blended(response: dict[str, Any], expected: BlendSettings) -> None:
    """The order and `_score`s are the blend of the two inputs each hit carries."""
    hits = response["hits"]["hits"]
    by_first_stage = sorted(hits, key=lambda hit: hit[HIT_KEY]["first_stage_rank"])
    order = blend(
        [hit[HIT_KEY]["first_stage_score"] for hit in by_first_stage],
        [hit[HIT_KEY]["reranker_score"] for hit in by_first_stage],
        expected,
    )
    assert ids(response) == [by_first_stage[i]["_id"] for i, _ in order]
    assert [hit["_score"] for hit in hits] == pytest.approx([score for _, score in order])
    assert response["rerank"]["blend"] == expected.describe()


@pytest.mark.parametrize("normalizer", ["minmax", "zscore", "rank", "rrf"])
def test_the_connector_blends_a_bm25_window_and_keeps_every_hit(
    engine: Engine, reranker: RerankClient, query: str, normalizer: str
) -> None:
    search = RerankingSearch(engine.client, reranker)
    chosen = BlendSettings(weight=0.5, normalizer=normalizer)  # type: ignore[arg-type]
    response = search.search(engine.index, match(query), rerank=settings(query, chosen))
    window = first_stage(engine, match(query))
    assert sorted(ids(response)) == sorted(ids(window)) and len(ids(response)) == WINDOW
    assert_blended(response, chosen)
    # Both inputs are the real ones: the engine's BM25 score and the model's own score.
    engine_scores = {hit["_id"]: hit["_score"] for hit in window["hits"]["hits"]}
    model = {
        d.id: d.score
        for d in reranker.rerank(
            query, [(h["_id"], h["_source"]["text"]) for h in window["hits"]["hits"]]
        ).documents
    }
    for hit in response["hits"]["hits"]:
        assert hit[HIT_KEY]["first_stage_score"] == pytest.approx(engine_scores[hit["_id"]])
        assert hit[HIT_KEY]["reranker_score"] == pytest.approx(model[hit["_id"]], abs=1e-6)


def test_weight_zero_is_the_engines_order_and_weight_one_the_rerankers(
    engine: Engine, reranker: RerankClient, query: str
) -> None:
    search = RerankingSearch(engine.client, reranker)
    kept = search.search(engine.index, match(query), rerank=settings(query, BlendSettings(weight=0)))
    assert ids(kept) == ids(first_stage(engine, match(query)))
    reranked = search.search(engine.index, match(query), rerank=settings(query, BlendSettings(weight=1)))
    plain = search.search(engine.index, match(query), rerank=settings(query, None))
    assert ids(reranked) == ids(plain)
    assert "blend" not in plain["rerank"]


def test_a_hybrid_window_blends_the_fused_score_with_the_rerankers(
    engine: Engine, reranker: RerankClient, query: str
) -> None:
    """With the default models the reranker is the kNN leg's own model: reranking
    alone keeps only kNN's order, a blend keeps the keyword half."""
    search = RerankingSearch(engine.client, reranker)
    knn, hybrid = KnnSearch(field="vector"), Hybrid(method="rrf")
    chosen = BlendSettings(weight=0.5, normalizer="rrf")
    blended = search.search(
        engine.index, match(query), rerank=settings(query, chosen), knn=knn, hybrid=hybrid
    )
    assert_blended(blended, chosen)
    kept = search.search(
        engine.index, match(query), rerank=settings(query, BlendSettings(weight=0)), knn=knn, hybrid=hybrid
    )
    fused = [hit[HIT_KEY]["first_stage_rank"] for hit in kept["hits"]["hits"]]
    assert fused == list(range(1, WINDOW + 1))


@pytest.fixture
def configured(engine: Engine, tmp_path: Path) -> Iterator[str]:
    alias = f"blended-{engine.index[-8:]}"
    engine.client.indices.put_alias(index=engine.index, name=alias)
    yield alias
    engine.client.indices.delete_alias(index=engine.index, name=alias)


def bridge_from_file(
    tmp_path: Path, engine: Engine, server: BackgroundServer, indices: dict[str, Any]
) -> RunningBridge:
    path = tmp_path / "bridge.json"
    path.write_text(
        json.dumps(
            {"engine": {"url": engine.url}, "reranker": {"address": server.address}, "indices": indices}
        )
    )
    return RunningBridge(load_config(path, environ={}))


def test_the_bridge_blends_per_index_from_its_file_and_a_request_overrides_it(
    engine: Engine, scoring_server: BackgroundServer, configured: str, query: str, tmp_path: Path
) -> None:
    section = {
        "fields": ["text"],
        "rank_window_size": WINDOW,
        "blend": {"weight": 0.3, "normalizer": "zscore"},
    }
    with bridge_from_file(tmp_path, engine, scoring_server, {"blended-*": section}) as bridge:
        answer = send(bridge.port, "POST", f"/{configured}/_search", JSON, json.dumps(match(query)).encode())
        assert answer.status == 200
        assert_blended(answer.json(), BlendSettings(weight=0.3, normalizer="zscore"))
        assert sorted(ids(answer.json())) == sorted(ids(first_stage(engine, match(query))))
        asked = {
            **match(query),
            "ext": {"rerank_bridge": {"rerank": {"blend": {"weight": 0.9, "normalizer": "rank"}}}},
        }
        override = send(bridge.port, "POST", f"/{configured}/_search", JSON, json.dumps(asked).encode())
        assert_blended(override.json(), BlendSettings(weight=0.9, normalizer="rank"))
        off = {**match(query), "ext": {"rerank_bridge": {"rerank": {"blend": None}}}}
        plain = send(bridge.port, "POST", f"/{configured}/_search", JSON, json.dumps(off).encode()).json()
        assert "blend" not in plain["rerank"]
        assert [h["_score"] for h in plain["hits"]["hits"]] == [
            h[HIT_KEY]["reranker_score"] for h in plain["hits"]["hits"]
        ]
        bad = {**match(query), "ext": {"rerank_bridge": {"rerank": {"blend": {"weight": 2}}}}}
        refused = send(bridge.port, "POST", f"/{configured}/_search", JSON, json.dumps(bad).encode())
        assert refused.status == 400 and "ext.rerank_bridge.rerank.blend.weight" in refused.body.decode()
