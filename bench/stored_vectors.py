"""What a reranked BM25 search costs when the documents' vectors need no encoding:
stored vectors, a warm embedding cache, a cold one, and infinity-emb re-encoding the
same window, against the first stage alone, on a live Elasticsearch node.

    .venv/bin/python bench/stored_vectors.py [--queries 40] [--windows 10,50,200]

SciFact's corpus is indexed with the default model's vectors (multilingual-e5-small,
made by the scoring server's Embed behind its document prompt; the mapping records the
model), and SciFact's queries run as BM25 over title and text, `size` = the window, one
query at a time (p50, p99, requests/s), then at concurrency 4 for window 50:

- `first_stage`: the engine's search alone, as an application without reranking sends it;
- `first_stage_vectors`: the same search asking for the vector field too, as the stored
  path's first-stage call does (what moving the vectors costs, before any scoring);
- `first_stage_vectors_orjson`: the same, the client parsing with elasticsearch-py's
  OrjsonSerializer instead of the standard library's json (which spends most of that
  cost reading the floats);
- `stored`: the connector, reranking from the vector field (`stored_vectors`);
- `stored_int8_query`: the same against a server on ONNX Runtime int8 (`--runtime onnx
  --dtype int8`), where one short query encodes in a third of torch bf16's time;
- `stored_int8_query_orjson`: that server, and the engine client parsing with orjson:
  the stored path as docs/connectors.md advises setting it up;
- `warm_cache`: the connector encoding nothing but the query: the window's documents
  were reranked once before under another query (the cache keys texts, not queries);
- `cold`: the connector against a server started with `--embedding-cache-mb 0`;
- `infinity`: the same first stage, then infinity-emb's /embeddings on the query and
  the window's texts (prompted as the server prompts them) and the cosine, sorted.

The scoring servers run in their own processes (`rerank-bridge serve`), the engine is a
local node (tools/local_engines.py) or ES_URL. `cold` and `infinity` are also run with
documents cut to fewer tokens (`--caps`): the cost of encoding grows with the length;
a stored vector is the whole indexed document's, whatever the length, so the stored
path has no such row. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from rerank_bridge.devtools import checkout, local_engines
from rerank_bridge.evaluation.beir import load_collection
from rerank_bridge.evaluation.indexing import ensure_index
from rerank_bridge.search import RerankClient, RerankingSearch, RerankSettings
from rerank_bridge.search.dialects import DIALECTS
from rerank_bridge.search.pipeline import hit_text
from rerank_bridge.search.settings import StoredVectorSettings
from rerank_bridge.server.config import DEFAULT_MODEL
from server_throughput import INFINITY, start_infinity
from workload import progress, start_server, summarise

FIELDS = ("title", "text")
E5_PROMPTS = ("query: ", "passage: ")
Search = Callable[[str], Any]


def bm25(query: str, window: int) -> dict[str, Any]:
    return {"query": {"multi_match": {"query": query, "fields": list(FIELDS)}}, "size": window}


def measure(search: Search, queries: list[str], window: int, concurrency: int = 1) -> dict[str, Any]:
    """Each query once, from `concurrency` threads: workload.summarise's latency percentiles
    and rates (`window`: the documents each search reranks)."""
    latencies: list[float] = []

    def one(query: str) -> None:
        started = time.perf_counter()
        search(query)
        latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, queries))
    wall = time.perf_counter() - started
    return {"concurrency": concurrency, **summarise(latencies, wall, window)}


class Paths:
    """The searches compared, for one window and document cap."""

    def __init__(
        self,
        engine: Any,
        index: str,
        cached: RerankClient,
        uncached: RerankClient,
        int8: RerankClient,
        infinity: Any,
        orjson_engine: Any,
    ) -> None:
        self.engine, self.orjson_engine, self.index = engine, orjson_engine, index
        self.cached = RerankingSearch(engine, cached)
        self.uncached = RerankingSearch(engine, uncached)
        self.int8 = RerankingSearch(engine, int8)
        self.int8_orjson = RerankingSearch(orjson_engine, int8)
        self.infinity = infinity  # (url, model id) or None

    def first_stage(self, window: int, vectors: bool = False, orjson: bool = False) -> Search:
        body = {"fields": [*FIELDS, "vector"]} if vectors else {}
        engine = self.orjson_engine if orjson else self.engine
        return lambda query: engine.search(index=self.index, body={**bm25(query, window), **body})

    def reranked(
        self,
        window: int,
        stored: bool,
        cold: bool = False,
        cap: int | None = None,
        stages: list[dict[str, float]] | None = None,
        int8: bool = False,
        orjson: bool = False,
    ) -> Search:
        """The connector's search; `stages` collects each response's `rerank.took_ms`."""
        if int8:
            searcher = self.int8_orjson if orjson else self.int8
        else:
            searcher = self.uncached if cold else self.cached
        vectors = StoredVectorSettings(field="vector") if stored else None

        def search(query: str) -> None:
            settings = RerankSettings(
                fields=FIELDS,
                query_text=query,
                rank_window_size=window,
                stored_vectors=vectors,
                max_document_tokens=cap,
                fail_open=False,
            )
            response = searcher.search(self.index, bm25(query, window), rerank=settings)
            summary = response["rerank"]
            assert summary["reranked"], summary
            if stages is not None:
                stages.append(summary["took_ms"])
            if stored:
                assert summary["stored_vectors"].get("stored") == summary["candidates"], summary

        return search

    def re_encoded(self, window: int, words: int | None = None) -> Search:
        """infinity-emb as a reranker: the first stage, then every text encoded anew."""
        assert self.infinity is not None
        url, model = self.infinity

        def search(query: str) -> None:
            answer = self.engine.search(
                index=self.index, body={**bm25(query, window), "fields": list(FIELDS)}
            )
            hits = answer["hits"]["hits"]
            texts = [hit_text(hit, FIELDS) for hit in hits]
            if words is not None:
                texts = [" ".join(text.split()[:words]) for text in texts]
            inputs = [E5_PROMPTS[0] + query] + [E5_PROMPTS[1] + text for text in texts]
            body = json.dumps({"model": model, "input": inputs}).encode()
            request = urllib.request.Request(
                f"{url}/embeddings", data=body, headers={"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=600) as response:
                vectors = np.array(
                    [item["embedding"] for item in json.load(response)["data"]], dtype=np.float32
                )
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            order = np.argsort(-(vectors[1:] @ vectors[0]))
            assert len(order) == len(hits)

        return search


def variants(queries: list[str], mark: str) -> list[str]:
    """The same searches under other query strings: BM25 drops the punctuation, so the
    window is the same, while the server, which caches query vectors too, sees a query it
    has not embedded. Every measured path gets marks no other run used."""
    return [f"{query} {mark}" for query in queries]


def bench_window(paths: Paths, queries: list[str], window: int, infinity: bool, run: int) -> dict[str, Any]:
    """`run`: this window's place in the run (1, 2, ...), which makes its query marks its own."""
    # Fewer queries for windows past 50: each encoding path's request costs the window.
    queries = queries[: max(10, len(queries) * 50 // max(window, 50))]
    progress(f"window {window}, {len(queries)} queries: first stage, stored, warm cache, cold, infinity")
    result: dict[str, Any] = {"window": window, "queries": len(queries)}
    warm_up = variants(queries[:3], "#" * run)
    for name, vectors, orjson in (
        ("first_stage", False, False),
        ("first_stage_vectors", True, False),
        ("first_stage_vectors_orjson", True, True),
    ):
        measure(paths.first_stage(window, vectors, orjson), warm_up, window)
        result[name] = measure(paths.first_stage(window, vectors, orjson), queries, window)
    stored_paths = (
        ("stored", False, False),
        ("stored_int8_query", True, False),
        ("stored_int8_query_orjson", True, True),
    )
    for mark, (name, int8, orjson) in enumerate(stored_paths, start=1):
        stages: list[dict[str, float]] = []
        measure(paths.reranked(window, stored=True, int8=int8, orjson=orjson), warm_up, window)
        stored = paths.reranked(window, stored=True, stages=stages, int8=int8, orjson=orjson)
        # Each stored path its own query strings: a query another path embedded is cached.
        result[name] = measure(stored, variants(queries, "!" * run + "+" * mark), window)
        result[name]["connector_stages_p50_ms"] = {
            stage: round(statistics.median(took[stage] for took in stages), 2) for stage in stages[0]
        }
    # The window's documents go through the model once, under other query strings.
    measure(paths.reranked(window, stored=False), variants(queries, "." * run), window)
    result["warm_cache"] = measure(paths.reranked(window, stored=False), variants(queries, "?" * run), window)
    measure(paths.reranked(window, stored=False, cold=True), warm_up, window)
    result["cold"] = measure(paths.reranked(window, stored=False, cold=True), queries, window)
    if infinity:
        measure(paths.re_encoded(window), warm_up, window)
        result["infinity"] = measure(paths.re_encoded(window), queries, window)
    base = result["first_stage"]["p50_ms"]
    result["added_p50_ms"] = {
        path: round(result[path]["p50_ms"] - base, 2)
        for path in (
            "first_stage_vectors",
            "first_stage_vectors_orjson",
            "stored",
            "stored_int8_query",
            "stored_int8_query_orjson",
            "warm_cache",
            "cold",
            "infinity",
        )
        if path in result
    }
    progress(json.dumps(result))  # a run cut short keeps what it measured
    return result


def window_50_extras(
    paths: Paths, queries: list[str], windows_run: int, caps: list[int]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Window 50 again: at concurrency 4, and with documents cut to each token cap."""
    peer = paths.infinity is not None
    concurrency_4: dict[str, Any] = {}
    by_length: list[dict[str, Any]] = []
    progress("window 50 at concurrency 4")
    # Marks no window used: the server has not embedded these queries yet.
    fresh = windows_run + 1
    stored = paths.reranked(50, stored=True)
    concurrency_4["stored"] = measure(stored, variants(queries, "!" * fresh), 50, 4)
    warm = paths.reranked(50, stored=False)
    concurrency_4["warm_cache"] = measure(warm, variants(queries, "?" * fresh), 50, 4)
    if peer:
        concurrency_4["infinity"] = measure(paths.re_encoded(50), queries, 50, 4)
    for cap in caps:
        progress(f"window 50, documents cut to {cap} tokens")
        row: dict[str, Any] = {"document_tokens": cap}
        row["cold"] = measure(paths.reranked(50, stored=False, cold=True, cap=cap), queries, 50)
        if peer:
            # About 0.75 words a token in SciFact under this tokenizer.
            row["infinity"] = measure(paths.re_encoded(50, words=int(cap * 0.75)), queries, 50)
        by_length.append(row)
    return concurrency_4, by_length


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--windows", default="10,50,200")
    parser.add_argument(
        "--caps", default="64,128", help="document token caps for the encoding paths (window 50)"
    )
    parser.add_argument("--infinity", default=INFINITY, help="the infinity_emb command ('' skips the peer)")
    args = parser.parse_args()
    windows = [int(w) for w in args.windows.split(",")]
    caps = [int(c) for c in args.caps.split(",") if c]

    node = None
    url = os.environ.get("ES_URL")
    if not url:
        node = local_engines.start("elasticsearch-9.2.0", heap="1g")
        url = node.url
    engine = DIALECTS["elasticsearch"].client(url, timeout=600)
    from elasticsearch import Elasticsearch, OrjsonSerializer

    orjson_engine = Elasticsearch(url, request_timeout=600, serializer=OrjsonSerializer())
    cached_server, cached_address = start_server(DEFAULT_MODEL, [])
    cold_server, cold_address = start_server(DEFAULT_MODEL, ["--embedding-cache-mb", "0"])
    int8_server, int8_address = start_server(DEFAULT_MODEL, ["--runtime", "onnx", "--dtype", "int8"])
    infinity_process = None
    try:
        cached, uncached = RerankClient(cached_address, timeout=600), RerankClient(cold_address, timeout=600)
        int8 = RerankClient(int8_address, timeout=600)
        info = cached.model_info()
        # GET / is refused by Elasticsearch's test distribution: the nodes API says the version.
        versions = {node["version"] for node in engine.nodes.info()["nodes"].values()}
        collection = load_collection(checkout.shared_data("scifact"))
        progress("indexing SciFact with the model's vectors (cached after the first run)")
        index = ensure_index(engine, collection, cached)
        queries = [collection.queries[q] for q in sorted(collection.queries)][: args.queries]
        peer = None
        if args.infinity and os.path.exists(args.infinity):
            from rerank_bridge.server.backends.registry import resolve_model

            progress("starting infinity-emb (torch, bfloat16: its fastest CPU setting on this model)")
            infinity_process, infinity_url, infinity_model = start_infinity(
                args.infinity, resolve_model(DEFAULT_MODEL), "torch", "bfloat16"
            )
            peer = (infinity_url, infinity_model)
        paths = Paths(engine, index, cached, uncached, int8, peer, orjson_engine)
        # A node fresh from indexing still merges segments and compiles its hot paths:
        # every query once at the largest window first, so the first window measured
        # finds the engine as later ones do.
        progress("warming the engine up")
        for orjson in (False, True):
            measure(paths.first_stage(max(windows), vectors=True, orjson=orjson), queries, max(windows))
        by_window = [
            bench_window(paths, queries, window, peer is not None, run)
            for run, window in enumerate(windows, start=1)
        ]
        concurrency_4, by_length = (
            window_50_extras(paths, queries, len(windows), caps)
            if any(w["window"] == 50 for w in by_window)
            else ({}, [])
        )
        report: dict[str, Any] = {
            "benchmark": "stored_vectors",
            "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()},
            "engine": ",".join(sorted(versions)),
            "model": info.model_id,
            "dtype": info.dtype,
            "index": index,
            "queries": len(queries),
            "by_window": by_window,
            "window_50_concurrency_4": concurrency_4,
            "window_50_by_document_tokens": by_length,
        }
        report["goals"] = goals(by_window, concurrency_4)
        print(json.dumps(report, indent=2))
    finally:
        for process in (cached_server, cold_server, int8_server, infinity_process):
            if process is not None:
                process.terminate()
                process.wait(timeout=60)
        if node is not None:
            node.stop()


def goals(by_window: list[dict[str, Any]], concurrency_4: dict[str, Any]) -> dict[str, Any]:
    """The issue's goals, at window 50: stored vectors add at most 25 ms p50 to the first
    stage and serve >= 20x infinity's requests/s; a warm cache is within 2x of stored."""
    at_50 = next((w for w in by_window if w["window"] == 50), None)
    if at_50 is None:
        return {}
    found: dict[str, Any] = {}
    for path in ("stored", "stored_int8_query", "stored_int8_query_orjson"):
        added = at_50["added_p50_ms"][path]
        found[f"{path}_added_p50_ms"] = added
        found[f"{path}_adds_at_most_25_ms"] = added <= 25
        found[f"{path}_added_p50_ms_by_window"] = {w["window"]: w["added_p50_ms"][path] for w in by_window}
    found["warm_over_stored_p50"] = round(at_50["warm_cache"]["p50_ms"] / at_50["stored"]["p50_ms"], 2)
    found["warm_within_2x_of_stored"] = found["warm_over_stored_p50"] <= 2
    if "infinity" in at_50:
        ratios = {
            "concurrency_1": at_50["stored"]["requests_per_s"] / at_50["infinity"]["requests_per_s"],
            **(
                {
                    "concurrency_4": concurrency_4["stored"]["requests_per_s"]
                    / concurrency_4["infinity"]["requests_per_s"]
                }
                if "infinity" in concurrency_4
                else {}
            ),
        }
        found["stored_requests_per_s_over_infinity"] = {k: round(v, 1) for k, v in ratios.items()}
        found["stored_at_least_20x_infinity"] = min(ratios.values()) >= 20
    return found


if __name__ == "__main__":
    main()
