"""Retrieval metrics through ir-measures (pytrec_eval underneath), so the
numbers match what the field reports."""

from __future__ import annotations

import ir_measures
from ir_measures import RR, R, nDCG

Run = dict[str, dict[str, float]]  # query id -> doc id -> score (higher first)
Qrels = dict[str, dict[str, int]]


def evaluate(qrels: Qrels, run: Run, recall_depths: list[int]) -> dict[str, float]:
    measures = [nDCG @ 10, RR @ 10, *[R @ depth for depth in recall_depths]]
    values = ir_measures.calc_aggregate(measures, qrels, run)
    names = {nDCG @ 10: "ndcg@10", RR @ 10: "mrr@10", **{R @ d: f"recall@{d}" for d in recall_depths}}
    return {names[measure]: float(value) for measure, value in values.items()}


def ranked_run(rankings: dict[str, list[str]]) -> Run:
    """A run from ordered id lists: scores that reproduce the order exactly."""
    return {
        query: {doc: float(len(docs) - rank) for rank, doc in enumerate(docs)}
        for query, docs in rankings.items()
    }
