"""What each way of reranking a page adds to a plain search, on one OpenSearch node:
the engine's own rerank processor (search pipeline -> ml-commons connector ->
the bridge's /v2/rerank -> the scoring server), the Python connector (first stage,
then one gRPC call), and a search through the HTTP bridge.

    .venv/bin/python bench/native_rerank.py [--queries 200] [--window 10] [--model fake]

Starts the OpenSearch 2.19.1-neural node, `rerank-bridge serve` (the weightless
fake model by default, so the figures are the plumbing, not the model) and
`rerank-bridge proxy` as processes, wires the engine with `rerank-bridge wire`,
indexes XQuAD-R English sentences, then runs the same BM25 query in each mode,
alternating modes query by query. Prints JSON: median and p95 latency per mode
and the median added to the plain search.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rerank_bridge.devtools import checkout, local_engines
from rerank_bridge.evaluation.indexing import index_mapping
from rerank_bridge.search import RerankClient, RerankingSearch, RerankSettings
from rerank_bridge.search.dialects import DIALECTS
from workload import progress, start_server

DATA = checkout.shared_data("xquad-r", "en")
COMMAND = str(Path(sys.executable).parent / "rerank-bridge")
KEY = "bench-native-key"
INDEX = "bench-native"


def start_bridge(engine_url: str, reranker: str) -> tuple[subprocess.Popen[bytes], str]:
    port = local_engines.free_port()
    command = [COMMAND, "proxy", "--engine-url", engine_url, "--reranker", reranker, "--port", str(port)]
    env = {**os.environ, "RERANK_BRIDGE_API_KEYS": KEY}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/metrics", timeout=2):
                return process, url
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"the bridge did not start: {' '.join(command)}")


def wire(engine_url: str, bridge_url: str) -> None:
    subprocess.run(
        [
            COMMAND,
            "wire",
            "opensearch",
            "--engine-url",
            engine_url,
            "--bridge-url",
            bridge_url,
            "--apply-settings",
        ],
        env={**os.environ, "RERANK_BRIDGE_API_KEY": KEY},
        check=True,
        stdout=subprocess.DEVNULL,
    )


def index(client: Any, reranker: RerankClient, docs: list[dict[str, Any]]) -> None:
    dims = reranker.model_info().embed_dimensions
    client.indices.create(index=INDEX, body=index_mapping(client, dims, {"text": {"type": "text"}}))
    actions = [{"_index": INDEX, "_id": d["_id"], "_source": {"text": d["text"]}} for d in docs]
    DIALECTS["opensearch"].bulk_helper()(client, actions, refresh=True)


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_ms": round(statistics.median(ordered), 2),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 2),
    }


def measure(
    engine_url: str, bridge_url: str, address: str, queries: list[str], window: int
) -> dict[str, Any]:
    client = DIALECTS["opensearch"].client(engine_url)
    through = DIALECTS["opensearch"].client(bridge_url)  # the same client, pointed at the bridge
    reranker = RerankClient(address)
    search = RerankingSearch(client, reranker)

    def plain(query: str) -> Any:
        return client.search(index=INDEX, body={"query": {"match": {"text": query}}, "size": window})

    def native(query: str) -> Any:
        body = {
            "query": {"match": {"text": query}},
            "size": window,
            "ext": {"rerank": {"query_context": {"query_text": query}}},
        }
        return client.search(index=INDEX, body=body, params={"search_pipeline": "rerank-bridge"})

    def connector(query: str) -> Any:
        settings = RerankSettings(fields=("text",), query_text=query, rank_window_size=window)
        return search.search(INDEX, {"query": {"match": {"text": query}}, "size": window}, rerank=settings)

    def bridge(query: str) -> Any:
        rerank = {"rerank": {"fields": ["text"], "query_text": query, "rank_window_size": window}}
        body = {"query": {"match": {"text": query}}, "size": window, "ext": {"rerank_bridge": rerank}}
        return through.transport.perform_request(
            "POST", f"/{INDEX}/_search", body=body, headers={"Authorization": f"Bearer {KEY}"}
        )

    modes: dict[str, Callable[[str], Any]] = {
        "plain": plain,
        "native_pipeline": native,
        "connector": connector,
        "bridge": bridge,
    }
    samples: dict[str, list[float]] = {mode: [] for mode in modes}
    for i, query in enumerate([queries[0]] * 10 + queries):  # the first ten warm up
        for mode, run in modes.items():
            started = time.perf_counter()
            hits = run(query)["hits"]["hits"]
            elapsed = (time.perf_counter() - started) * 1e3
            if i >= 10:
                samples[mode].append(elapsed)
            assert len(hits) <= window
    results = {mode: summary(values) for mode, values in samples.items()}
    base = results["plain"]["median_ms"]
    for result in results.values():
        result["added_median_ms"] = round(result["median_ms"] - base, 2)
    client.close()
    through.close()
    reranker.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--window", type=int, default=10)
    parser.add_argument("--model", default="fake")
    args = parser.parse_args()
    docs = [json.loads(line) for line in (DATA / "corpus.jsonl").open()]
    queries = [json.loads(line)["text"] for line in (DATA / "queries.jsonl").open()][: args.queries]
    server, address = start_server(args.model, [])
    bridge_process = None
    try:
        progress("starting OpenSearch 2.19.1-neural")
        with local_engines.start(local_engines.NEURAL_RELEASE.name) as node:
            bridge_process, bridge_url = start_bridge(node.url, address)
            wire(node.url, bridge_url)
            with RerankClient(address) as reranker:
                index(DIALECTS["opensearch"].client(node.url), reranker, docs)
            results = measure(node.url, bridge_url, address, queries, args.window)
    finally:
        if bridge_process is not None:
            bridge_process.terminate()
            bridge_process.wait()
        server.terminate()
        server.wait()
    report = {
        "benchmark": "native_rerank",
        "engine": local_engines.NEURAL_RELEASE.name,
        "model": args.model,
        "window": args.window,
        "queries": len(queries),
        "modes": results,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
