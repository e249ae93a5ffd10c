"""Runs every query through each first stage, then reranks the top N of each
window for every N asked, and scores all runs against the judgments.

A pointwise model (cross-encoder, bi-encoder) scores each document on its
own, so each (query, document) pair is scored once and every depth reuses
it. A listwise model's scores depend on the whole window: each depth is a
call of its own. Latencies are real calls: first stage for every query,
reranking at each depth on the first `latency_queries` queries.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from rerank_bridge_proto.v1 import rerank_pb2 as pb
from rerank_connectors.client import RerankClient
from rerank_connectors.connector import RerankingSearch
from rerank_connectors.evaluation.beir import Collection
from rerank_connectors.evaluation.cache import JsonCache, model_key
from rerank_connectors.evaluation.measures import evaluate, ranked_run
from rerank_connectors.settings import Hybrid, KnnSearch, RerankSettings

TEXT_FIELDS = ("title", "text")


@dataclass
class StageRun:
    rankings: dict[str, list[str]] = field(default_factory=dict)
    texts: dict[str, dict[str, str]] = field(default_factory=dict)
    first_stage_ms: list[float] = field(default_factory=list)


def run_first_stage(
    search: RerankingSearch, index: str, stage: str, query: str, vector: list[float], depth: int
) -> tuple[list[str], dict[str, str], float]:
    body = {"query": {"multi_match": {"query": query, "fields": list(TEXT_FIELDS)}}, "size": depth}
    settings = RerankSettings(fields=TEXT_FIELDS, query_text=query, rank_window_size=depth)
    knn = KnnSearch(field="vector", query_vector=tuple(vector))
    if stage == "bm25":
        result = search.first_stage(index, body, rerank=settings)
    elif stage == "knn":
        result = search.first_stage(index, {"size": depth}, rerank=settings, knn=knn)
    else:
        result = search.first_stage(index, body, rerank=settings, knn=knn, hybrid=Hybrid(method="rrf"))
    ranking = [c.hit["_id"] for c in result.candidates]
    texts = {c.hit["_id"]: c.text for c in result.candidates}
    return ranking, texts, result.timer.ms.get("first_stage", 0.0)


def _reranked(ranking: list[str], scores: dict[str, float], depth: int) -> list[str]:
    """The top `depth` by rerank score (ties keep first-stage order), then the rest as they were."""
    head = sorted(ranking[:depth], key=lambda doc: -scores[doc])
    return head + ranking[depth:]


def evaluate_collection(
    search: RerankingSearch,
    reranker: RerankClient,
    index: str,
    collection: Collection,
    stages: list[str],
    depths: list[int],
    latency_queries: int = 20,
    chunking: pb.Chunking | None = None,
    max_document_tokens: int | None = None,
) -> dict[str, Any]:
    """With `chunking`, every reranked run is made twice, documents read by their
    head (cut to the token cap) and as chunks, rows told apart by `long_documents`."""
    info = reranker.model_info()
    modes = {"head": None, **({"chunks": chunking} if chunking is not None else {})}
    pointwise = info.limits.max_documents_per_pass <= 1
    deepest = max(depths)
    query_ids = list(collection.queries)
    texts = [collection.queries[q] for q in query_ids]
    vectors = [
        v
        for start in range(0, len(texts), 128)
        for v in reranker.embed(texts[start : start + 128], timeout=600)
    ]
    runs: dict[str, StageRun] = {stage: StageRun() for stage in stages}
    for query_id, query, vector in tqdm(
        list(zip(query_ids, texts, vectors, strict=True)), desc="first stages"
    ):
        for stage in stages:
            ranking, passages, ms = run_first_stage(search, index, stage, query, vector, deepest)
            runs[stage].rankings[query_id] = ranking
            runs[stage].texts[query_id] = passages
            runs[stage].first_stage_ms.append(ms)

    def rerank(query: str, documents: list[tuple[str, str]], mode: str) -> Any:
        return reranker.rerank(
            query, documents, timeout=600, max_document_tokens=max_document_tokens, chunking=modes[mode]
        )

    def score(query: str, documents: list[tuple[str, str]], mode: str) -> dict[str, float]:
        documents = [(doc, text) for doc, text in documents if text]
        if not documents:
            return {}
        return {d.id: d.score for d in rerank(query, documents, mode).documents}

    # Rerank scores, per (mode, stage, depth) for listwise models, per (mode, document) for pointwise ones.
    scores: dict[tuple[str, str, int], dict[str, dict[str, float]]] = {}
    caches: dict[str, dict[str, dict[str, float]]] = {}
    for mode in modes:
        settings = modes[mode]
        reading = (
            f"{mode}-{max_document_tokens}-{settings.size}-{settings.overlap}"
            if settings
            else f"{mode}-{max_document_tokens}"
        )
        key = f"{model_key(info.model_id, info)}-{collection.name}-{len(collection.corpus)}-{reading}"
        stored = JsonCache("scores", key)
        cache = caches[mode] = (stored.load() or {}) if pointwise else {}
        for query_id in tqdm(query_ids, desc=f"reranking ({mode})"):
            query = collection.queries[query_id]
            if pointwise:
                known = cache.setdefault(query_id, {})
                union = {doc: text for stage in stages for doc, text in runs[stage].texts[query_id].items()}
                known.update(
                    score(query, [(doc, text) for doc, text in union.items() if doc not in known], mode)
                )
                continue
            for stage in stages:
                window = runs[stage].rankings[query_id]
                for depth in depths:
                    documents = [(doc, runs[stage].texts[query_id][doc]) for doc in window[:depth]]
                    scores.setdefault((mode, stage, depth), {})[query_id] = score(query, documents, mode)
        if pointwise:
            stored.save(cache)

    latency: dict[tuple[str, str, int], list[float]] = {}
    for query_id in query_ids[:latency_queries]:
        for mode in modes:
            for stage in stages:
                window = runs[stage].rankings[query_id]
                for depth in depths:
                    documents = [
                        (d, runs[stage].texts[query_id][d])
                        for d in window[:depth]
                        if runs[stage].texts[query_id][d]
                    ]
                    if not documents:
                        continue
                    started = time.perf_counter()
                    rerank(collection.queries[query_id], documents, mode)
                    latency.setdefault((mode, stage, depth), []).append((time.perf_counter() - started) * 1e3)

    results = []
    recall_depths = sorted({*depths, deepest})
    for stage in stages:
        first_ms = statistics.median(runs[stage].first_stage_ms)
        base = evaluate(collection.qrels, ranked_run(runs[stage].rankings), recall_depths)
        results.append({"stage": stage, "rerank_depth": 0, **base, "first_stage_ms_p50": round(first_ms, 2)})
        for mode in modes:
            for depth in depths:
                rankings = {}
                for query_id, ranking in runs[stage].rankings.items():
                    doc_scores = (
                        caches[mode][query_id] if pointwise else scores[(mode, stage, depth)][query_id]
                    )
                    # Documents with no text were not scored: they stay below the scored ones.
                    complete = {doc: doc_scores.get(doc, float("-inf")) for doc in ranking}
                    rankings[query_id] = _reranked(ranking, complete, depth)
                metrics = evaluate(collection.qrels, ranked_run(rankings), recall_depths)
                rerank_ms = latency.get((mode, stage, depth), [0.0])
                row = {
                    "stage": stage,
                    "rerank_depth": depth,
                    **metrics,
                    "first_stage_ms_p50": round(first_ms, 2),
                    "rerank_ms_p50": round(statistics.median(rerank_ms), 2),
                }
                results.append({**row, "long_documents": mode} if chunking is not None else row)
    return {
        "dataset": collection.name,
        "queries": len(query_ids),
        "documents": len(collection.corpus),
        "model": info.model_id,
        "model_kind": info.kind,
        "model_runtime": info.runtime or "torch",
        "model_dtype": info.dtype,
        "embed_model": info.embed_model_id,
        "depths": depths,
        "timed_queries": len(query_ids[:latency_queries]),
        "max_document_tokens": max_document_tokens,
        "chunking": {"size": chunking.size, "overlap": chunking.overlap} if chunking is not None else None,
        "results": results,
    }
