"""Server throughput and latency over real gRPC on loopback.

    .venv/bin/python bench/server_throughput.py [--models tiny-listwise,minilm] [--concurrency 1,8,32]

For each model it starts `rerank-bridge serve` as its own process (so client
threads do not share its interpreter), waits for SERVING, warms up, and sends
the same requests (50 documents of ~200 tokens by default) at each
concurrency. Prints JSON: per model and concurrency, p50/p95/p99 latency,
requests/s and documents/s, with the server's device and the batch sizes.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from rerank_bridge_proto.v1 import rerank_pb2 as pb
from rerank_bridge_proto.v1 import rerank_pb2_grpc
from rerank_server.config import BUILTIN_MINILM
from workload import load, progress, rerank_requests


def start_server(model: str, extra: list[str]) -> tuple[subprocess.Popen[str], str]:
    command = [
        str(Path(sys.executable).parent / "rerank-bridge"),
        "serve",
        "--model",
        model,
        "--port",
        "0",
        *extra,
    ]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    for line in process.stderr:
        if match := re.search(r"listening on [^ ]+:(\d+)", line):
            address = f"127.0.0.1:{match.group(1)}"
            break
    else:
        raise RuntimeError(f"server for {model} exited with {process.wait()}")
    with grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while health.Check(health_pb2.HealthCheckRequest(), timeout=5).status != 1:
            if process.poll() is not None:
                raise RuntimeError(f"server for {model} exited with {process.returncode}")
            time.sleep(0.2)
    return process, address


def bench_model(name: str, model: str, extra: list[str], args: argparse.Namespace) -> dict[str, Any]:
    process, address = start_server(model, extra)
    try:
        with grpc.insecure_channel(address) as channel:
            info = rerank_pb2_grpc.RerankerStub(channel).GetModelInfo(pb.GetModelInfoRequest())
        requests = rerank_requests(max(args.concurrency) * args.rounds, args.documents, args.words)
        load(address, requests[:2], 1)  # warm-up: first real-size shapes
        levels = []
        for concurrency in args.concurrency:
            batch = requests[: max(concurrency * args.rounds, args.min_requests)]
            progress(f"{name}: {len(batch)} requests at concurrency {concurrency}")
            levels.append(load(address, batch, concurrency))
        return {
            "model": name,
            "kind": info.kind,
            "device": info.device,
            "dtype": info.dtype,
            "levels": levels,
        }
    finally:
        process.terminate()
        process.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default="tiny-listwise,minilm")
    parser.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 32])
    parser.add_argument("--documents", type=int, default=50)
    parser.add_argument("--words", type=int, default=150, help="words per document (~200 tokens)")
    parser.add_argument("--rounds", type=int, default=2, help="requests per client at each level")
    parser.add_argument("--min-requests", type=int, default=8)
    args = parser.parse_args()

    results = []
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.models.split(","):
            if name == "tiny-listwise":
                from rerank_server.tiny_models import build_listwise

                model, extra = str(build_listwise(Path(scratch) / "listwise")), ["--embed-model", "none"]
            elif name == "minilm":
                model, extra = BUILTIN_MINILM, []
            else:
                model, extra = name, ["--embed-model", "none"]
            results.append(bench_model(name, model, extra, args))
    report = {
        "benchmark": "server_throughput",
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": __import__("os").cpu_count()},
        "documents": args.documents,
        "words_per_document": args.words,
        "results": results,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
