"""Shared pieces of the benchmarks: the request workload, load generation
over real gRPC, and latency statistics. Every benchmark prints one JSON
document on stdout (progress goes to stderr)."""

from __future__ import annotations

import gzip
import json
import random
import re
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from rerank_bridge.devtools import checkout
from rerank_bridge.proto.v1 import rerank_pb2 as pb
from rerank_bridge.proto.v1 import rerank_pb2_grpc

SCIFACT = checkout.shared_data("scifact", "corpus.jsonl.gz")
FILLER = "cell protein gene study result patient effect risk model data method analysis trial".split()


def passages(count: int, words: int, seed: int = 0) -> list[str]:
    """Real SciFact abstracts cut to `words` words when the data is beside the
    checkout, else seeded filler text of the same length."""
    rng = random.Random(seed)
    texts: list[str] = []
    if SCIFACT.exists():
        with gzip.open(SCIFACT, "rt") as handle:
            for line in handle:
                body = json.loads(line)["text"].split()
                if len(body) >= words:
                    texts.append(" ".join(body[:words]))
                if len(texts) >= count * 4:
                    break
        rng.shuffle(texts)
    while len(texts) < count:
        texts.append(" ".join(rng.choices(FILLER, k=words)))
    return texts[:count]


def rerank_requests(count: int, documents: int, words: int) -> list[pb.RerankRequest]:
    pool = passages(documents * 4, words)
    rng = random.Random(1)
    return [
        pb.RerankRequest(
            query=" ".join(rng.choices(FILLER, k=8)),
            documents=[pb.Document(id=str(i), text=t) for i, t in enumerate(rng.sample(pool, documents))],
        )
        for _ in range(count)
    ]


def summarise(latencies_s: list[float], wall_s: float, documents: int) -> dict[str, float]:
    ordered = sorted(latencies_s)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] * 1e3

    return {
        "requests": len(ordered),
        "p50_ms": round(statistics.median(ordered) * 1e3, 2),
        "p95_ms": round(pct(95), 2),
        "p99_ms": round(pct(99), 2),
        "requests_per_s": round(len(ordered) / wall_s, 3),
        "documents_per_s": round(len(ordered) * documents / wall_s, 2),
    }


Call = Callable[[pb.RerankRequest], None]


def load(make_call: Callable[[], Call], requests: list[pb.RerankRequest], concurrency: int) -> dict[str, Any]:
    """Sends every request once from `concurrency` clients; each client gets its
    own caller (its own channel or HTTP session) from `make_call`."""
    latencies: list[float] = []
    lock = threading.Lock()
    queue = iter(requests)

    def client() -> None:
        call = make_call()
        while True:
            with lock:
                request = next(queue, None)
            if request is None:
                return
            started = time.perf_counter()
            call(request)
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for future in [pool.submit(client) for _ in range(concurrency)]:
            future.result()
    wall = time.perf_counter() - started
    return {"concurrency": concurrency, **summarise(latencies, wall, len(requests[0].documents))}


def grpc_caller(address: str, timeout: float = 600) -> Callable[[], Call]:
    def make() -> Call:
        stub = rerank_pb2_grpc.RerankerStub(grpc.insecure_channel(address))

        def call(request: pb.RerankRequest) -> None:
            response = stub.Rerank(request, timeout=timeout)
            assert len(response.results) == len(request.documents)

        return call

    return make


def start_server(model: str, extra: list[str]) -> tuple[subprocess.Popen[str], str]:
    """`rerank-bridge serve` in its own process, SERVING, its log drained."""
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
    # Its per-request log lines would fill the pipe and stall it.
    threading.Thread(target=_drain, args=(process.stderr,), daemon=True).start()
    with grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while health.Check(health_pb2.HealthCheckRequest(), timeout=5).status != 1:
            if process.poll() is not None:
                raise RuntimeError(f"server for {model} exited with {process.returncode}")
            time.sleep(0.2)
    return process, address


def _drain(stream: Any) -> None:
    for _ in stream:
        pass


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
