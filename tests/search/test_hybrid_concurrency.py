"""A connector-fused hybrid search sends its keyword and kNN queries at once: each
stand-in engine call holds for HOLD seconds and notes when it ran, and the two
calls' spans must overlap. Sequential calls (the old async path) fail here
whatever the machine's load: the second starts only after the first has ended."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from rerank_bridge.search import (
    AsyncRerankingSearch,
    Hybrid,
    KnnSearch,
    RankedDocument,
    Reranking,
    RerankingSearch,
    RerankSettings,
)
from rerank_bridge.search.dialects import Elasticsearch

HOLD = 0.3
SETTINGS = RerankSettings(fields=("t",), query_text="q", rank_window_size=4)
KNN = KnnSearch(field="v", query_vector=(0.1, 0.2))
BODY = {"query": {"match": {"t": "q"}}, "size": 4}


def answer(kwargs: dict[str, Any]) -> dict[str, Any]:
    """A keyword answer (hits a, b) or a kNN one (hits b, c), told apart by the body."""
    ids = ("b", "c") if "knn" in kwargs["body"] else ("a", "b")
    hits = [{"_id": i, "_index": "x", "_score": 1.0, "_source": {"t": f"text {i}"}} for i in ids]
    return {"took": 1, "timed_out": False, "hits": {"total": {"value": 2, "relation": "eq"}, "hits": hits}}


class Spans:
    def __init__(self) -> None:
        self.spans: list[tuple[float, float]] = []
        self.lock = threading.Lock()

    def note(self, started: float) -> None:
        with self.lock:
            self.spans.append((started, time.monotonic()))

    def overlap(self) -> bool:
        (first_start, first_end), (second_start, second_end) = self.spans
        return max(first_start, second_start) < min(first_end, second_end)


class SlowAsyncEngine(Spans):
    async def search(self, **kwargs: Any) -> dict[str, Any]:
        started = time.monotonic()
        await asyncio.sleep(HOLD)
        self.note(started)
        return answer(kwargs)


class SlowSyncEngine(Spans):
    def search(self, **kwargs: Any) -> dict[str, Any]:
        started = time.monotonic()
        time.sleep(HOLD)
        self.note(started)
        return answer(kwargs)


def ranking(documents: list[tuple[str, str]]) -> Reranking:
    return Reranking(
        [RankedDocument(i, doc_id, 1.0 / (i + 1), False) for i, (doc_id, _) in enumerate(documents)], "m"
    )


class AsyncReranker:
    async def rerank(self, query: str, documents: list[tuple[str, str]], **options: Any) -> Reranking:
        return ranking(documents)


class SyncReranker:
    def rerank(self, query: str, documents: list[tuple[str, str]], **options: Any) -> Reranking:
        return ranking(documents)


def hit_ids(response: dict[str, Any]) -> list[str]:
    return [hit["_id"] for hit in response["hits"]["hits"]]


def test_the_async_hybrid_search_sends_keyword_and_knn_at_once() -> None:
    engine = SlowAsyncEngine()
    search = AsyncRerankingSearch(engine, AsyncReranker(), SETTINGS, Elasticsearch())  # type: ignore[arg-type]
    response = asyncio.run(search.search("x", BODY, knn=KNN, hybrid=Hybrid()))
    assert len(engine.spans) == 2 and engine.overlap(), engine.spans
    assert sorted(hit_ids(response)) == ["a", "b", "c"]  # fused once each: none lost, none twice


def test_the_sync_hybrid_search_sends_keyword_and_knn_at_once() -> None:
    engine = SlowSyncEngine()
    search = RerankingSearch(engine, SyncReranker(), SETTINGS, Elasticsearch())  # type: ignore[arg-type]
    response = search.search("x", BODY, knn=KNN, hybrid=Hybrid())
    assert len(engine.spans) == 2 and engine.overlap(), engine.spans
    assert sorted(hit_ids(response)) == ["a", "b", "c"]
