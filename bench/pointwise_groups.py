"""How the size of the padded groups a pointwise forward pass runs in changes its
cost on CPU: one request (the query and 50 SciFact passages of ~200 tokens) through
the MiniLM backend's forward, on torch fp32 and bf16, ONNX Runtime fp32 and int8.

    .venv/bin/python bench/pointwise_groups.py
    .venv/bin/python bench/pointwise_groups.py --groups 0,1024,2048 --repeats 5

Group size 0 is one batch padded to its longest sequence (what the server did
before `encodings.run_by_length`). Prints JSON: median ms per group size.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from rerank_bridge.server.backends.registry import builtin_minilm_folder
from rerank_bridge.server.backends.torch_pointwise import load_bi_encoder
from rerank_bridge.server.devices import resolve_placement
from rerank_bridge.server.domain import Document, RerankRequest
from workload import rerank_requests

# (label, torch dtype, ONNX precision or None for torch)
VARIANTS = (
    ("torch-float32", "float32", None),
    ("torch-bfloat16", "bfloat16", None),
    ("onnx-float32", "float32", "float32"),
    ("onnx-int8", "float32", "int8"),
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--groups", default="0,512,1024,2048,4096,8192")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    (message,) = rerank_requests(1, 50, 150)
    request = RerankRequest(
        query=message.query,
        documents=tuple(Document(d.id, d.text) for d in message.documents),
        top_n=None,
        instruction="",
        max_query_tokens=512,
        max_document_tokens=512,
    )
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "minilm"  # linked, so the ONNX export lands in scratch
        folder.mkdir()
        for entry in builtin_minilm_folder().iterdir():
            if entry.name != "onnx":
                (folder / entry.name).symlink_to(entry)
        for label, dtype, precision in VARIANTS:
            placement = resolve_placement("cpu", dtype)
            backend = load_bi_encoder(folder, "minilm", placement, 512, 512, precision)
            payloads = [s.payload for s in backend.plan_rerank(request).sequences]
            timings = {}
            for group in [int(g) for g in args.groups.split(",")]:
                backend.group_tokens = group
                backend.forward(payloads)  # warm-up
                samples = []
                for _ in range(args.repeats):
                    started = time.perf_counter()
                    backend.forward(payloads)
                    samples.append((time.perf_counter() - started) * 1e3)
                timings[str(group)] = round(statistics.median(samples), 1)
            results[label] = {
                "default_group_tokens": backend.model.run.cpu_group_tokens,
                "median_ms": timings,
            }
    report = {
        "benchmark": "pointwise_groups",
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "sequences": len(request.documents) + 1,
        "results": results,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
