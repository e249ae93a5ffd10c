"""How latency grows with the number of candidates and with their length.

    .venv/bin/python bench/cost_growth.py [--models tiny-listwise,minilm] [--plots DIR]

For each model (served by `rerank-bridge serve` in its own process) it times
single requests: 10 -> 200 candidates of ~128 tokens, and 20 candidates cut
to 64 -> 2,048 tokens each (the server's token cap does the cutting, so the
lengths are exact for the model's tokenizer; MiniLM itself stops at 256).
Prints JSON (median of `--repeats` calls per point) and writes one PNG per
sweep.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import grpc

from rerank_bridge.proto.v1 import rerank_pb2 as pb
from rerank_bridge.proto.v1 import rerank_pb2_grpc
from server_throughput import serve_each
from workload import passages, progress

COUNTS = (10, 25, 50, 100, 200)
LENGTHS = (64, 128, 256, 512, 1024, 2048)


def timed(stub: Any, request: pb.RerankRequest, repeats: int) -> tuple[float, int]:
    latencies, tokens = [], 0
    for _ in range(repeats):
        started = time.perf_counter()
        response = stub.Rerank(request, timeout=900)
        latencies.append((time.perf_counter() - started) * 1e3)
        tokens = response.usage.total_tokens
    return statistics.median(latencies), tokens


def sweep(address: str, repeats: int) -> dict[str, list[dict[str, float]]]:
    long_texts = passages(200, 1600)
    short_texts = passages(200, 100)
    with grpc.insecure_channel(address) as channel:
        stub = rerank_pb2_grpc.RerankerStub(channel)
        query = "which treatment reduces the risk in patients"
        warm = pb.RerankRequest(query=query, documents=[pb.Document(id="0", text=short_texts[0])])
        stub.Rerank(warm, timeout=900)
        counts = []
        for count in COUNTS:
            docs = [pb.Document(id=str(i), text=t) for i, t in enumerate(short_texts[:count])]
            ms, tokens = timed(
                stub, pb.RerankRequest(query=query, documents=docs, max_document_tokens=128), repeats
            )
            counts.append({"candidates": count, "p50_ms": round(ms, 2), "tokens": tokens})
            progress(f"  {count} candidates: {ms:.0f} ms")
        lengths = []
        for length in LENGTHS:
            docs = [pb.Document(id=str(i), text=t) for i, t in enumerate(long_texts[:20])]
            request = pb.RerankRequest(query=query, documents=docs, max_document_tokens=length)
            ms, tokens = timed(stub, request, repeats)
            lengths.append({"tokens_per_document": length, "p50_ms": round(ms, 2), "tokens": tokens})
            progress(f"  {length} tokens per document: {ms:.0f} ms")
    return {"by_candidates": counts, "by_length": lengths}


def plot(results: dict[str, Any], key: str, x: str, label: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4.2))
    for model, data in results.items():
        axes.plot([p[x] for p in data[key]], [p["p50_ms"] for p in data[key]], marker="o", label=model)
    axes.set_xscale("log", base=2)
    axes.set_yscale("log")
    axes.set_xlabel(label)
    axes.set_ylabel("median latency per request (ms)")
    axes.grid(alpha=0.3, which="both")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default="tiny-listwise,minilm")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--plots", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    results = serve_each(args.models.split(","), lambda address: sweep(address, args.repeats))
    args.plots.mkdir(parents=True, exist_ok=True)
    plot(
        results,
        "by_candidates",
        "candidates",
        "candidates per request (~128 tokens each)",
        args.plots / "cost_by_candidates.png",
    )
    plot(
        results,
        "by_length",
        "tokens_per_document",
        "tokens per document (20 candidates)",
        args.plots / "cost_by_length.png",
    )
    print(json.dumps({"benchmark": "cost_growth", "results": results}, indent=2))


if __name__ == "__main__":
    main()
