"""Runs every query through each first stage, then reranks the top N of each
window for every N asked, and scores all runs against the judgments.

A pointwise model (cross-encoder, bi-encoder) scores each document on its
own, so each (query, document) pair is scored once and every depth reuses
it. A listwise model's scores depend on the whole window: each depth is a
call of its own. Latencies are real calls: first stage for every query,
reranking at each depth on the first `latency_queries` queries. Rankings
are made from per-query records (records.py), as the tuning makes its own.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from rerank_bridge.evaluation.beir import Collection
from rerank_bridge.evaluation.cache import JsonCache, model_key
from rerank_bridge.evaluation.measures import evaluate, ranked_run
from rerank_bridge.evaluation.records import RERANKED, QueryRecord
from rerank_bridge.search.client import RerankClient
from rerank_bridge.search.connector import RerankingSearch
from rerank_bridge.search.settings import ChunkingSettings, Hybrid, KnnSearch, RerankSettings

TEXT_FIELDS = ("title", "text")


# Fewer timed calls than this make a median that means little: the row says so.
MIN_TIMED_CALLS = 10


@dataclass
class StageRun:
    windows: dict[str, list[tuple[str, float | None]]] = field(default_factory=dict)
    texts: dict[str, dict[str, str]] = field(default_factory=dict)
    first_stage_ms: list[float] = field(default_factory=list)


def run_first_stage(
    search: RerankingSearch, index: str, stage: str, query: str, vector: list[float] | None, depth: int
) -> tuple[list[tuple[str, float | None]], dict[str, str], float]:
    """One query's window: (document id, first-stage score) in order, each hit's text and
    the first stage's time. `vector`: the query's, for kNN and hybrid (None: the scoring
    server's Embed makes it)."""
    body = {"query": {"multi_match": {"query": query, "fields": list(TEXT_FIELDS)}}, "size": depth}
    settings = RerankSettings(fields=TEXT_FIELDS, query_text=query, rank_window_size=depth)
    knn = KnnSearch(field="vector", query_vector=tuple(vector) if vector is not None else None)
    if stage == "bm25":
        result = search.first_stage(index, body, rerank=settings)
    elif stage == "knn":
        result = search.first_stage(index, {"size": depth}, rerank=settings, knn=knn)
    else:
        result = search.first_stage(index, body, rerank=settings, knn=knn, hybrid=Hybrid(method="rrf"))
    window = [(c.hit["_id"], c.first_stage_score) for c in result.candidates]
    texts = {c.hit["_id"]: c.text for c in result.candidates}
    return window, texts, result.timer.ms.get("first_stage", 0.0)


def unchangeable(stage: str, info: Any) -> str | None:
    """Why reranking a stage's window by this server's model tells nothing new:
    a bi-encoder reranker that is also the embedding model made the kNN order."""
    if info.kind != "bi-encoder" or info.model_id != info.embed_model_id:
        return None
    if stage == "knn":
        return "cannot change: the reranker is the model that made the vectors, so it keeps kNN's order"
    if stage == "hybrid":
        return "reranking alone keeps only the kNN half: the reranker is the embedding model (blend instead)"
    return None


def evaluate_collection(
    search: RerankingSearch,
    reranker: RerankClient,
    index: str,
    collection: Collection,
    stages: list[str],
    depths: list[int],
    latency_queries: int = 20,
    chunking: ChunkingSettings | None = None,
    max_document_tokens: int | None = None,
) -> tuple[dict[str, Any], list[QueryRecord]]:
    """The report and, for the documents read by their head, one record per
    (stage, query). With `chunking`, every reranked run is made twice, documents
    read by their head (cut to the token cap) and as chunks, rows told apart by
    `long_documents`."""
    info = reranker.model_info()
    modes = {"head": None, **({"chunks": chunking} if chunking is not None else {})}
    pointwise = info.limits.max_documents_per_pass <= 1
    deepest = max(depths)
    query_ids = list(collection.queries)
    texts = [collection.queries[q] for q in query_ids]
    vectors = [
        v
        for start in range(0, len(texts), 128)
        for v in reranker.embed(texts[start : start + 128], timeout=600, input_type="query")
    ]
    runs: dict[str, StageRun] = {stage: StageRun() for stage in stages}
    for query_id, query, vector in tqdm(
        list(zip(query_ids, texts, vectors, strict=True)), desc="first stages"
    ):
        for stage in stages:
            window, passages, ms = run_first_stage(search, index, stage, query, vector, deepest)
            runs[stage].windows[query_id] = window
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

    def window_documents(stage: str, query_id: str, depth: int) -> list[tuple[str, str]]:
        texts = runs[stage].texts[query_id]
        return [(doc, texts[doc]) for doc, _ in runs[stage].windows[query_id][:depth]]

    # Rerank scores per (mode, stage, query, depth).
    scores: dict[tuple[str, str], dict[str, dict[int, dict[str, float]]]] = {}
    for mode in modes:
        settings = modes[mode]
        reading = (
            f"{mode}-{max_document_tokens}-{settings.size}-{settings.overlap}"
            if settings
            else f"{mode}-{max_document_tokens}"
        )
        # Keyed by the content (every passage and query text), never by a folder's name.
        content = f"{model_key(info.model_id, info)}-{collection.fingerprint[:24]}-{reading}"
        stored = JsonCache("scores", content)
        cache = (stored.load() or {}) if pointwise else {}
        for query_id in tqdm(query_ids, desc=f"reranking ({mode})"):
            query = collection.queries[query_id]
            if pointwise:
                known = cache.setdefault(query_id, {})
                union = {doc: text for stage in stages for doc, text in runs[stage].texts[query_id].items()}
                known.update(
                    score(query, [(doc, text) for doc, text in union.items() if doc not in known], mode)
                )
            for stage in stages:
                by_depth = scores.setdefault((mode, stage), {}).setdefault(query_id, {})
                for depth in depths:
                    documents = window_documents(stage, query_id, depth)
                    by_depth[depth] = (
                        {doc: known[doc] for doc, text in documents if text and doc in known}
                        if pointwise
                        else score(query, documents, mode)
                    )
        if pointwise:
            stored.save(cache)

    latency: dict[tuple[str, str, int], list[float]] = {}
    sizes: dict[tuple[str, str, int], list[int]] = {}
    for query_id in query_ids[:latency_queries]:
        for mode in modes:
            for stage in stages:
                for depth in depths:
                    documents = [(d, text) for d, text in window_documents(stage, query_id, depth) if text]
                    if not documents:
                        continue
                    started = time.perf_counter()
                    rerank(collection.queries[query_id], documents, mode)
                    latency.setdefault((mode, stage, depth), []).append((time.perf_counter() - started) * 1e3)
                    sizes.setdefault((mode, stage, depth), []).append(len(documents))

    records = {
        mode: [
            QueryRecord(
                stage,
                query_id,
                collection.queries[query_id],
                runs[stage].windows[query_id],
                scores[(mode, stage)][query_id],
            )
            for stage in stages
            for query_id in query_ids
        ]
        for mode in modes
    }
    results = []
    recall_depths = sorted({*depths, deepest})
    for stage in stages:
        first_ms = statistics.median(runs[stage].first_stage_ms)
        rankings = {r.query_id: r.ranking(deepest, None) for r in records["head"] if r.stage == stage}
        base = evaluate(collection.qrels, ranked_run(rankings), recall_depths)
        results.append({"stage": stage, "rerank_depth": 0, **base, "first_stage_ms_p50": round(first_ms, 2)})
        for mode in modes:
            for depth in depths:
                rankings = {r.query_id: r.ranking(depth, RERANKED) for r in records[mode] if r.stage == stage}
                metrics = evaluate(collection.qrels, ranked_run(rankings), recall_depths)
                row: dict[str, Any] = {
                    "stage": stage,
                    "rerank_depth": depth,
                    **metrics,
                    "first_stage_ms_p50": round(first_ms, 2),
                    **latency_summary(latency.get((mode, stage, depth), []), sizes.get((mode, stage, depth))),
                }
                if (note := unchangeable(stage, info)) is not None:
                    row["note"] = note
                results.append({**row, "long_documents": mode} if chunking is not None else row)
    report = {
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
        "chunking": {"size": chunking.size, "overlap": chunking.overlap or 0}
        if chunking is not None
        else None,
        "results": results,
    }
    return report, records["head"]


def latency_summary(ms: list[float], documents: list[int] | None) -> dict[str, Any]:
    """The median of the timed calls, how many there were and how many documents
    each read; under MIN_TIMED_CALLS calls the median is marked as too few."""
    if not ms or not documents:
        return {"rerank_ms_p50": None, "rerank_calls": 0}
    summary: dict[str, Any] = {
        "rerank_ms_p50": round(statistics.median(ms), 2),
        "rerank_calls": len(ms),
        "rerank_documents_p50": statistics.median(documents),
    }
    if len(ms) < MIN_TIMED_CALLS:
        summary["latency_note"] = f"too few calls to trust ({len(ms)} < {MIN_TIMED_CALLS})"
    return summary
