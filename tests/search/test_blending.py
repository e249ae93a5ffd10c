"""Blending the reranker's scores with the first stage's: the arithmetic, its
properties at the extremes, and how a blended window is put back in the response."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rerank_bridge.search import (
    HIT_KEY,
    BlendSettings,
    RankedDocument,
    RequestError,
    Reranking,
    RerankSettings,
)
from rerank_bridge.search.blending import NORMALIZERS, Normalizer, blend, first_stage_values, normalise
from rerank_bridge.search.dialects import Elasticsearch
from rerank_bridge.search.pipeline import SearchPlan
from rerank_bridge.search.request_forms import parse_request

scores = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
# Few distinct values, so that ties are common.
tied_scores = st.sampled_from([0.0, 0.5, 1.0, 2.0])


@st.composite
def windows(draw: Any, values: Any = scores) -> tuple[list[float | None], list[float]]:
    size = draw(st.integers(min_value=0, max_value=30))
    first = sorted(draw(st.lists(values, min_size=size, max_size=size)), reverse=True)
    reranker = draw(st.lists(values, min_size=size, max_size=size))
    return list(first), reranker


def reranker_order(reranker: list[float]) -> list[int]:
    return sorted(range(len(reranker)), key=lambda i: (-reranker[i], i))


@given(windows(st.one_of(scores, tied_scores)), st.sampled_from(NORMALIZERS))
def test_weight_one_is_the_rerankers_order_and_weight_zero_the_first_stages(
    window: tuple[list[float | None], list[float]], normalizer: Normalizer
) -> None:
    first, reranker = window
    reranked = [i for i, _ in blend(first, reranker, BlendSettings(weight=1, normalizer=normalizer))]
    kept = [i for i, _ in blend(first, reranker, BlendSettings(weight=0, normalizer=normalizer))]
    assert reranked == reranker_order(reranker)
    assert kept == list(range(len(first)))


@given(windows(st.one_of(scores, tied_scores)), st.floats(0, 1), st.sampled_from(NORMALIZERS))
def test_no_hit_is_lost_or_repeated_and_scores_come_out_in_order(
    window: tuple[list[float | None], list[float]], weight: float, normalizer: Normalizer
) -> None:
    first, reranker = window
    order = blend(first, reranker, BlendSettings(weight=weight, normalizer=normalizer))
    assert sorted(i for i, _ in order) == list(range(len(first)))
    finals = [score for _, score in order]
    assert finals == sorted(finals, reverse=True)


@given(st.integers(1, 30), st.floats(0, 1), st.sampled_from(NORMALIZERS))
def test_ties_everywhere_keep_the_first_stage_order(size: int, weight: float, normalizer: Normalizer) -> None:
    order = blend([1.0] * size, [0.3] * size, BlendSettings(weight=weight, normalizer=normalizer))
    assert [i for i, _ in order] == list(range(size))


@given(windows(), st.sampled_from(NORMALIZERS))
def test_a_first_stage_without_scores_blends_by_its_ranks(
    window: tuple[list[float | None], list[float]], normalizer: Normalizer
) -> None:
    """A sort by a field leaves `_score` null: the window's order still counts."""
    first, reranker = window
    settings = BlendSettings(weight=0.3, normalizer=normalizer)
    by_rank = [-float(r) for r in range(1, len(first) + 1)]
    assert blend([None] * len(first), reranker, settings) == blend(by_rank, reranker, settings)


def test_each_normaliser_computes_what_its_name_says() -> None:
    values = [4.0, 2.0, 1.0, 1.0]
    assert normalise(values, "minmax") == [1.0, 1 / 3, 0.0, 0.0]
    assert normalise([3.0, 3.0], "minmax") == [1.0, 1.0]
    deviation = 1.5**0.5  # mean 2
    assert normalise(values, "zscore") == pytest.approx([2 / deviation, 0.0, -1 / deviation, -1 / deviation])
    assert normalise([3.0, 3.0], "zscore") == [0.0, 0.0]
    assert normalise(values, "rank") == [1.0, 1 / 2, 1 / 3, 1 / 4]
    assert normalise([1.0, 4.0], "rrf", rank_constant=10) == [1 / 12, 1 / 11]


def test_a_blend_is_the_weighted_sum_of_the_normalised_inputs() -> None:
    # minmax: first stage (10, 5, 0) -> (1, .5, 0); reranker (0, 1, 4) -> (0, .25, 1).
    # At 0.5 the first and last tie at 0.5: the reranker, not lighter, breaks the tie.
    order = blend([10.0, 5.0, 0.0], [0.0, 1.0, 4.0], BlendSettings(weight=0.5, normalizer="minmax"))
    assert order == [(2, 0.5), (0, 0.5), (1, 0.375)]
    lighter = blend([10.0, 5.0, 0.0], [0.0, 1.0, 4.0], BlendSettings(weight=0.4, normalizer="minmax"))
    assert [i for i, _ in lighter] == [0, 1, 2]
    assert [score for _, score in lighter] == pytest.approx([0.6, 0.4, 0.4])
    # rrf at 0.5 is plain reciprocal rank fusion halved.
    fused = dict(blend([3.0, 2.0, 1.0], [1.0, 3.0, 2.0], BlendSettings(weight=0.5, normalizer="rrf")))
    assert fused[1] == pytest.approx((1 / 62 + 1 / 61) / 2)


def test_first_stage_scores_that_do_not_say_the_order_give_way_to_ranks() -> None:
    assert first_stage_values([3.0, 2.0, 2.0]) == [3.0, 2.0, 2.0]
    assert first_stage_values([1.0, 3.0]) == [-1.0, -2.0]  # sorted by a field, scores tracked
    assert first_stage_values([1.0, None]) == [-1.0, -2.0]


def hit(doc_id: str, score: float | None, **source: Any) -> dict[str, Any]:
    return {"_index": "i", "_id": doc_id, "_score": score, "_source": source}


def response(*hits: dict[str, Any]) -> dict[str, Any]:
    return {"took": 1, "timed_out": False, "_shards": {}, "hits": {"total": {"value": 4}, "hits": list(hits)}}


def test_a_blended_response_scores_by_the_blend_and_keeps_both_inputs() -> None:
    settings = RerankSettings(
        fields=("t",), query_text="q", rank_window_size=4, blend=BlendSettings(weight=0.5)
    )
    plan = SearchPlan(parse_request({"query": {"match_all": {}}, "size": 4}, settings), Elasticsearch())
    base, candidates = plan.candidates(
        [response(hit("a", 10.0, t="x"), hit("b", 5.0, t="y"), hit("n", 4.0), hit("c", 0.0, t="z"))]
    )
    documents = [RankedDocument(2, "3", 4.0, False), RankedDocument(1, "1", 1.0, False)]
    documents.append(RankedDocument(0, "0", 0.0, False))
    out = plan.respond(base, candidates, Reranking(documents, "m"))
    hits = out["hits"]["hits"]
    # As in the arithmetic test above; the hit without text stays after the read ones.
    assert [h["_id"] for h in hits] == ["c", "a", "b", "n"]
    assert [h["_score"] for h in hits] == [0.5, 0.5, 0.375, None]
    assert hits[0][HIT_KEY] == {
        "first_stage_score": 0.0,
        "first_stage_rank": 4,
        "reranked": True,
        "reranker_score": 4.0,
    }
    assert hits[3][HIT_KEY] == {"first_stage_score": 4.0, "first_stage_rank": 3, "reranked": False}
    assert out["rerank"]["blend"] == {"weight": 0.5, "normalizer": "minmax"}
    assert out["hits"]["max_score"] == 0.5


def test_min_score_reads_the_rerankers_own_score_under_a_blend() -> None:
    settings = RerankSettings(
        fields=("t",), query_text="q", rank_window_size=3, min_score=0.5, blend=BlendSettings(weight=0.1)
    )
    plan = SearchPlan(parse_request({"size": 3}, settings), Elasticsearch())
    base, candidates = plan.candidates([response(hit("a", 3.0, t="x"), hit("b", 2.0, t="y"))])
    documents = [RankedDocument(1, "1", 0.9, False), RankedDocument(0, "0", 0.2, False)]
    out = plan.respond(base, candidates, Reranking(documents, "m"))
    assert [h["_id"] for h in out["hits"]["hits"]] == ["b"]


def test_top_n_keeps_the_best_of_the_blended_order() -> None:
    blended = BlendSettings(weight=0.3)
    settings = RerankSettings(fields=("t",), query_text="q", rank_window_size=3, top_n=1, blend=blended)
    plan = SearchPlan(parse_request({"size": 3}, settings), Elasticsearch())
    hits = [hit("a", 3.0, t="x"), hit("b", 2.0, t="y"), hit("c", 1.0, t="z")]
    base, candidates = plan.candidates([response(*hits)])
    # The model puts c first; blended at 0.3 with min-max: a 0.7, b 0.5, c 0.3.
    documents = [RankedDocument(2, "2", 1.0, False), RankedDocument(1, "1", 0.5, False)]
    documents.append(RankedDocument(0, "0", 0.0, False))
    out = plan.respond(base, candidates, Reranking(documents, "m"))
    assert [h["_id"] for h in out["hits"]["hits"]] == ["a"]
    assert out["hits"]["hits"][0]["_score"] == pytest.approx(0.7)


def test_a_request_blends_through_its_own_section_and_may_turn_a_default_off() -> None:
    defaults = RerankSettings(fields=("t",), query_text="q", blend=BlendSettings(weight=0.7))
    asked = {"ext": {"rerank_bridge": {"rerank": {"blend": {"weight": 0.2, "normalizer": "rrf"}}}}}
    assert parse_request(asked, defaults).settings.blend == BlendSettings(weight=0.2, normalizer="rrf")
    off = {"ext": {"rerank_bridge": {"rerank": {"blend": None}}}}
    assert parse_request(off, defaults).settings.blend is None
    assert parse_request({}, defaults).settings.blend == BlendSettings(weight=0.7)


@pytest.mark.parametrize(
    ("blend_section", "field"),
    [
        ({"weight": 1.5}, "ext.rerank_bridge.rerank.blend.weight"),
        ({"weight": "0.5"}, "ext.rerank_bridge.rerank.blend.weight"),
        ({"normalizer": "softmax"}, "ext.rerank_bridge.rerank.blend.normalizer"),
        ({"rank_constant": 0}, "ext.rerank_bridge.rerank.blend.rank_constant"),
        ({"wieght": 0.5}, "ext.rerank_bridge.rerank.blend.wieght"),
        (0.5, "ext.rerank_bridge.rerank.blend"),
    ],
)
def test_a_bad_blend_names_its_field(blend_section: Any, field: str) -> None:
    body = {"ext": {"rerank_bridge": {"rerank": {"blend": blend_section}}}}
    with pytest.raises(RequestError) as raised:
        parse_request(body, RerankSettings(fields=("t",), query_text="q"))
    assert raised.value.field == field
