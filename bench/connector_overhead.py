"""The connector's own cost per request: end-to-end time minus the time spent
in the engine's search calls and in the reranker's RPCs, median over N queries.

    .venv/bin/python bench/connector_overhead.py [--queries 200] [--engines elasticsearch,opensearch]

Starts local engine nodes (rerank_bridge.devtools.local_engines) and a scoring server with
the weightless fake model in its own process, indexes XQuAD-R English
sentences (with the fake model's vectors), then runs BM25, kNN and hybrid
searches reranked over a 50-hit window. Prints JSON; the target is a median
under 3 ms.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from rerank_bridge.devtools import checkout, local_engines
from rerank_bridge.evaluation.indexing import index_mapping
from rerank_bridge.search import (
    Hybrid,
    KnnSearch,
    RerankClient,
    Reranking,
    RerankingSearch,
    RerankSettings,
)
from rerank_bridge.search.dialects import DIALECTS
from server_throughput import start_server
from workload import progress

DATA = checkout.shared_data("xquad-r", "en")


class TimedRerankClient(RerankClient):
    """Adds up the wall time of every RPC."""

    spent = 0.0

    def rerank(self, query: str, documents: Sequence[tuple[str, str]], **kwargs: Any) -> Reranking:
        started = time.perf_counter()
        try:
            return super().rerank(query, documents, **kwargs)
        finally:
            self.spent += time.perf_counter() - started

    def embed(self, texts: Sequence[str], timeout: float | None = None) -> list[list[float]]:
        started = time.perf_counter()
        try:
            return super().embed(texts, timeout)
        finally:
            self.spent += time.perf_counter() - started


def timed(function: Callable[..., Any], ledger: list[float]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            ledger[0] += time.perf_counter() - started

    return wrapper


def index_corpus(
    kind: str, client: Any, bulk: Any, reranker: RerankClient, docs: list[dict[str, Any]]
) -> str:
    dims = reranker.model_info().embed_dimensions
    client.indices.create(index="bench", body=index_mapping(client, dims, {"text": {"type": "text"}}))
    texts = [d["text"] for d in docs]
    vectors = [v for start in range(0, len(texts), 256) for v in reranker.embed(texts[start : start + 256])]
    actions = [
        {"_index": "bench", "_id": d["_id"], "_source": {"text": d["text"], "vector": v}}
        for d, v in zip(docs, vectors, strict=True)
    ]
    bulk(client, actions, refresh=True)
    return "bench"


def measure(
    kind: str, url: str, address: str, queries: list[str], docs: list[dict[str, Any]]
) -> dict[str, Any]:
    client, bulk = DIALECTS[kind].client(url), DIALECTS[kind].bulk_helper()
    reranker = TimedRerankClient(address)
    index = index_corpus(kind, client, bulk, reranker, docs)
    engine_time = [0.0]
    client.search = timed(client.search, engine_time)
    search = RerankingSearch(client, reranker)
    modes = {
        "bm25": {},
        "knn": {"knn": KnnSearch(field="vector")},
        "hybrid": {"knn": KnnSearch(field="vector"), "hybrid": Hybrid()},
    }
    results = {}
    for mode, extra in modes.items():
        overheads, totals = [], []
        for i, query in enumerate([queries[0]] * 5 + queries):  # the first five warm up
            settings = RerankSettings(fields=("text",), query_text=query, rank_window_size=50)
            body = {"query": {"match": {"text": query}}, "size": 10} if mode != "knn" else {"size": 10}
            engine_time[0] = reranker.spent = 0.0
            started = time.perf_counter()
            search.search(index, body, rerank=settings, **extra)
            total = time.perf_counter() - started
            if i >= 5:
                totals.append(total * 1e3)
                overheads.append((total - engine_time[0] - reranker.spent) * 1e3)
        results[mode] = {
            "queries": len(overheads),
            "overhead_median_ms": round(statistics.median(overheads), 3),
            "overhead_p95_ms": round(sorted(overheads)[int(0.95 * (len(overheads) - 1))], 3),
            "end_to_end_median_ms": round(statistics.median(totals), 3),
        }
        progress(f"{kind} {mode}: {results[mode]}")
    client.close()
    reranker.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--engines", default="elasticsearch,opensearch")
    args = parser.parse_args()
    docs = [json.loads(line) for line in (DATA / "corpus.jsonl").open()]
    queries = [json.loads(line)["text"] for line in (DATA / "queries.jsonl").open()][: args.queries]
    server, address = start_server("fake", [])
    report: dict[str, Any] = {
        "benchmark": "connector_overhead",
        "window": 50,
        "target_ms": 3.0,
        "engines": {},
    }
    try:
        for kind in args.engines.split(","):
            progress(f"starting {kind}")
            with local_engines.start(kind) as node:
                report["engines"][kind] = measure(kind, node.url, address, queries, docs)
    finally:
        server.terminate()
        server.wait()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
