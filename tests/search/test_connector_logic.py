"""The connector's engine-independent logic: request forms, fusion, and how a
response is put back together (no engine needed: these are pure functions)."""

from __future__ import annotations

from typing import Any

import pytest

from rerank_bridge.search import HIT_KEY, Passage, RankedDocument, RequestError, Reranking, RerankSettings
from rerank_bridge.search.dialects import Elasticsearch, OpenSearch
from rerank_bridge.search.fusion import linear_fusion, reciprocal_rank_fusion
from rerank_bridge.search.pipeline import SearchPlan, hit_text
from rerank_bridge.search.request_forms import parse_request
from rerank_bridge.search.settings import ChunkingSettings, KnnSearch

SETTINGS = RerankSettings(fields=("title", "body.text"), query_text="q", rank_window_size=5)
ES_RERANKER = {
    "retriever": {"standard": {"query": {"match": {"t": "x"}}}},
    "field": "t",
    "inference_text": "x",
}


def hit(doc_id: str, score: float, **source: Any) -> dict[str, Any]:
    return {"_index": "i", "_id": doc_id, "_score": score, "_source": source}


def response(*hits: dict[str, Any]) -> dict[str, Any]:
    return {"took": 3, "timed_out": False, "_shards": {}, "hits": {"total": {"value": 9}, "hits": list(hits)}}


def test_rrf_sums_reciprocal_ranks_and_keeps_each_hit_once() -> None:
    keyword = [hit("a", 9), hit("b", 5), hit("c", 1)]
    vector = [hit("c", 0.9), hit("a", 0.8)]
    fused = reciprocal_rank_fusion([keyword, vector], rank_constant=60, window=10)
    scores = {h["_id"]: s for h, s in fused}
    assert scores["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert scores["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert scores["b"] == pytest.approx(1 / 62)
    assert [h["_id"] for h, _ in fused] == ["a", "c", "b"]


def test_linear_fusion_min_max_normalises_each_list() -> None:
    keyword = [hit("a", 10), hit("b", 6), hit("c", 2)]
    vector = [hit("c", 0.9), hit("b", 0.5)]
    # a: 0.7 * 1 + 0; b: 0.7 * 0.5 + 0.3 * 0 (lowest vector score); c: 0 + 0.3 * 1.
    top_two = {h["_id"]: s for h, s in linear_fusion([keyword, vector], [0.7, 0.3], window=2)}
    assert top_two == pytest.approx({"a": 0.7, "b": 0.35})
    every = {h["_id"]: s for h, s in linear_fusion([keyword, vector], [0.7, 0.3], window=3)}
    assert every["c"] == pytest.approx(0.3)


def test_text_comes_from_dotted_paths_and_arrays() -> None:
    source = {"title": "T", "body": [{"text": "one"}, {"text": "two"}, {"other": 1}]}
    assert hit_text({"_source": source}, ("title", "body.text")) == "T\none\ntwo"
    assert hit_text({"fields": {"title": ["F"]}, "_source": source}, ("title",)) == "F"


def plan_for(body: dict[str, Any], settings: RerankSettings = SETTINGS) -> SearchPlan:
    return SearchPlan(parse_request(body, settings), Elasticsearch())


def test_first_stage_fetches_the_window_and_the_text_fields() -> None:
    plan = plan_for({"query": {"match_all": {}}, "from": 2, "size": 3, "_source": False})
    (call,) = plan.calls(None)
    assert call.body["size"] == 5 and call.body["from"] == 0
    assert call.body["fields"] == ["title", "body.text"]
    assert call.body["_source"] is False


def test_knn_calls_follow_each_engines_syntax() -> None:
    request = parse_request({"size": 2}, SETTINGS, knn=KnnSearch(field="v", query_vector=(1.0, 0.0)))
    (es_call,) = SearchPlan(request, Elasticsearch()).calls(None)
    assert es_call.body["knn"] == {"field": "v", "query_vector": [1.0, 0.0], "k": 5, "num_candidates": 10}
    (os_call,) = SearchPlan(request, OpenSearch()).calls(None)
    assert os_call.body["query"] == {"knn": {"v": {"vector": [1.0, 0.0], "k": 5}}}


def ranking(*pairs: tuple[str, float]) -> Reranking:
    documents = [RankedDocument(int(i), i, score, False) for i, score in pairs]
    return Reranking(documents, "m")


def test_hits_without_text_are_kept_after_the_scored_ones() -> None:
    plan = plan_for({"query": {"match_all": {}}, "size": 5})
    base, candidates = plan.candidates(
        [response(hit("a", 3, title="x"), hit("b", 2), hit("c", 1, title="z"))]
    )
    assert plan.documents(candidates) == [("0", "x"), ("2", "z")]
    out = plan.respond(base, candidates, ranking(("2", 0.9), ("0", 0.1)))
    hits = out["hits"]["hits"]
    assert [h["_id"] for h in hits] == ["c", "a", "b"]
    assert [h["_score"] for h in hits] == [0.9, 0.1, None]
    assert hits[2][HIT_KEY] == {"first_stage_score": 2, "first_stage_rank": 2, "reranked": False}
    assert out["hits"]["max_score"] == 0.9 and out["hits"]["total"] == {"value": 9}


def test_min_score_and_top_n_cut_the_reranked_list() -> None:
    settings = RerankSettings(fields=("title",), query_text="q", rank_window_size=5, min_score=0.2, top_n=1)
    plan = plan_for({"query": {"match_all": {}}, "size": 5}, settings)
    base, candidates = plan.candidates(
        [response(hit("a", 3, title="x"), hit("b", 2, title="y"), hit("c", 1, title="z"))]
    )
    out = plan.respond(base, candidates, ranking(("1", 0.9), ("0", 0.5), ("2", 0.1)))
    assert [h["_id"] for h in out["hits"]["hits"]] == ["b"]


@pytest.mark.parametrize(
    ("body", "settings", "field"),
    [
        ({"size": 10}, RerankSettings(fields=("t",), query_text="q", rank_window_size=5), "size"),
        ({"from": -1}, SETTINGS, "from"),
        ({}, RerankSettings(query_text="q"), "rerank.fields"),
        ({}, RerankSettings(fields=("t",)), "rerank.query_text"),
        ({"retriever": {"rrf": {}}}, SETTINGS, "retriever.text_similarity_reranker"),
        (
            {"retriever": {"text_similarity_reranker": {"field": "t", "inference_text": "q"}}},
            SETTINGS,
            "retriever.text_similarity_reranker.retriever",
        ),
        ({"ext": {"rerank": {"query_context": {}}}}, SETTINGS, "ext.rerank.query_context"),
        (
            {"query": {}, "ext": {"rerank": {"query_context": {"query_text_path": "query.nope"}}}},
            SETTINGS,
            "ext.rerank.query_context.query_text_path",
        ),
        ({"ext": {"rerank_bridge": {"rerank": {"windw": 3}}}}, SETTINGS, "ext.rerank_bridge.rerank.windw"),
        ({"ext": {"rerank_bridge": {"rerank": {"top_n": 0}}}}, SETTINGS, "ext.rerank_bridge.rerank.top_n"),
        (
            {"ext": {"rerank_bridge": {"rerank": {"chunking": {"size": 0}}}}},
            SETTINGS,
            "ext.rerank_bridge.rerank.chunking.size",
        ),
        (
            {"ext": {"rerank_bridge": {"rerank": {"chunking": {"aggregation": "median"}}}}},
            SETTINGS,
            "ext.rerank_bridge.rerank.chunking.aggregation",
        ),
        (
            {"ext": {"rerank_bridge": {"rerank": {"best_passage": "yes"}}}},
            SETTINGS,
            "ext.rerank_bridge.rerank.best_passage",
        ),
        (
            {"retriever": {"text_similarity_reranker": {**ES_RERANKER, "chunk_rescorer": {"size": 0}}}},
            SETTINGS,
            "retriever.text_similarity_reranker.chunk_rescorer.size",
        ),
        (
            {
                "retriever": {
                    "text_similarity_reranker": {
                        **ES_RERANKER,
                        "chunk_rescorer": {"chunking_settings": {"strategy": "recursive"}},
                    }
                }
            },
            SETTINGS,
            "retriever.text_similarity_reranker.chunk_rescorer.chunking_settings.strategy",
        ),
    ],
)
def test_bad_rerank_requests_name_the_field(
    body: dict[str, Any], settings: RerankSettings, field: str
) -> None:
    with pytest.raises(RequestError) as raised:
        parse_request(body, settings)
    assert raised.value.field == field
    assert raised.value.error_body()["status"] == 400


ES_RERANKER = {
    "retriever": {"standard": {"query": {"match": {"t": "x"}}}},
    "field": "t",
    "inference_text": "x",
}


@pytest.mark.parametrize(
    ("chunk_rescorer", "expected"),
    [
        ({}, ChunkingSettings()),
        (
            {"size": 3, "chunking_settings": {"strategy": "word", "max_chunk_size": 40, "overlap": 5}},
            ChunkingSettings(size=40, overlap=5),
        ),
        ({"chunking_settings": {"strategy": "none"}}, None),
    ],
)
def test_elasticsearch_chunk_rescorer_becomes_chunking(
    chunk_rescorer: dict[str, Any], expected: ChunkingSettings | None
) -> None:
    body = {"retriever": {"text_similarity_reranker": {**ES_RERANKER, "chunk_rescorer": chunk_rescorer}}}
    assert parse_request(body, RerankSettings()).settings.chunking == expected


def test_the_best_passage_is_added_to_the_hit_and_as_a_highlight() -> None:
    settings = RerankSettings(fields=("t",), query_text="q", rank_window_size=5, best_passage="highlight")
    plan = SearchPlan(parse_request({"query": {"match_all": {}}, "size": 2}, settings), Elasticsearch())
    text = "first part. the answer is here. last part."
    base, candidates = plan.candidates([response(hit("a", 1.0, t=text), hit("b", 0.5, t="other"))])
    best = Passage(12, 31, 0.9)
    ranking = Reranking(
        [RankedDocument(0, "0", 0.9, False, best), RankedDocument(1, "1", 0.1, False)],
        "m",
    )
    first, second = plan.respond(base, candidates, ranking)["hits"]["hits"]
    assert first[HIT_KEY]["best_passage"] == {
        "start": 12,
        "end": 31,
        "score": 0.9,
        "text": "the answer is here.",
    }
    assert first["highlight"] == {"_rerank.best_passage": ["the answer is here."]}
    assert "best_passage" not in second[HIT_KEY] and "highlight" not in second


def test_own_ext_section_sets_everything() -> None:
    body = {
        "query": {"match": {"t": "x"}},
        "size": 5,
        "ext": {
            "rerank_bridge": {
                "rerank": {"fields": "t", "query_text": "x", "rank_window_size": 7},
                "knn": {"field": "v"},
                "hybrid": {"method": "linear", "keyword_weight": 0.3},
            }
        },
    }
    request = parse_request(body, RerankSettings())
    assert request.settings.fields == ("t",) and request.window == 7
    assert (
        request.knn == KnnSearch(field="v")
        and request.hybrid is not None
        and request.hybrid.method == "linear"
    )
    assert "ext" not in request.body


def test_stored_vectors_go_with_the_model_most_of_the_windows_indices_record() -> None:
    from rerank_bridge.search.settings import StoredVectorSettings
    from rerank_bridge.search.stored_vectors import hit_vector, recorded_models, stored_vector_use

    def with_vector(doc_id: str, index: str, vector: Any) -> dict[str, Any]:
        return {"_index": index, "_id": doc_id, "fields": {"vec": vector}}

    mappings = {
        "a": {"mappings": {"_meta": {"rerank_bridge": {"vectors": {"vec": {"model": "m1"}}}}}},
        "b": {"mappings": {"_meta": {"rerank_bridge": {"vectors": {"vec": {"model": "m1"}}}}}},
        "c": {"mappings": {"_meta": {"rerank_bridge": {"vectors": {"vec": {"model": "m2"}}}}}},
        "d": {"mappings": {}},
    }
    recorded = recorded_models(mappings, "vec")
    assert recorded == {"a": "m1", "b": "m1", "c": "m2", "d": None}
    hits = {
        "0": with_vector("x", "a", [1.0, 0.0]),
        "1": with_vector("y", "b", [0.0, 1.0]),
        "2": with_vector("z", "c", [1.0, 1.0]),
        "3": with_vector("w", "d", [1.0, 2.0]),
        "4": with_vector("v", "a", None),
    }
    documents = [(doc_id, "text") for doc_id in hits]
    use = stored_vector_use(StoredVectorSettings(field="vec"), documents, hits, recorded)
    assert use.model == "m1" and use.embeddings == {"0": [1.0, 0.0], "1": [0.0, 1.0]}
    assert use.notes == [
        "no model recorded for 'vec' in the mapping of d",
        "indices record other models too (m2): their hits are encoded",
        "1 hits have no vector in 'vec'",
    ]
    # Named in the settings, the model covers every hit that has a vector.
    named = stored_vector_use(StoredVectorSettings(field="vec", model="m2"), documents, hits, {})
    assert sorted(named.embeddings) == ["0", "1", "2", "3"]
    # Only a flat list of finite numbers is a vector.
    for bad in ([], [1.0, float("nan")], [1.0, "2"], [True, 1.0], [[1.0, 2.0]], "1,2"):
        assert hit_vector(with_vector("x", "a", bad), "vec") is None


def test_stored_vector_settings_are_strict() -> None:
    with pytest.raises(RequestError) as caught:
        RerankSettings.from_dict({"stored_vectors": {"field": "v", "dims": 3}})
    assert "stored_vectors" in caught.value.field
    with pytest.raises(RequestError):
        RerankSettings.from_dict({"stored_vectors": {"field": ""}})
