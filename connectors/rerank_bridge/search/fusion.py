"""Connector-side fusion of a keyword and a vector hit list, so hybrid search
works on any licence and without plugins."""

from __future__ import annotations

from typing import Any

from rerank_bridge.search.blending import normalise

Hit = dict[str, Any]


def hit_key(hit: Hit) -> tuple[str, str]:
    return hit.get("_index", ""), hit["_id"]


def reciprocal_rank_fusion(
    lists: list[list[Hit]], rank_constant: int, window: int
) -> list[tuple[Hit, float]]:
    """score(d) = sum over lists of 1 / (rank_constant + rank), ranks from 1.
    A hit keeps the object of the list it appears in first (keyword first, so
    its highlight survives); ties keep that first appearance order."""
    scores: dict[tuple[str, str], float] = {}
    hits: dict[tuple[str, str], Hit] = {}
    for hit_list in lists:
        for rank, hit in enumerate(hit_list, start=1):
            key = hit_key(hit)
            hits.setdefault(key, hit)
            scores[key] = scores.get(key, 0.0) + 1.0 / (rank_constant + rank)
    ordered = sorted(hits, key=lambda key: -scores[key])
    return [(hits[key], scores[key]) for key in ordered[:window]]


def _min_max(hit_list: list[Hit]) -> dict[tuple[str, str], float]:
    values = normalise([float(hit["_score"] or 0.0) for hit in hit_list], "minmax")
    return {hit_key(h): v for h, v in zip(hit_list, values, strict=True)}


def linear_fusion(lists: list[list[Hit]], weights: list[float], window: int) -> list[tuple[Hit, float]]:
    """score(d) = sum of weight * min-max normalised score; absent counts as 0."""
    scores: dict[tuple[str, str], float] = {}
    hits: dict[tuple[str, str], Hit] = {}
    for hit_list, weight in zip(lists, weights, strict=True):
        for key, normalised in _min_max(hit_list).items():
            scores[key] = scores.get(key, 0.0) + weight * normalised
        for hit in hit_list:
            hits.setdefault(hit_key(hit), hit)
    ordered = sorted(hits, key=lambda key: -scores[key])
    return [(hits[key], scores[key]) for key in ordered[:window]]
