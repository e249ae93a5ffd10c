"""What reading long documents costs: by their head, whole, or as chunks.

    .venv/bin/python bench/chunking_cost.py [--models tiny-listwise,minilm] [--repeats 3]

For each model (served by `rerank-bridge serve` in its own process) it times
requests of 10 documents of 100 -> 1,600 words (SciFact abstracts joined) read
three ways: `head` (cut to 128 tokens: what truncation reads), `whole` (cut to
2,048 tokens: one long sequence per document; MiniLM stops at its own 256),
and `chunks` (chunking at 128 tokens, 16 shared, up to 32 chunks a document).
Prints JSON (median of `--repeats` calls per point, with the tokens and chunks
the server reports) and writes chunking_cost.png beside the results.
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

WORDS = (100, 200, 400, 800, 1600)
DOCUMENTS = 10
CHUNK = pb.Chunking(enabled=True, size=128, overlap=16, max_chunks=32)
MODES: dict[str, dict[str, Any]] = {
    "head": {"max_document_tokens": 128},
    "whole": {"max_document_tokens": 2048},
    "chunks": {"max_document_tokens": 2048, "chunking": CHUNK},
}


def long_texts(words: int) -> list[str]:
    """DOCUMENTS texts of `words` words: abstracts joined end to end."""
    pool = " ".join(passages(DOCUMENTS * 8, 100)).split()
    return [" ".join(pool[(i * words) % len(pool) :][:words]) for i in range(DOCUMENTS)]


def measure(stub: Any, request: pb.RerankRequest, repeats: int) -> dict[str, float]:
    latencies, response = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        response = stub.Rerank(request, timeout=900)
        latencies.append((time.perf_counter() - started) * 1e3)
    assert response is not None
    return {
        "p50_ms": round(statistics.median(latencies), 2),
        "document_tokens": response.usage.document_tokens,
        "chunks": response.usage.chunks,
    }


def sweep(address: str, repeats: int) -> dict[str, list[dict[str, Any]]]:
    query = "which treatment reduces the risk in patients"
    results: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    with grpc.insecure_channel(address) as channel:
        stub = rerank_pb2_grpc.RerankerStub(channel)
        stub.Rerank(
            pb.RerankRequest(query=query, documents=[pb.Document(id="0", text="warm up")]), timeout=900
        )
        for words in WORDS:
            documents = [pb.Document(id=str(i), text=t) for i, t in enumerate(long_texts(words))]
            for mode, options in MODES.items():
                point = measure(stub, pb.RerankRequest(query=query, documents=documents, **options), repeats)
                results[mode].append({"words_per_document": words, **point})
                progress(f"  {words} words, {mode}: {point['p50_ms']:.0f} ms")
    return results


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4.2))
    for model, modes in results.items():
        for mode, points in modes.items():
            axes.plot(
                [p["words_per_document"] for p in points],
                [p["p50_ms"] for p in points],
                marker="o",
                label=f"{model}, {mode}",
            )
    axes.set_xscale("log", base=2)
    axes.set_yscale("log")
    axes.set_xlabel(f"words per document ({DOCUMENTS} documents)")
    axes.set_ylabel("median latency per request (ms)")
    axes.grid(alpha=0.3, which="both")
    axes.legend(fontsize="small")
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
    results = serve_each(
        args.models.split(","),
        lambda address: sweep(address, args.repeats),
        ["--max-chunks-per-document", "32"],
    )
    args.plots.mkdir(parents=True, exist_ok=True)
    plot(results, args.plots / "chunking_cost.png")
    print(json.dumps({"benchmark": "chunking_cost", "documents": DOCUMENTS, "results": results}, indent=2))


if __name__ == "__main__":
    main()
