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


# Rerank scores per (mode, stage), then query, then depth: document id -> score.
Scores = dict[tuple[str, str], dict[str, dict[int, dict[str, float]]]]
# Timed calls per (mode, stage, depth): milliseconds, and documents read.
Timings = tuple[dict[tuple[str, str, int], list[float]], dict[tuple[str, str, int], list[int]]]


@dataclass
class CollectionEvaluation:
    """One collection's evaluation, step by step (evaluate_collection runs them in order):
    the first stages, the reranked scores, the timed calls, the rows of the report."""

    search: RerankingSearch
    reranker: RerankClient
    index: str
    collection: Collection
    stages: list[str]
    depths: list[int]
    latency_queries: int
    chunking: ChunkingSettings | None
    max_document_tokens: int | None
    info: Any = field(init=False)
    modes: dict[str, ChunkingSettings | None] = field(init=False)
    query_ids: list[str] = field(init=False)
    runs: dict[str, StageRun] = field(init=False)

    def __post_init__(self) -> None:
        self.info = self.reranker.model_info()
        self.modes = {"head": None, **({"chunks": self.chunking} if self.chunking is not None else {})}
        self.query_ids = list(self.collection.queries)
        self.runs = {stage: StageRun() for stage in self.stages}

    @property
    def pointwise(self) -> bool:
        return bool(self.info.limits.max_documents_per_pass <= 1)

    @property
    def deepest(self) -> int:
        return max(self.depths)

    def run_first_stages(self) -> None:
        """Every query's window from every stage, at the deepest depth."""
        texts = [self.collection.queries[q] for q in self.query_ids]
        vectors = [
            v
            for start in range(0, len(texts), 128)
            for v in self.reranker.embed(texts[start : start + 128], timeout=600, input_type="query")
        ]
        for query_id, query, vector in tqdm(
            list(zip(self.query_ids, texts, vectors, strict=True)), desc="first stages"
        ):
            for stage in self.stages:
                window, passages, ms = run_first_stage(
                    self.search, self.index, stage, query, vector, self.deepest
                )
                self.runs[stage].windows[query_id] = window
                self.runs[stage].texts[query_id] = passages
                self.runs[stage].first_stage_ms.append(ms)

    def rerank(self, query: str, documents: list[tuple[str, str]], mode: str) -> Any:
        return self.reranker.rerank(
            query,
            documents,
            timeout=600,
            max_document_tokens=self.max_document_tokens,
            chunking=self.modes[mode],
        )

    def score(self, query: str, documents: list[tuple[str, str]], mode: str) -> dict[str, float]:
        documents = [(doc, text) for doc, text in documents if text]
        if not documents:
            return {}
        return {d.id: d.score for d in self.rerank(query, documents, mode).documents}

    def window_documents(self, stage: str, query_id: str, depth: int) -> list[tuple[str, str]]:
        texts = self.runs[stage].texts[query_id]
        return [(doc, texts[doc]) for doc, _ in self.runs[stage].windows[query_id][:depth]]

    def rerank_scores(self) -> Scores:
        """Each window reranked at each depth (a pointwise model's scores once per
        document, from the score cache where it has them)."""
        scores: Scores = {}
        for mode, settings in self.modes.items():
            reading = (
                f"{mode}-{self.max_document_tokens}-{settings.size}-{settings.overlap}"
                if settings
                else f"{mode}-{self.max_document_tokens}"
            )
            # Keyed by content (the model's files, every passage and query text), never by a
            # folder's name.
            model = model_key(self.info.model_id, self.info.model_digest, self.info)
            content = f"{model}-{self.collection.fingerprint[:24]}-{reading}"
            stored = JsonCache("scores", content)
            cache = (stored.load() or {}) if self.pointwise else {}
            for query_id in tqdm(self.query_ids, desc=f"reranking ({mode})"):
                query = self.collection.queries[query_id]
                if self.pointwise:
                    known = cache.setdefault(query_id, {})
                    union = {
                        doc: text
                        for stage in self.stages
                        for doc, text in self.runs[stage].texts[query_id].items()
                    }
                    unknown = [(doc, text) for doc, text in union.items() if doc not in known]
                    known.update(self.score(query, unknown, mode))
                for stage in self.stages:
                    by_depth = scores.setdefault((mode, stage), {}).setdefault(query_id, {})
                    for depth in self.depths:
                        documents = self.window_documents(stage, query_id, depth)
                        by_depth[depth] = (
                            {doc: known[doc] for doc, text in documents if text and doc in known}
                            if self.pointwise
                            else self.score(query, documents, mode)
                        )
            if self.pointwise:
                stored.save(cache)
        return scores

    def time_reranking(self) -> Timings:
        """Real reranking calls on the first `latency_queries` queries, timed."""
        latency: dict[tuple[str, str, int], list[float]] = {}
        sizes: dict[tuple[str, str, int], list[int]] = {}
        for query_id in self.query_ids[: self.latency_queries]:
            for mode in self.modes:
                for stage in self.stages:
                    for depth in self.depths:
                        documents = [(d, t) for d, t in self.window_documents(stage, query_id, depth) if t]
                        if not documents:
                            continue
                        started = time.perf_counter()
                        self.rerank(self.collection.queries[query_id], documents, mode)
                        latency.setdefault((mode, stage, depth), []).append(
                            (time.perf_counter() - started) * 1e3
                        )
                        sizes.setdefault((mode, stage, depth), []).append(len(documents))
        return latency, sizes

    def records(self, scores: Scores) -> dict[str, list[QueryRecord]]:
        return {
            mode: [
                QueryRecord(
                    stage,
                    query_id,
                    self.collection.queries[query_id],
                    self.runs[stage].windows[query_id],
                    scores[(mode, stage)][query_id],
                )
                for stage in self.stages
                for query_id in self.query_ids
            ]
            for mode in self.modes
        }

    def result_rows(self, records: dict[str, list[QueryRecord]], timings: Timings) -> list[dict[str, Any]]:
        """A row per stage alone, and per (stage, depth, mode) reranked."""
        latency, sizes = timings
        results = []
        recall_depths = sorted({*self.depths, self.deepest})
        qrels = self.collection.qrels
        for stage in self.stages:
            first_ms = statistics.median(self.runs[stage].first_stage_ms)
            rankings = {
                r.query_id: r.ranking(self.deepest, None) for r in records["head"] if r.stage == stage
            }
            base = evaluate(qrels, ranked_run(rankings), recall_depths)
            results.append(
                {"stage": stage, "rerank_depth": 0, **base, "first_stage_ms_p50": round(first_ms, 2)}
            )
            for mode in self.modes:
                for depth in self.depths:
                    rankings = {
                        r.query_id: r.ranking(depth, RERANKED) for r in records[mode] if r.stage == stage
                    }
                    key = (mode, stage, depth)
                    row: dict[str, Any] = {
                        "stage": stage,
                        "rerank_depth": depth,
                        **evaluate(qrels, ranked_run(rankings), recall_depths),
                        "first_stage_ms_p50": round(first_ms, 2),
                        **latency_summary(latency.get(key, []), sizes.get(key)),
                    }
                    if (note := unchangeable(stage, self.info)) is not None:
                        row["note"] = note
                    results.append({**row, "long_documents": mode} if self.chunking is not None else row)
        return results

    def report(self, results: list[dict[str, Any]]) -> dict[str, Any]:
        chunking = self.chunking
        return {
            "dataset": self.collection.name,
            "queries": len(self.query_ids),
            "documents": len(self.collection.corpus),
            "model": self.info.model_id,
            "model_kind": self.info.kind,
            "model_runtime": self.info.runtime or "torch",
            "model_dtype": self.info.dtype,
            "embed_model": self.info.embed_model_id,
            "depths": self.depths,
            "timed_queries": len(self.query_ids[: self.latency_queries]),
            "max_document_tokens": self.max_document_tokens,
            "chunking": {"size": chunking.size, "overlap": chunking.overlap or 0}
            if chunking is not None
            else None,
            "results": results,
        }


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
    run = CollectionEvaluation(
        search, reranker, index, collection, stages, depths, latency_queries, chunking, max_document_tokens
    )
    run.run_first_stages()
    records = run.records(run.rerank_scores())
    results = run.result_rows(records, run.time_reranking())
    return run.report(results), records["head"]


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
