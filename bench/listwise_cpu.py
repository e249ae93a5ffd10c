"""The listwise model's whole request on a CPU, fp32 against bf16, at the tiny
and the full (Qwen3-0.6B, random weights) shape, with the real Qwen3 vocabulary.

    .venv/bin/python bench/listwise_cpu.py
    .venv/bin/python bench/listwise_cpu.py --shapes tiny --sizes 10x128,50x256 --requests 5

Per shape, dtype and size (documents x tokens per document): p50/p95 ms of a
request through the backend in-process (plan, forward, scores; everything but
gRPC, which bench/listwise_request_path.py times), the block budget the backend
chose for this machine's memory, the peak RSS the forward added against
block_budget's estimate, FLOPs per request from the shape and the prompt
lengths, and the share of this machine's measured matrix-multiply rate
(bench/roofline.py) reached. A size whose floor (FLOPs / rate) exceeds
`--max-seconds` is recorded as skipped, not run. Each (shape, dtype) runs in a
process of its own, so peak memory is its own. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import torch
from listwise_request_path import QUERY, exact_token_passages

from rerank_bridge.devtools.tiny_models import QWEN3_0_6B, build_listwise
from rerank_bridge.server.backends.base import run_plan
from rerank_bridge.server.backends.block_budget import activation_bytes_per_token
from rerank_bridge.server.backends.listwise import ListwiseBackend
from rerank_bridge.server.devices import resolve_placement
from rerank_bridge.server.domain import Document, RerankRequest
from roofline import Shape, machine, matmul_rates
from workload import progress, summarise


def sizes(text: str) -> list[tuple[int, int]]:
    return [(int(d), int(t)) for d, t in (size.split("x") for size in text.split(","))]


def requests(backend: ListwiseBackend, count: int, documents: int, tokens: int) -> list[RerankRequest]:
    """SciFact abstracts cut to exactly `tokens` Qwen3 tokens, as listwise_request_path sends."""
    pool = exact_token_passages(backend, documents, tokens)
    return [
        RerankRequest(
            query=QUERY,
            documents=tuple(Document(str(i), pool[(r + i * 7) % len(pool)]) for i in range(documents)),
            top_n=None,
            instruction="",
            max_query_tokens=512,
            max_document_tokens=tokens,
        )
        for r in range(count)
    ]


def rss_mib() -> float:
    """Resident memory now (/proc/self/statm), in MiB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


class PeakMemory:
    """The most resident memory seen while the block runs, sampled every 5 ms from a
    thread: ru_maxrss cannot say it, its peak is the model's load."""

    def __enter__(self) -> PeakMemory:
        self.before = self.peak = rss_mib()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._done.wait(0.005):
            self.peak = max(self.peak, rss_mib())

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mib())

    @property
    def added(self) -> float:
        return self.peak - self.before


def build(shape_name: str, scratch: Path) -> Path:
    """The model's folder, built here and not in the measuring process, whose peak
    memory must be the loaded model's and its forward passes' alone."""
    progress(f"{shape_name}: building the model")
    return build_listwise(
        scratch / shape_name,
        context_length=131072 if shape_name == "full" else 32768,
        shape=QWEN3_0_6B if shape_name == "full" else None,
        weights_dtype=torch.bfloat16,
        vocabulary="qwen3",
    )


def one(shape_name: str, dtype: str, folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One (shape, dtype): every size, in this process."""
    placement = resolve_placement("cpu", dtype)
    backend = ListwiseBackend(folder, shape_name, placement, 512, 2048)
    config = backend.model.config
    shape = Shape.of(config.to_dict())
    rate = matmul_rates(shape, 4096, [dtype])[dtype]
    run_plan(backend, backend.plan_rerank(requests(backend, 1, 2, 32)[0]))  # warm-up
    rows = []
    for documents, tokens in sizes(args.sizes):
        batch = requests(backend, args.requests, documents, tokens)
        blocks = [len(s.payload.ids) for s in backend.plan_rerank(batch[0]).sequences]
        flops = sum(shape.sequence_flops(length, causal=True, gated=True) for length in blocks)
        floor_s = flops / (rate * 1e9)
        row: dict[str, Any] = {
            "documents": documents,
            "tokens_per_document": tokens,
            "prompt_tokens": sum(blocks),
            "blocks": len(blocks),
            "tflops_per_request": round(flops / 1e12, 3),
            "floor_ms": round(floor_s * 1e3, 1),
        }
        if floor_s > args.max_seconds:
            rows.append({**row, "skipped": f"floor {floor_s:.0f} s > --max-seconds {args.max_seconds}"})
            continue
        progress(f"{shape_name} {dtype}: {documents} x {tokens} tokens, {len(batch)} requests")
        samples, added = [], 0.0
        wall = time.perf_counter()
        for request in batch:
            with PeakMemory() as memory:
                started = time.perf_counter()
                run_plan(backend, backend.plan_rerank(request))
                samples.append(time.perf_counter() - started)
            added = max(added, memory.added)
        latency = summarise(samples, time.perf_counter() - wall, documents)
        p50 = latency["p50_ms"]
        estimate = activation_bytes_per_token(config, placement.dtype.itemsize) * max(blocks) / 2**20
        rows.append(
            {
                **row,
                "requests": latency["requests"],
                "p50_ms": p50,
                "p95_ms": latency["p95_ms"],
                "share_of_matmul_rate": round(floor_s * 1e3 / p50, 3),
                "peak_rss_added_mib": round(added, 1),
                "estimated_activation_mib": round(estimate, 1),
            }
        )
    return {
        "shape": shape_name,
        "dtype": dtype,
        "dtype_reason": placement.dtype_reason,
        "block_budget_tokens": backend.limits.context_length,
        "matmul_gflops": rate,
        "sizes": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shapes", default="tiny,full")
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--sizes", default="10x128,50x256", help="documents x tokens per document, ...")
    parser.add_argument("--requests", type=int, default=2, help="timed requests per size")
    parser.add_argument("--max-seconds", type=float, default=120, help="skip sizes whose floor is longer")
    parser.add_argument("--one", nargs=3, metavar=("SHAPE", "DTYPE", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        shape, dtype, folder = args.one
        print(json.dumps(one(shape, dtype, Path(folder), args)))
        return
    runs = []
    flags = ["--sizes", args.sizes, "--requests", str(args.requests), "--max-seconds", str(args.max_seconds)]
    with tempfile.TemporaryDirectory() as scratch:
        for shape in args.shapes.split(","):
            folder = build(shape, Path(scratch))
            for dtype in args.dtypes.split(","):
                command = [sys.executable, __file__, "--one", shape, dtype, str(folder), *flags]
                answer = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
                runs.append(json.loads(answer.stdout))
    for shape in args.shapes.split(","):
        ran = {r["dtype"]: r for r in runs if r["shape"] == shape}
        if {"float32", "bfloat16"} <= ran.keys():
            for fp32, bf16 in zip(ran["float32"]["sizes"], ran["bfloat16"]["sizes"], strict=True):
                if "p50_ms" in fp32 and "p50_ms" in bf16:
                    bf16["speedup_over_float32_p50"] = round(fp32["p50_ms"] / bf16["p50_ms"], 2)
    print(
        json.dumps(
            {"benchmark": "listwise_cpu", "machine": machine(), "torch": torch.__version__, "runs": runs},
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
